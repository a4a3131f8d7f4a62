import asyncio
import contextlib
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from services.api_keys.clients import Account
from services.api_keys.servicer import ApiKeysServicer
from services.api_keys.settings import Settings
from services.api_keys.tenants import Follower
from services.api_keys.verify import Verifier
from services.common import db, events, metrics, notify, server

NAMES = (
    api_keys_service_pb2.DESCRIPTOR.services_by_name["ApiKeysService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
)


class Replica(NamedTuple):
    service: server.Service
    verifier: Verifier


def assemble(settings: Settings, engine: AsyncEngine) -> Replica:
    """Composition root. Needs a running event loop: it starts the cache listener, the usage flusher and
    the follower of account's events, and registers their shutdown (the last usage flush included)."""
    sessions = db.sessionmaker(engine)
    svc = server.create("aos.api_keys", NAMES, engine, settings.metrics_port)
    account = Account(settings.account_addr)
    verifier = Verifier(engine, settings.cache_size, settings.usage_flush_seconds, settings.verify_pool_size)
    onboarding = notify.Peer(
        settings.onboarding_addr, "api_keys", "/aos.onboarding.v1.OnboardingService/NotifyEvidence"
    )
    servicer = ApiKeysServicer(sessions, account, verifier, onboarding)
    api_keys_service_pb2_grpc.add_ApiKeysServiceServicer_to_server(servicer, svc.server)
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    verifier.start()
    hits, misses = (lambda: float(verifier.cache_hits)), (lambda: float(verifier.cache_misses))
    svc.metrics.counter("aos_api_keys_verify_cache_hits", "VerifyApiKey answered from the cache", hits)
    svc.metrics.counter("aos_api_keys_verify_cache_misses", "VerifyApiKey looked up in the database", misses)
    svc.metrics.gauge(
        "aos_api_keys_verify_cache_hit_ratio", "Cache hits / lookups since start", metrics.ratio(hits, misses)
    )
    follower = Follower(sessions)
    following = asyncio.create_task(account.watch(follower.cursor, follower.apply))

    async def stop() -> None:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        await verifier.stop()
        await account.close()
        await onboarding.close()

    svc.on_stop.append(stop)
    return Replica(svc, verifier)


def build(settings: Settings, engine: AsyncEngine) -> server.Service:
    return assemble(settings, engine).service
