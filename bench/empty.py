"""The baseline every ratio of bench/run.py is taken against: a bare grpc.aio server (uvloop, as the services
run) with one empty unary RPC, in its own process; plaintext, or with the mutual TLS a service serves.

    .venv/bin/python bench/empty.py PORT [--tls DEV_PKI_DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "protos")]

from cli import devtls  # noqa: E402

METHOD = "/bench.Empty/Call"


async def serve(port: int, tls_dir: str) -> None:
    """Over mutual TLS as api_keys when `tls_dir` is given (a hop then reaches it as it reaches a service)."""

    async def call(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return b""

    handler = grpc.method_handlers_generic_handler("bench.Empty", {"Call": grpc.unary_unary_rpc_method_handler(call)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    if tls_dir:
        server.add_secure_port(f"127.0.0.1:{port}", devtls.identity(Path(tls_dir), "api_keys").server_credentials())
    else:
        server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", default="", help="serve mutual TLS from this dev PKI")
    options = parser.parse_args()
    uvloop.run(serve(options.port, options.tls))
