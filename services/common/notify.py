"""Best-effort calls to a peer right after a commit, so the peer learns of a write before it would by
following the event log (e.g. onboarding's state after the tenant's first key). The event log, which the
peer follows with a durable cursor, is the path that guarantees delivery and this is only a hint
(DESIGN.md §6), so it usually runs beside the reply (`tell`); a write whose client's next call needs the
peer's new state waits for it (`wait`)."""

from __future__ import annotations

import asyncio
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
    no peer address configured means nobody is told. At most `pending` calls are in flight: past that the
    peer is already behind, a further hint is dropped (and logged), and the event log catches it up."""

    def __init__(
        self, addr: str, me: tls.Identity, name: str, method: str, timeout: float = 2.0, pending: int = 256
    ) -> None:
        self._caller, self._method, self._timeout, self._limit = me.name, method, timeout, pending
        self._channel = channels.peer(addr, me, name) if addr else None
        # The reply is not read, so it stays undecoded bytes.
        self._call: grpc.aio.UnaryUnaryMultiCallable[Message, bytes] | None = (
            self._channel.unary_unary(method, request_serializer=_serialize) if self._channel else None
        )
        # The loop keeps only weak references to tasks: these strong ones keep a call alive until it ends.
        self._pending: set[asyncio.Task[None]] = set()

    def tell(self, request: Message, tenant_id: str) -> None:
        """Starts the call and returns at once."""
        if self._call is None:
            return
        if len(self._pending) >= self._limit:
            log.warning("%s not told (%d calls pending); it catches up from the event log", self._method, self._limit)
            return
        task = asyncio.get_running_loop().create_task(self.wait(request, tenant_id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def wait(self, request: Message, tenant_id: str) -> None:
        """Calls and waits (up to `timeout`): for a write whose client's next call depends on the peer's new
        state, e.g. a tenant's first key, which the handshake that follows needs onboarding to know."""
        if self._call is None:
            return
        try:
            metadata = principal.service_metadata(self._caller, tenant_id)
            await self._call(request, metadata=metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            log.warning("%s not told (%s); it catches up from the event log", self._method, exc.code().name)
        except Exception:  # a hint must never fail loudly, but a bug in sending one must show
            log.exception("%s not told; it catches up from the event log", self._method)

    async def drain(self) -> None:
        """Waits for the calls in flight (each ends within its deadline)."""
        if self._pending:
            await asyncio.wait(set(self._pending))

    async def close(self) -> None:
        await self.drain()
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
