import asyncio
import contextlib

from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2, onboarding_service_pb2_grpc
from services.common import db, events, follow, server
from services.onboarding import identity, models, states
from services.onboarding.clients import ME, Clients
from services.onboarding.evidence import Evidence
from services.onboarding.gate import Gate
from services.onboarding.keyguard import KeyGuard
from services.onboarding.servicer import OnboardingServicer
from services.onboarding.settings import Settings

NAMES = (
    onboarding_service_pb2.DESCRIPTOR.services_by_name["OnboardingService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
    external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
)


def _followers(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], clients: Clients, evidence: Evidence
) -> list[follow.Follower]:
    """One per peer (an unconfigured one follows nothing): its events are evidence of tenants' progress."""
    return [
        follow.Follower(
            peer.name,
            peer.channel,
            ME,
            sessions,
            models.event_cursor,
            evidence.handle,
            backoff=settings.consumer_backoff_seconds,
            max_backoff=settings.consumer_max_backoff_seconds,
        )
        for peer in clients.peers()
    ]


def _keys(settings: Settings, clients: Clients) -> KeyGuard:
    return KeyGuard(
        clients.verify_key,
        clients.record_key_usage,
        cache_seconds=settings.cache_seconds,
        negative_seconds=settings.negative_cache_seconds,
        failures_per_second=settings.key_failures_per_second,
        failures_burst=settings.key_failures_burst,
    )


def _claims(settings: Settings) -> identity.Claims:
    """The identity provider's claim names and token rules, as configured (the Settings fields of the same names)."""
    names = identity.Claims.__dataclass_fields__.keys() & Settings.model_fields.keys()
    return identity.Claims(**{name: getattr(settings, name) for name in names})


def build(settings: Settings, engine: AsyncEngine) -> server.Service:
    """Composition root: servicers, the edge gate and the followers of the configured peers' event logs.

    Called inside the running event loop (by __main__ and the tests): the followers start here and stop
    with the server."""
    sessions = db.sessionmaker(engine)
    me = settings.identity(ME)
    clients = Clients(
        settings.account_addr, settings.api_keys_addr, settings.integrations_addr, settings.peer_timeout_seconds, me
    )
    cache = states.Cache(sessions, settings.cache_seconds)
    gate = Gate(
        sessions,
        cache,
        clients,
        _keys(settings, clients),
        identity.Members(clients, settings.cache_seconds),
        _claims(settings),
        veil=settings.veil,
    )
    evidence = Evidence(sessions, cache, clients, gate.keys.forget_key, gate.members.forget)
    svc = server.create("aos.onboarding", NAMES, engine, me, settings.metrics_port)
    onboarding_service_pb2_grpc.add_OnboardingServiceServicer_to_server(
        OnboardingServicer(sessions, cache, clients, evidence, settings), svc.server
    )
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(gate, svc.server)
    followers = _followers(settings, sessions, clients, evidence)
    for follower in followers:
        follower.start()
    reporter = (
        asyncio.get_running_loop().create_task(gate.keys.report_usage_forever(settings.cache_seconds / 2))
        if settings.api_keys_addr
        else None
    )

    async def _stop() -> None:
        await asyncio.gather(*(follower.stop() for follower in followers))
        if reporter is not None:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            await gate.keys.report_usage()  # after the server drained: the last cached uses are not lost
        await clients.close()

    svc.on_stop.append(_stop)
    return svc
