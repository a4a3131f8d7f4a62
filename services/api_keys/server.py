import dataclasses

from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from services.api_keys import clients, tenants
from services.api_keys.models import CURSORS
from services.api_keys.servicer import ApiKeysServicer
from services.api_keys.settings import Settings
from services.api_keys.verify import Verifier
from services.common import db, events, follow, metrics, notify, server

NAMES = (
    api_keys_service_pb2.DESCRIPTOR.services_by_name["ApiKeysService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
)


@dataclasses.dataclass(kw_only=True)
class Service(server.Service):
    """common's Service with this replica's verifier in reach (is its cache listening, on which backend)."""

    verifier: Verifier


def _measure(svc: Service) -> None:
    hits, misses = (lambda: float(svc.verifier.cache_hits)), (lambda: float(svc.verifier.cache_misses))
    svc.metrics.counter("aos_api_keys_verify_cache_hits", "VerifyApiKey answered from the cache", hits)
    svc.metrics.counter("aos_api_keys_verify_cache_misses", "VerifyApiKey looked up in the database", misses)
    svc.metrics.gauge(
        "aos_api_keys_verify_cache_hit_ratio", "Cache hits / lookups since start", metrics.ratio(hits, misses)
    )


def build(settings: Settings, engine: AsyncEngine) -> Service:
    """Composition root. Needs a running event loop: it starts the cache listener, the usage flusher and
    the follower of account's events, and registers their shutdown (the last usage flush included)."""
    sessions = db.sessionmaker(engine)
    verifier = Verifier(engine, settings.cache_size, settings.usage_flush_seconds, settings.verify_pool_size)
    me = settings.identity(clients.ME)
    svc = Service(**vars(server.create("aos.api_keys", NAMES, engine, me, settings.metrics_port)), verifier=verifier)
    account = clients.Account(settings.account_addr, me)
    onboarding = notify.Peer(
        settings.onboarding_addr, me, "onboarding", "/aos.onboarding.v1.OnboardingService/NotifyEvidence"
    )
    servicer = ApiKeysServicer(sessions, db.Reads(engine), account, verifier, onboarding)
    api_keys_service_pb2_grpc.add_ApiKeysServiceServicer_to_server(servicer, svc.server)
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    _measure(svc)
    mirror = tenants.Mirror(sessions)
    follower = follow.Follower(tenants.SOURCE, account.channel, clients.ME, sessions, CURSORS, mirror.apply)
    verifier.start()
    follower.start()
    svc.on_stop += [follower.stop, verifier.stop, account.close, onboarding.close]
    return svc
