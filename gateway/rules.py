"""Every RPC of the aos.* services with its gate rule, read from the descriptor set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2

from aos.gate.v1 import gate_pb2


@dataclass(frozen=True)
class Method:
    service: str  # fully qualified, e.g. aos.account.v1.AccountService
    name: str
    rule: gate_pb2.Rule
    http: bool
    # The REST bindings as (verb, path template), e.g. ("post", "/traces/{run_id}").
    bindings: tuple[tuple[str, str], ...] = ()

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def cluster(self) -> str:
        return self.service.split(".")[1]


def load_methods(descriptor_set: bytes) -> list[Method]:
    """Every RPC of the aos.* services with its gate rule; raises when an RPC has none."""
    # The http extension is registered before parsing: options parsed without it keep the binding as unknown
    # bytes, which HasExtension still finds but whose paths read empty.
    http_rule = _http_rule()
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    methods, missing = [], []
    for file in fds.file:
        if not file.package.startswith("aos."):
            continue
        for service in file.service:
            for rpc in service.method:
                options = rpc.options
                full = f"{file.package}.{service.name}.{rpc.name}"
                if not options.HasExtension(gate_pb2.rule):
                    missing.append(full)
                    continue
                http = options.HasExtension(http_rule)
                bindings = _bindings(options.Extensions[http_rule]) if http else ()
                rule = options.Extensions[gate_pb2.rule]
                methods.append(Method(f"{file.package}.{service.name}", rpc.name, rule, http, bindings))
    if missing:
        raise ValueError(f"RPCs without an (aos.gate.v1.rule) option: {', '.join(sorted(missing))}")
    return methods


# A request message with this string field takes its REST query string whole: the gateway hands the query over
# unparsed (raw_query.lua) and the service parses it, naming unknown or repeated parameters itself (the legacy
# facades' INVALID_QUERY answers). Elsewhere the transcoder refuses unknown parameters with its own body.
RAW_QUERY = "raw_query"


def raw_query_paths(descriptor_set: bytes) -> list[str]:
    """The GET paths (every binding) of the RPCs whose request message has a `raw_query` field."""
    http_rule = _http_rule()  # registered before parsing, as in load_methods
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    takes_raw = {
        f".{file.package}.{message.name}"
        for file in fds.file
        for message in file.message_type
        if any(f.name == RAW_QUERY and f.type == f.TYPE_STRING for f in message.field)
    }
    paths = []
    for file in fds.file:
        for service in file.service if file.package.startswith("aos.") else ():
            for rpc in service.method:
                if rpc.input_type not in takes_raw or not rpc.options.HasExtension(http_rule):
                    continue
                rule = rpc.options.Extensions[http_rule]
                for binding in (rule, *rule.additional_bindings):
                    if not binding.get or "{" in binding.get:
                        raise ValueError(f"{rpc.name}: a raw_query RPC is bound to fixed GET paths only")
                    paths.append(binding.get)
    return sorted(paths)


def check_rules(methods: list[Method]) -> list[str]:
    """Contract problems the build refuses: internal RPCs with REST bindings or no named caller, public RPCs
    nobody may call, callers that are no service of the tree."""
    problems = []
    services = {m.cluster for m in methods}
    for m in methods:
        internal = m.rule.audience == gate_pb2.AUDIENCE_INTERNAL
        if m.rule.audience == gate_pb2.AUDIENCE_UNSPECIFIED:
            problems.append(f"{m.path}: gate rule has no audience")
        if internal and m.http:
            problems.append(f"{m.path}: internal RPC must not have an HTTP binding")
        if not m.rule.principals:
            problems.append(f"{m.path}: gate rule allows no principal kind")
        problems += _caller_problems(m, internal, services)
    return problems


def _caller_problems(m: Method, internal: bool, services: set[str]) -> list[str]:
    """Service callers are named (always for internal RPCs), and only where service principals are allowed."""
    as_service = gate_pb2.PRINCIPAL_KIND_SERVICE in m.rule.principals
    problems = [f"{m.path}: caller {c!r} is not a service" for c in m.rule.callers if c not in services]
    if (internal or as_service) and not m.rule.callers:
        problems.append(f"{m.path}: gate rule names no service that may call it (callers)")
    if m.rule.callers and not as_service:
        problems.append(f"{m.path}: gate rule names callers but allows no service principal")
    return problems


def _http_rule() -> Any:
    from google.api import annotations_pb2

    return annotations_pb2.http


def _bindings(http: Any) -> tuple[tuple[str, str], ...]:
    """Every (verb, path template) of a google.api.http rule, its additional bindings included."""
    found = []
    for one in (http, *http.additional_bindings):
        verb = one.WhichOneof("pattern")
        if verb and verb != "custom":
            found.append((verb, getattr(one, verb)))
    return tuple(found)
