from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2, account_service_pb2_grpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from services.account.clients import Counters
from services.account.servicer import AccountServicer
from services.account.settings import Settings
from services.common import db, events, notify, server

NAMES = (
    account_service_pb2.DESCRIPTOR.services_by_name["AccountService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
)


def build(settings: Settings, engine: AsyncEngine) -> server.Service:
    """Composition root: the only place the account servicers are wired to a server."""
    sessions = db.sessionmaker(engine)
    me = settings.identity("account")
    svc = server.create("aos.account", NAMES, engine, me, settings.metrics_port)
    onboarding = notify.Peer(
        settings.onboarding_addr, me, "onboarding", "/aos.onboarding.v1.OnboardingService/NotifyEvidence"
    )
    counters = Counters(settings.api_keys_addr, settings.monitoring_addr, me)
    account_service_pb2_grpc.add_AccountServiceServicer_to_server(
        AccountServicer(sessions, db.Reads(engine), onboarding, counters, settings.signups_per_day), svc.server
    )
    svc.on_stop.extend([onboarding.close, counters.close])
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    return svc
