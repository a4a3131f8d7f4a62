"""Pure rules of the caller: one set of roles for every service, and what an API key may hand on."""

import pytest

from services.common import principal
from services.common.errors import PermissionDenied
from services.common.principal import Kind, Principal


def human(role: str) -> Principal:
    return Principal(Kind.HUMAN, "u1", tenant_id="t1", role=role)


def key(*scopes: str) -> Principal:
    return Principal(Kind.API_KEY, "k1", tenant_id="t1", scopes=scopes)


def test_owners_and_admins_manage_everyone_reads() -> None:
    assert principal.MANAGERS == ("owner", "admin") and set(principal.READERS) == set(principal.ROLES)
    for role in principal.ROLES:
        human(role).require_role(*principal.READERS)
    for role in ("member", "viewer", "", "root"):
        with pytest.raises(PermissionDenied):
            human(role).require_role(*principal.MANAGERS)
    with pytest.raises(PermissionDenied):
        human("viewer").require_role(*principal.WRITERS)
    key().require_role(*principal.MANAGERS)  # keys are bounded by their scopes (the gate rule), not a role


@pytest.mark.parametrize(
    ("held", "granted", "allowed"),
    [
        (("*",), ["*", "keys:create", "run:*"], True),
        (("keys:create",), ["*"], False),  # issue 11: a keys:create key minted a * key
        (("keys:create",), ["keys:create"], True),
        (("keys:*",), ["keys:create", "keys:revoke", "keys:*"], True),
        (("keys:*",), ["run:x"], False),
        (("run:x",), ["run:*"], False),
        (("run:*", "read:*"), ["run:*", "read:*"], True),
        (("keys:create", "keys:revoke"), ["*"], False),
        ((), [], True),
    ],
)
def test_a_key_hands_on_only_scopes_it_holds(held: tuple[str, ...], granted: list[str], allowed: bool) -> None:
    if allowed:
        key(*held).require_scopes(granted)
    else:
        with pytest.raises(PermissionDenied) as caught:
            key(*held).require_scopes(granted)
        assert caught.value.reason == "SCOPE_REQUIRED"


def test_humans_grant_by_role_not_by_scope() -> None:
    human("owner").require_scopes(["*"])
    human("admin").require_scopes(["keys:create", "*"])
