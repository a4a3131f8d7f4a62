"""gRPC channels to peer services. A peer that starts after its caller (`aos up` starts every service at
once) or restarts is found again within ~0.2-2 s, instead of after gRPC's default reconnect backoff
(1 s, growing to 120 s), during which every call fails at once with UNAVAILABLE."""

from __future__ import annotations

import grpc

RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]


def peer(addr: str, *options: tuple[str, str | int]) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=[*RECONNECT, *options])
