"""gRPC channels to peer services, over mutual TLS. A peer that starts after its caller (`aos up` starts
every service at once) or restarts is found again within ~0.2-2 s, instead of after gRPC's default
reconnect backoff (1 s, growing to 120 s), during which every call fails at once with UNAVAILABLE.

gRPC reads a channel's client certificate once, when the channel is made; a renewed certificate must not
wait for a restart (the old one expires), so a peer channel looks at its files at most once a second and
moves new calls to a fresh channel when they changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import grpc

from services.common import tls

RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# The one retry policy of every call to a peer: a call that could not reach the peer (UNAVAILABLE: a
# restart, a replaced replica) is tried twice more within its own deadline; nothing else is retried.
RETRY = (
    "grpc.service_config",
    json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{}],
                    "retryPolicy": {
                        "maxAttempts": 3,
                        "initialBackoff": "0.05s",
                        "maxBackoff": "0.2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    ),
)
CHECK_SECONDS = 1.0  # how often a peer channel looks whether its certificate files changed
DRAIN_SECONDS = 30.0  # calls still on a replaced channel get this long before it closes


def peer(addr: str, me: tls.Identity, name: str, *options: tuple[str, str | int]) -> grpc.aio.Channel:
    """A channel to the service `name` at `addr`, presenting `me`'s certificate. The server must hold a
    certificate of our CA for `name` (its DNS SAN tls.server_name(name)), whatever address it answers on."""
    target = ("grpc.ssl_target_name_override", tls.server_name(name))
    return Renewing(addr, me, [*RECONNECT, RETRY, target, *options])


class Renewing(grpc.aio.Channel):
    """A channel that follows its identity's certificate files. Stubs keep the callables this hands out;
    each call runs on the channel of the current certificate."""

    def __init__(self, addr: str, me: tls.Identity, options: list[tuple[str, Any]]) -> None:
        self._addr, self._options, self._watch = addr, options, tls.Watch(me)
        self._channel = self._open(me.load())
        self._next_check = time.monotonic() + CHECK_SECONDS
        self._draining: set[asyncio.Task[None]] = set()

    def _open(self, files: tuple[bytes, bytes, bytes]) -> grpc.aio.Channel:
        credentials = self._watch.identity.channel_credentials(files)
        return grpc.aio.secure_channel(self._addr, credentials, options=self._options)

    def current(self) -> grpc.aio.Channel:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_SECONDS
            files = self._watch.changed()
            if files is not None:
                old, self._channel = self._channel, self._open(files)
                task = asyncio.get_running_loop().create_task(old.close(DRAIN_SECONDS))
                self._draining.add(task)
                task.add_done_callback(self._draining.discard)
        return self._channel

    def _follow(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Current(self, lambda channel: getattr(channel, kind)(method, *args, **kwargs))

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._follow("unary_unary", method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._follow("unary_stream", method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._follow("stream_unary", method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._follow("stream_stream", method, *args, **kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    async def close(self, grace: float | None = None) -> None:
        for task in list(self._draining):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._channel.close(grace)

    async def __aenter__(self) -> Renewing:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Current:
    """A multi-callable that makes each call on the peer's current channel (rebuilt after a renewal)."""

    __slots__ = ("_call", "_for", "_make", "_peer")

    def __init__(self, peer: Renewing, make: Callable[[grpc.aio.Channel], Any]) -> None:
        self._peer, self._make = peer, make
        self._for: grpc.aio.Channel | None = None
        self._call: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        channel = self._peer.current()
        if channel is not self._for:
            self._for, self._call = channel, self._make(channel)
        return self._call(*args, **kwargs)
