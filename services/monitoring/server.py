from sqlalchemy.ext.asyncio import AsyncEngine

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.monitoring.v1 import (
    founder_service_pb2,
    founder_service_pb2_grpc,
    logs_service_pb2,
    logs_service_pb2_grpc,
    monitoring_service_pb2,
    monitoring_service_pb2_grpc,
)
from services.common import channels, db, events, follow, server
from services.monitoring import clients, founder, tenants
from services.monitoring.models import CURSORS
from services.monitoring.servicer.activity import ActivityServicer
from services.monitoring.servicer.founder import FounderServicer
from services.monitoring.servicer.incidents import IncidentsServicer
from services.monitoring.servicer.logs import LogsServicer
from services.monitoring.servicer.telemetry import TelemetryServicer
from services.monitoring.settings import Settings

ME = "monitoring"
NAMES = (
    *(monitoring_service_pb2.DESCRIPTOR.services_by_name[s].full_name for s in ("ActivityService", "TelemetryService")),
    monitoring_service_pb2.DESCRIPTOR.services_by_name["IncidentsService"].full_name,
    logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
    founder_service_pb2.DESCRIPTOR.services_by_name["FounderService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
)


def build(settings: Settings, engine: AsyncEngine) -> server.Service:
    """Composition root. Needs a running event loop: it starts the follower of account's events (the
    tenants' lifecycle) and registers its shutdown."""
    sessions = db.sessionmaker(engine)
    me = settings.identity(ME)
    svc = server.create("aos.monitoring", NAMES, engine, me, settings.metrics_port)
    account = channels.peer(settings.account_addr, me, "account") if settings.account_addr else None
    activity = ActivityServicer(sessions, clients.Account(account))
    monitoring_service_pb2_grpc.add_ActivityServiceServicer_to_server(activity, svc.server)
    integrations = clients.Integrations(settings.integrations_addr, me, settings.owned_cache_seconds)
    telemetry = TelemetryServicer(sessions, integrations)
    monitoring_service_pb2_grpc.add_TelemetryServiceServicer_to_server(telemetry, svc.server)
    svc.on_stop.append(integrations.close)
    monitoring_service_pb2_grpc.add_IncidentsServiceServicer_to_server(IncidentsServicer(sessions), svc.server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(LogsServicer(sessions), svc.server)
    failures = founder.AuditFailures(founder_service_pb2.DESCRIPTOR.services_by_name["FounderService"].methods_by_name)
    svc.metrics.registry.register(failures)
    founder_service_pb2_grpc.add_FounderServiceServicer_to_server(FounderServicer(sessions, failures), svc.server)
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    follower = follow.Follower(tenants.SOURCE, account, ME, sessions, CURSORS, tenants.Mirror(sessions).apply)
    follower.start()
    svc.on_stop.append(follower.stop)
    if account is not None:
        svc.on_stop.append(account.close)
    return svc
