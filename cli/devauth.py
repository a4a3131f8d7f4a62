"""The local development identity provider: an RSA key pair, its JWKS for Envoy, and token minting.

Its tokens look like a real provider's: `org_id` names the caller's organisation (in dev, the tenant id that
signup gave it), operators carry the operator group in `groups`. Roles are not in the token: the gate reads
them from account's members table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.identity import DEV_AUDIENCE, DEV_ISSUER

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


# The operator group the gate recognises by default (AOS_IDP_OPERATOR_CLAIM / AOS_IDP_OPERATOR_VALUE).
OPERATOR_GROUP = "aos-operators"


def claims(
    *,
    user: str,
    email: str,
    org: str | None = None,
    operator: bool = False,
    email_verified: bool = True,
    ttl_seconds: int = 3600,
    now: int | None = None,
) -> dict[str, object]:
    now = int(time.time()) if now is None else now
    made: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": user,
        "email": email,
        "email_verified": email_verified,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if org:
        made["org_id"] = org
    if operator:
        made["groups"] = [OPERATOR_GROUP]
    return made


def sign(data_dir: Path, payload: dict[str, object]) -> str:
    ensure_keys(data_dir)
    key = (data_dir / "dev" / "signing-key.pem").read_bytes()
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": KID})


def mint(data_dir: Path, **given: Any) -> str:
    """A signed token of `claims(**given)`."""
    return sign(data_dir, claims(**given))
