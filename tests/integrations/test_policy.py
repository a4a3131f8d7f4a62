"""Pure rules: the status machines, credential references, endpoints and connection URLs, and the SPEC 6.4
limits arithmetic."""

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
        policy.credential_ref(ref, env_allowed={"OPENAI_KEY"})
    assert caught.value.violations[0][0] == "credential_ref" and ref not in caught.value.message


def test_reference_schemes() -> None:
    sealed = "encrypted://" + "A" * 40
    assert policy.credential_ref(f" {sealed} ", env_allowed=()) == sealed
    assert policy.credential_ref("", env_allowed=()) == ""
    for bad in ("vault://x", "encrypted://AA", "env://1bad"):
        with pytest.raises(InvalidArgument):
            policy.credential_ref(bad, env_allowed={"1bad"})


def test_env_references_only_for_allowlisted_variables() -> None:
    # The attack of issue 11: env://HOME sent the process's environment to a tenant's URL.
    for ref in ("env://HOME", "env://OPENAI_KEY", "env://AOS_DATABASE_URL"):
        with pytest.raises(InvalidArgument) as caught:
            policy.credential_ref(ref, env_allowed=())
        assert caught.value.violations[0][0] == "credential_ref"
    with pytest.raises(InvalidArgument):
        policy.credential_ref("env://HOME", env_allowed={"OPENAI_KEY"})
    assert policy.credential_ref("env://OPENAI_KEY", env_allowed={"OPENAI_KEY"}) == "env://OPENAI_KEY"
    assert not policy.env_allowed_ref("env://openai_key", {"OPENAI_KEY"})  # names match exactly


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/",
        "http:///nohost",
        "http://[::1/",
        "http://h:0/",
        "http://h:abc/",
        "ftp://example.com/",
        "example.com/v1",
        "http://user:pw@example.com/",
        "http://exa mple.com/",
        "http://example.com/\x00",
    ],
)
def test_malformed_endpoints_are_refused_naming_the_field(url: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        policy.endpoint("config.base_url", url)
    assert caught.value.violations[0][0] == "config.base_url" and "pw" not in caught.value.message


def test_endpoints_that_are_fine() -> None:
    for url in ("https://api.openai.com/v1", "http://127.0.0.1:8080/v1", "http://[::1]:1/x", "HTTP://Example.com"):
        assert policy.endpoint("endpoint", f" {url} ") == url
    assert policy.endpoint("endpoint", "") == ""


@pytest.mark.parametrize(
    "dsn", ["not a url", "postgresql://u:hunter2@h:99999/d", "postgresql://u:hunter2@[::1/d", "mysql://u:hunter2@h/d"]
)
def test_connection_urls_are_parsed_without_echoing_them(dsn: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        policy.dsn("credential", dsn)
    assert caught.value.violations[0][0] == "credential" and "hunter2" not in caught.value.message


def test_connection_urls_that_are_fine() -> None:
    assert policy.dsn("credential", "postgresql://u:p@db.example:5432/app").host == "db.example"
    assert policy.dsn("credential", "postgresql:///app?host=/tmp/sock").query["host"] == "/tmp/sock"


def test_limits_arithmetic() -> None:
    assert policy.percent(0, 0) == 0 and policy.percent(50, 0) == 0
    assert policy.percent(25, 200) == 12.5 and policy.percent(500, 100) == 100
    assert policy.billing_period(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert policy.billing_period(datetime(2026, 2, 10, tzinfo=UTC))[1] == datetime(2026, 3, 1, tzinfo=UTC)
