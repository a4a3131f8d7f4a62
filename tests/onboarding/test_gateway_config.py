"""The generated Envoy config puts the gate after the transcoder and before the router, fails closed,
and leaves it out of a stack without onboarding; only the raw_query RPCs get their query string whole."""

from pathlib import Path
from typing import Any

from gateway import config

DESCRIPTOR = Path(__file__).resolve().parents[2] / "gateway" / "aos.binpb"


def _filters(upstreams: dict[str, tuple[str, int]]) -> tuple[list[str], dict[str, Any], list[dict[str, Any]]]:
    gw = config.from_descriptor(DESCRIPTOR, upstreams=upstreams)
    listener = config.render(gw)["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    filters = hcm["http_filters"]
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return [f["name"] for f in filters], {f["name"]: f["typed_config"] for f in filters}, routes


def test_ext_authz_runs_after_the_transcoder_and_before_the_router() -> None:
    names, configs, routes = _filters({"account": ("127.0.0.1", 1), "onboarding": ("127.0.0.1", 2)})
    assert names == [
        "envoy.filters.http.header_mutation",
        "aos.request_id",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.lua",
        "aos.raw_query",
        "envoy.filters.http.buffer",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    authz = configs["envoy.filters.http.ext_authz"]
    assert authz["failure_mode_allow"] is False
    # The gate reads the verified token's claims from jwt_authn's metadata, nothing else carries them.
    assert authz["metadata_context_namespaces"] == ["envoy.filters.http.jwt_authn"]
    assert authz["grpc_service"]["envoy_grpc"]["cluster_name"] == "onboarding"
    # Unknown paths still reach the gate (ext_authz skips requests that match no route).
    assert routes[-1] == {"match": {"prefix": "/"}, "direct_response": {"status": 404}}


def test_a_stack_without_onboarding_renders_without_the_gate() -> None:
    names, _, routes = _filters({"account": ("127.0.0.1", 1)})
    assert "envoy.filters.http.ext_authz" not in names
    assert all(r["match"] != {"prefix": "/"} for r in routes)


def test_an_rpc_allowing_a_larger_body_gets_its_rest_paths_routed_with_that_limit() -> None:
    """StoreTrace's rule takes 2 MiB traces (MONITORING.md 6.2): its REST paths carry the buffer limit on routes
    of their own, ahead of the catch-all; every other path keeps the listener's 1 MiB."""
    _, configs, routes = _filters({"monitoring": ("127.0.0.1", 1), "onboarding": ("127.0.0.1", 2)})
    assert configs["envoy.filters.http.buffer"]["max_request_bytes"] == 1024 * 1024
    larger = [r for r in routes if "safe_regex" in r["match"]]
    assert [(r["match"]["safe_regex"]["regex"], r["match"]["headers"][0]["string_match"]["exact"]) for r in larger] == [
        ("/v1/traces", "POST"),
        ("/traces", "POST"),
    ]
    limit = larger[0]["typed_per_filter_config"]["envoy.filters.http.buffer"]["buffer"]["max_request_bytes"]
    assert limit > 2 * 1024 * 1024 and routes.index(larger[-1]) == len(routes) - 2
    # Without the service, nothing of it is routed.
    _, _, without = _filters({"account": ("127.0.0.1", 1), "onboarding": ("127.0.0.1", 2)})
    assert not [r for r in without if "safe_regex" in r["match"]]


def test_only_the_raw_query_rpcs_get_their_query_whole() -> None:
    """The facades parse their own query (gateway/rules.py RAW_QUERY); the transcoder still refuses unknown
    parameters everywhere else."""
    _, configs, _ = _filters({"monitoring": ("127.0.0.1", 1), "onboarding": ("127.0.0.1", 2)})
    lua = configs["aos.raw_query"]["default_source_code"]["inline_string"]
    facades = ("/cus/activity/runs", "/cus/incidents/list", "/cus/logs/list")
    legacy_only = ("/cus/api_keys/list", "/cus/integrations/list")  # SPEC 2.5, 2.7: no /v1 twin
    paths = sorted([*(p for f in facades for p in (f, f"/v1{f}")), *legacy_only])
    assert lua.startswith("local RAW_QUERY_PATHS = {" + ", ".join(f'["{p}"] = true' for p in paths) + "}\n")
    transcoder = configs["envoy.filters.http.grpc_json_transcoder"]
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
