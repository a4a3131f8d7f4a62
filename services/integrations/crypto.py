"""Envelope encryption of credentials (AES-256-GCM).

Each tenant has one random 256-bit data key, stored only wrapped by a key-encryption key (KEK) from
configuration. A credential is sealed with its tenant's data key and an AAD that binds it to the tenant
and the resource it belongs to, so a ciphertext copied to another row or tenant does not decrypt.
Rotating the KEK re-wraps the data keys; credential ciphertexts never change, so they keep decrypting.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

SCHEME = "encrypted://"
_NONCE = 12


class DecryptionFailed(Exception):
    """Wrong key, wrong tenant/resource binding, or a tampered ciphertext."""


def _wrap_aad(tenant_id: str, kek_id: str) -> bytes:
    return f"aos:data-key|tenant:{tenant_id}|kek:{kek_id}".encode()


def credential_aad(tenant_id: str, kind: str, resource_id: str) -> bytes:
    # SPEC 6.3: "tenant:<id>" plus sorted "|k:v" pairs.
    return f"tenant:{tenant_id}|{kind}:{resource_id}".encode()


class Keyring:
    def __init__(self, keks: dict[str, SecretStr], active: str) -> None:
        self._keks = {k: AESGCM(base64.b64decode(v.get_secret_value())) for k, v in keks.items()}
        self.active = active

    def new_data_key(self) -> bytes:
        return AESGCM.generate_key(bit_length=256)

    def wrap(self, tenant_id: str, data_key: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE)
        sealed = self._keks[self.active].encrypt(nonce, data_key, _wrap_aad(tenant_id, self.active))
        return self.active, nonce + sealed

    def unwrap(self, tenant_id: str, kek_id: str, wrapped: bytes) -> bytes:
        kek = self._keks.get(kek_id)
        if kek is None:
            raise DecryptionFailed(f"KEK {kek_id!r} is not configured")
        try:
            return kek.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _wrap_aad(tenant_id, kek_id))
        except InvalidTag as exc:
            raise DecryptionFailed("data key does not unwrap") from exc


def seal(data_key: bytes, aad: bytes, secret: str) -> str:
    nonce = os.urandom(_NONCE)
    blob = nonce + AESGCM(data_key).encrypt(nonce, secret.encode(), aad)
    return SCHEME + base64.urlsafe_b64encode(blob).decode()


def open_sealed(data_key: bytes, aad: bytes, ref: str) -> str:
    blob = base64.urlsafe_b64decode(ref.removeprefix(SCHEME).encode())
    try:
        return AESGCM(data_key).decrypt(blob[:_NONCE], blob[_NONCE:], aad).decode()
    except (InvalidTag, UnicodeDecodeError) as exc:
        raise DecryptionFailed("credential does not decrypt") from exc
