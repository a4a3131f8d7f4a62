"""Envelope encryption: AAD binds tenant and resource, KEK rotation re-wraps without touching ciphertexts."""

import base64

import pytest
from pydantic import SecretStr

from services.integrations import crypto

K1 = SecretStr(base64.b64encode(b"1" * 32).decode())
K2 = SecretStr(base64.b64encode(b"2" * 32).decode())


def test_seal_open_and_bindings() -> None:
    ring = crypto.Keyring({"k1": K1}, "k1")
    data_key = ring.new_data_key()
    aad = crypto.credential_aad("t1", "integration", "i1")
    sealed = crypto.seal(data_key, aad, "prov-secret")
    assert sealed.startswith("encrypted://") and "prov-secret" not in sealed
    assert crypto.open_sealed(data_key, aad, sealed) == "prov-secret"
    for wrong in (crypto.credential_aad("t2", "integration", "i1"), crypto.credential_aad("t1", "integration", "i2")):
        with pytest.raises(crypto.DecryptionFailed):
            crypto.open_sealed(data_key, wrong, sealed)
    with pytest.raises(crypto.DecryptionFailed):
        crypto.open_sealed(ring.new_data_key(), aad, sealed)


def test_rotation_rewraps_the_data_key_and_old_ciphertexts_still_open() -> None:
    old = crypto.Keyring({"k1": K1}, "k1")
    data_key = old.new_data_key()
    kek_id, wrapped = old.wrap("t1", data_key)
    sealed = crypto.seal(data_key, b"aad", "prov-secret")
    both = crypto.Keyring({"k1": K1, "k2": K2}, "k2")
    new_id, rewrapped = both.wrap("t1", both.unwrap("t1", kek_id, wrapped))
    assert new_id == "k2" and rewrapped != wrapped
    only_new = crypto.Keyring({"k2": K2}, "k2")
    assert crypto.open_sealed(only_new.unwrap("t1", new_id, rewrapped), b"aad", sealed) == "prov-secret"
    with pytest.raises(crypto.DecryptionFailed):
        only_new.unwrap("t1", kek_id, wrapped)  # the retired KEK is gone
    with pytest.raises(crypto.DecryptionFailed):
        both.unwrap("t2", new_id, rewrapped)  # a wrapped key copied to another tenant does not unwrap
