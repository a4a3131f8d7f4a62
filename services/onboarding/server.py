import asyncio

from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2, onboarding_service_pb2_grpc
from services.common import db, events, server
from services.onboarding.clients import Clients
from services.onboarding.consumer import Consumer
from services.onboarding.gate import Gate
from services.onboarding.machine import Machine
from services.onboarding.servicer import OnboardingServicer
from services.onboarding.settings import Settings

NAMES = (
    onboarding_service_pb2.DESCRIPTOR.services_by_name["OnboardingService"].full_name,
    events_service_pb2.DESCRIPTOR.services_by_name["EventLogService"].full_name,
    external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name,
)


def build(settings: Settings, engine: AsyncEngine) -> server.Service:
    """Composition root: servicers, the edge gate and the event consumers of the configured peers.

    Called inside the running event loop (by __main__ and the tests): the consumers start here and stop
    with the server."""
    sessions = db.sessionmaker(engine)
    clients = Clients(
        settings.account_addr, settings.api_keys_addr, settings.integrations_addr, settings.peer_timeout_seconds
    )
    machine = Machine(sessions, clients, settings.cache_seconds)
    gate = Gate(machine, settings.cache_seconds)
    svc = server.create("aos.onboarding", NAMES, engine, settings.metrics_port)
    onboarding_service_pb2_grpc.add_OnboardingServiceServicer_to_server(
        OnboardingServicer(machine, settings, gate.forget_key), svc.server
    )
    events_service_pb2_grpc.add_EventLogServiceServicer_to_server(events.EventLogServicer(sessions), svc.server)
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(gate, svc.server)
    consumers = [
        asyncio.get_running_loop().create_task(
            Consumer(
                machine, peer, gate.forget_key, settings.consumer_backoff_seconds, settings.consumer_max_backoff_seconds
            ).run()
        )
        for peer in clients.peers()
        if peer.channel is not None
    ]
    if settings.api_keys_addr:
        consumers.append(asyncio.get_running_loop().create_task(gate.report_usage_forever(settings.cache_seconds / 2)))

    async def _stop() -> None:
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        if settings.api_keys_addr:
            await gate.report_usage()  # after the server drained: the last cached uses are not lost
        await clients.close()

    svc.on_stop.append(_stop)
    return svc
