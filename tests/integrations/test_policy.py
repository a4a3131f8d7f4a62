"""Pure rules: the status machines, credential references and the SPEC 6.4 limits arithmetic."""

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidArgument
from services.integrations import policy


def test_the_machine_allows_exactly_the_spec_transitions() -> None:
    m = policy.INTEGRATION
    assert m.sources("enable") == ("created", "disabled")
    assert m.sources("disable") == ("enabled",)
    assert set(m.sources("delete")) == {"created", "enabled", "disabled", "error"}
    assert (m.target("enable"), m.target("disable"), m.target("delete")) == ("enabled", "disabled", "disabled")
    assert m.refusal("enable", "disabled", deleted=True) == "Cannot enable deleted integration"
    assert "error state" in m.refusal("enable", "error", deleted=False)
    assert policy.CONNECTOR.target("delete") == "deprecated" and policy.DATASOURCE.sources("enable") == (
        "pending",
        "inactive",
    )


@pytest.mark.parametrize("ref", ["sk-abc", "anthropic-x", "az-1", "aws_k", "Sk-mixed"])
def test_raw_secret_prefixes_are_refused_without_echoing_them(ref: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        policy.credential_ref(ref, dev=True)
    assert caught.value.violations[0][0] == "credential_ref" and ref not in caught.value.message


def test_reference_schemes() -> None:
    sealed = "encrypted://" + "A" * 40
    assert policy.credential_ref(f" {sealed} ", dev=False) == sealed
    assert policy.credential_ref("env://OPENAI_KEY", dev=True) == "env://OPENAI_KEY"
    assert policy.credential_ref("", dev=False) == ""
    for bad, dev in (("env://OPENAI_KEY", False), ("env://1bad", True), ("vault://x", True), ("encrypted://AA", True)):
        with pytest.raises(InvalidArgument):
            policy.credential_ref(bad, dev=dev)


def test_limits_arithmetic() -> None:
    assert policy.percent(0, 0) == 0 and policy.percent(50, 0) == 0
    assert policy.percent(25, 200) == 12.5 and policy.percent(500, 100) == 100
    assert policy.billing_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert policy.billing_period(datetime(2026, 2, 10, tzinfo=UTC))[1] == datetime(2026, 3, 1, tzinfo=UTC)
