from sqlalchemy.ext.asyncio import AsyncEngine

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2, integrations_service_pb2_grpc
from services.common import db, events, notify, server
from services.integrations import clients, outbound
from services.integrations.servicer import IntegrationsServicer
from services.integrations.settings import Settings

NAMES = (
    integrations_service_pb2.DESCRIPTOR.services_by_name["IntegrationsService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
)


def build(settings: Settings, engine: AsyncEngine, guard: outbound.Guard | None = None) -> server.Service:
    """Composition root: the only place the integrations servicers are wired to a server."""
    sessions = db.sessionmaker(engine)
    guard = guard or outbound.Guard(settings.loopback_allowed, settings.allow_private_networks)
    me = settings.identity("integrations")
    svc = server.create("aos.integrations", NAMES, engine, me, settings.metrics_port)
    onboarding = notify.Peer(
        settings.onboarding_addr, me, "onboarding", "/aos.onboarding.v1.OnboardingService/NotifyEvidence"
    )
    monitoring = clients.Monitoring(settings.monitoring_addr, me)
    integrations_service_pb2_grpc.add_IntegrationsServiceServicer_to_server(
        IntegrationsServicer(sessions, settings, guard, onboarding, monitoring), svc.server
    )
    svc.on_stop.extend((onboarding.close, monitoring.close))
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    return svc
