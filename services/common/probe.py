"""`python -m services.common.probe <service>`: a service's Kubernetes probe. The kubelet's own gRPC probe
speaks no TLS and a service port speaks only mutual TLS, so this asks the service's gRPC health over mutual
TLS with the service's own certificate, reading the environment the service reads (<SVC>_GRPC_PORT,
<SVC>_TLS_CERT_FILE, <SVC>_TLS_KEY_FILE, <SVC>_TLS_CA_FILE), and exits 0 only on SERVING. It imports no more
than grpc, to start fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import tls


def check(svc: str, timeout: float = 2.0) -> str:
    """The service's health status name, or the gRPC code that kept it from answering."""
    prefix, env = svc.upper(), os.environ
    ca, key, cert = (Path(env[f"{prefix}_TLS_{part}_FILE"]).read_bytes() for part in ("CA", "KEY", "CERT"))
    target = f"127.0.0.1:{env.get(f'{prefix}_GRPC_PORT', '50051')}"
    options = [("grpc.ssl_target_name_override", tls.server_name(svc))]
    with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca, key, cert), options=options) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


if __name__ == "__main__":
    status = check(sys.argv[1])
    print(status)
    sys.exit(0 if status == "SERVING" else 1)
