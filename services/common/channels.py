"""gRPC channels to peer services, over mutual TLS. A peer that starts after its caller (`aos up` starts
every service at once) or restarts is found again within ~0.2-2 s, instead of after gRPC's default
reconnect backoff (1 s, growing to 120 s), during which every call fails at once with UNAVAILABLE."""

from __future__ import annotations

import grpc

from services.common import tls

RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def peer(addr: str, me: tls.Identity, name: str, *options: tuple[str, str | int]) -> grpc.aio.Channel:
    """A channel to the service `name` at `addr`, presenting `me`'s certificate. The server must hold a
    certificate of our CA for `name` (its DNS SAN tls.server_name(name)), whatever address it answers on."""
    target = ("grpc.ssl_target_name_override", tls.server_name(name))
    return grpc.aio.secure_channel(addr, me.channel_credentials(), options=[*RECONNECT, target, *options])
