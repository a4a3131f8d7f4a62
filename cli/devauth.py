"""The local development identity provider: an RSA key pair, its JWKS for Envoy, and token minting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import JWT_AUDIENCE, JWT_ISSUER

KID = "aos-dev-1"


def ensure_keys(data_dir: Path) -> Path:
    """Creates the dev signing key and JWKS under data_dir/dev once; returns the JWKS path."""
    dev = data_dir / "dev"
    key_path, jwks_path = dev / "signing-key.pem", dev / "jwks.json"
    if key_path.exists() and jwks_path.exists():
        return jwks_path
    dev.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_path.write_bytes(pem)
    key_path.chmod(0o600)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks_path.write_text(json.dumps({"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}))
    return jwks_path


def mint(
    data_dir: Path,
    *,
    user: str,
    email: str,
    tenant: str | None = None,
    role: str = "owner",
    operator: bool = False,
    email_verified: bool = True,
    ttl_seconds: int = 3600,
) -> str:
    ensure_keys(data_dir)
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "sub": user,
        "email": email,
        "email_verified": email_verified,
        "aos_kind": "operator" if operator else "human",
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if tenant:
        claims |= {"org_id": tenant, "role": role}
    key = (data_dir / "dev" / "signing-key.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
