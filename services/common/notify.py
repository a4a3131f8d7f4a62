"""Best-effort calls to a peer right after a commit, so a client sees the effect of its own write at once
(e.g. onboarding's state after the tenant's first key). A short deadline, and a failure is only logged:
the peer also follows this service's event log with a durable cursor and repairs what it missed."""

from __future__ import annotations

import contextlib
import logging

import grpc
from google.protobuf.message import Message

from services.common import channels, principal, tls

log = logging.getLogger("aos.notify")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class Peer:
    """One unary RPC of the service `name` (`method` is its full path, "/pkg.Service/Method"), called as `me`;
    no peer address configured means nobody is told. The producer waits up to `timeout` so its client's next call
    sees the peer's new state (a key's handshake finds API_KEY_CREATED); 0.5 s expired whenever 50 clients
    saturated 2 cores (tests/load), leaving the catch-up to the event log and the next call refused meanwhile."""

    def __init__(self, addr: str, me: tls.Identity, name: str, method: str, timeout: float = 2.0) -> None:
        self._caller, self._method, self._timeout = me.name, method, timeout
        self._channel = channels.peer(addr, me, name) if addr else None
        # The reply is not read, so it stays undecoded bytes.
        self._call: grpc.aio.UnaryUnaryMultiCallable[Message, bytes] | None = (
            self._channel.unary_unary(method, request_serializer=_serialize) if self._channel else None
        )

    async def tell(self, request: Message, tenant_id: str) -> None:
        if self._call is None:
            return
        try:
            await self._call(
                request, metadata=principal.service_metadata(self._caller, tenant_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("%s not told (%s); it catches up from the event log", self._method, exc.code().name)

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
