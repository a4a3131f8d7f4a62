"""The build refuses RPCs without a gate rule; the gateway config is generated from the rules."""

import ast
import subprocess
import sys

import pytest
from google.protobuf import descriptor_pb2

from aos.gate.v1 import gate_pb2
from cli import gen
from gateway import config, rules

# An internal RPC of the test service aos.x.v1, callable by that service ("x") alone.
INTERNAL = gate_pb2.Rule(
    audience=gate_pb2.AUDIENCE_INTERNAL, principals=[gate_pb2.PRINCIPAL_KIND_SERVICE], callers=["x"]
)


def descriptor(rule: gate_pb2.Rule | None, http: bool = False) -> bytes:
    method = descriptor_pb2.MethodDescriptorProto(name="Do", input_type=".aos.x.v1.R", output_type=".aos.x.v1.R")
    if rule is not None:
        method.options.Extensions[gate_pb2.rule].CopyFrom(rule)
    if http:
        from google.api import annotations_pb2, http_pb2

        method.options.Extensions[annotations_pb2.http].CopyFrom(http_pb2.HttpRule(get="/v1/x"))
    service = descriptor_pb2.ServiceDescriptorProto(name="XService", method=[method])
    file = descriptor_pb2.FileDescriptorProto(name="aos/x/v1/x.proto", package="aos.x.v1", service=[service])
    return descriptor_pb2.FileDescriptorSet(file=[file]).SerializeToString()


def test_an_rpc_without_a_rule_fails_the_build() -> None:
    with pytest.raises(ValueError, match=r"aos\.x\.v1\.XService\.Do"):
        rules.load_methods(descriptor(None))


def test_rule_problems_are_reported() -> None:
    internal_with_rest = rules.load_methods(descriptor(INTERNAL, http=True))
    assert rules.check_rules(internal_with_rest) == [
        "/aos.x.v1.XService/Do: internal RPC must not have an HTTP binding"
    ]
    nobody = rules.load_methods(descriptor(gate_pb2.Rule(audience=gate_pb2.AUDIENCE_CUSTOMER)))
    assert rules.check_rules(nobody) == ["/aos.x.v1.XService/Do: gate rule allows no principal kind"]


def test_an_internal_rpc_names_the_services_that_may_call_it() -> None:
    """`aos gen` refuses an internal RPC (or any rule allowing service callers) without `callers`, callers that
    are no service of the tree, and callers on a rule that allows no service principal."""
    assert rules.check_rules(rules.load_methods(descriptor(INTERNAL))) == []
    nobody = gate_pb2.Rule(audience=gate_pb2.AUDIENCE_INTERNAL, principals=[gate_pb2.PRINCIPAL_KIND_SERVICE])
    assert rules.check_rules(rules.load_methods(descriptor(nobody))) == [
        "/aos.x.v1.XService/Do: gate rule names no service that may call it (callers)"
    ]
    typo = gate_pb2.Rule(audience=gate_pb2.AUDIENCE_INTERNAL, principals=[gate_pb2.PRINCIPAL_KIND_SERVICE])
    typo.callers.append("api-keys")
    assert rules.check_rules(rules.load_methods(descriptor(typo))) == [
        "/aos.x.v1.XService/Do: caller 'api-keys' is not a service"
    ]
    humans = gate_pb2.Rule(
        audience=gate_pb2.AUDIENCE_CUSTOMER, principals=[gate_pb2.PRINCIPAL_KIND_HUMAN], callers=["x"]
    )
    assert rules.check_rules(rules.load_methods(descriptor(humans))) == [
        "/aos.x.v1.XService/Do: gate rule names callers but allows no service principal"
    ]


def test_every_rpc_of_the_tree_has_a_valid_rule_and_internal_ones_are_refused_at_the_edge() -> None:
    methods = rules.load_methods(gen.DESCRIPTOR.read_bytes())
    assert methods and rules.check_rules(methods) == []
    gw = config.Gateway("d", {"account": ("127.0.0.1", 1)}, methods=methods)
    routes = config.render(gw)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"]
    refused = {r["match"]["path"] for r in routes if r.get("direct_response", {}).get("status") == 404}
    assert refused == {m.path for m in methods if m.rule.audience == gate_pb2.AUDIENCE_INTERNAL}
    assert "/aos.account.v1.AccountService/GetActivationEvidence" in refused
    assert all(m.rule.callers for m in methods if m.rule.audience == gate_pb2.AUDIENCE_INTERNAL)


def test_generated_code_and_gateway_config_are_fresh() -> None:
    assert gen.run(check=True) == 0


def test_the_facades_take_their_query_whole_even_in_a_fresh_process() -> None:
    """The gateway hands a facade the URL's query whole (gateway/raw_query.lua): exactly the GET bindings of
    RPCs whose request has a string `raw_query`. A fresh process (the k8s ConfigMap's renderer) must find them
    too: parsed before google.api.http is registered, the bindings would read empty."""
    code = (
        "from pathlib import Path; from gateway import rules; "
        "print(rules.raw_query_paths(Path(rules.__file__).with_name('aos.binpb').read_bytes()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    paths = ast.literal_eval(out)
    assert {"/cus/activity/runs", "/cus/incidents/list", "/cus/logs/list"} <= set(paths)
    assert {f"/v1{p}" for p in ("/cus/activity/runs", "/cus/incidents/list", "/cus/logs/list")} <= set(paths)
    assert "/incidents/active" not in paths
