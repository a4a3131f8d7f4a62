"""The pure query rules of the incident topics, the facade and the founder lists (MONITORING.md 0.3, section 2):
every refusal names its parameter, before any database access."""

from __future__ import annotations

from typing import Any

import pytest

from aos.monitoring.v1 import founder_service_pb2 as fdr
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common.errors import InvalidArgument
from services.monitoring import queries, querystring

TOPICS = {
    "active": rpc.ListActiveIncidentsRequest,
    "resolved": rpc.ListResolvedIncidentsRequest,
    "historical": rpc.ListHistoricalIncidentsRequest,
}


def facade(raw: str, topics: dict[str, Any]) -> tuple[str, Any]:
    """What ListIncidentsFacade does with the query the gateway hands over whole."""
    params = querystring.parse(raw)
    topic = querystring.topic(params, tuple(topics))
    return topic, querystring.message(params, topics[topic])


def refusal(call: Any, *args: Any) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as refused:
        call(*args)
    return refused.value.violations[0][0], refused.value.reason


def test_the_facade_builds_the_topics_own_request() -> None:
    topic, request = facade(
        "topic=historical&severity=HIGH&severity=LOW&is_synthetic=false&retention_days=60&sort_by=created_at+x", TOPICS
    )
    assert topic == "historical" and isinstance(request, rpc.ListHistoricalIncidentsRequest)
    assert list(request.severity) == ["HIGH", "LOW"] and request.HasField("is_synthetic") and not request.is_synthetic
    assert request.retention_days == 60 and request.sort_by == "created_at x"  # '+' is a space, as in forms
    topic, request = facade("topic=active&limit=-1&created_after=2026-01-01T00%3A00%3A00%2B02%3A00", TOPICS)
    assert request.limit == -1 and request.created_after == "2026-01-01T00:00:00+02:00"
    assert refusal(queries.active_incidents, request) == ("limit", "INVALID_QUERY")  # the topic's own rules


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ("", "topic", "INVALID_QUERY"),
        ("limit=1", "topic", "INVALID_QUERY"),
        ("topic=", "topic", "INVALID_QUERY"),
        ("topic=Active", "topic", "INVALID_QUERY"),
        ("topic=active&topic=active", "topic", "INVALID_QUERY"),
        ("topic=active&bogus", "bogus", "INVALID_QUERY"),
        ("topic=active&page_size=1&page_size=1", "page_size", "INVALID_QUERY"),
        ("topic=active&resolved_after=2026-01-01T00:00:00Z", "resolved_after", "INVALID_QUERY"),
        ("topic=resolved&retention_days=7", "retention_days", "INVALID_QUERY"),
        ("topic=active&offset=1.5", "offset", "INVALID_QUERY"),
        ("topic=active&offset=99999999999", "offset", "INVALID_QUERY"),
        ("topic=active&is_synthetic=1", "is_synthetic", "INVALID_QUERY"),
        ("as_of=x&topic=active", "as_of", "UNSUPPORTED_PARAM"),
    ],
)
def test_the_facade_names_what_it_refuses(query: str, field: str, reason: str) -> None:
    assert refusal(facade, query, TOPICS) == (field, reason)


@pytest.mark.parametrize(
    ("call", "request_", "field"),
    [
        (queries.historical_incidents, rpc.ListHistoricalIncidentsRequest(retention_days=6), "retention_days"),
        (queries.historical_incidents, rpc.ListHistoricalIncidentsRequest(retention_days=366), "retention_days"),
        (queries.historical_incidents, rpc.ListHistoricalIncidentsRequest(sort_by="title"), "sort_by"),
        (queries.window_days, rpc.GetIncidentMetricsRequest(window_days=0), "window_days"),
        (queries.window_days, rpc.GetIncidentMetricsRequest(window_days=91), "window_days"),
        (queries.all_runs, fdr.ListAllRunsRequest(page_size=201), "page_size"),
        (queries.all_runs, fdr.ListAllRunsRequest(tenant_id="t" * 65), "tenant_id"),
        (queries.all_incidents, fdr.ListAllIncidentsRequest(page_token="eA=="), "page_token"),
    ],
)
def test_ranges_are_refused(call: Any, request_: Any, field: str) -> None:
    assert refusal(call, request_) == (field, "INVALID_QUERY")


def test_defaults() -> None:
    assert queries.window_days(rpc.GetIncidentMetricsRequest()) == 30
    assert queries.historical_incidents(rpc.ListHistoricalIncidentsRequest()).page.size == 20
    listing = queries.all_runs(fdr.ListAllRunsRequest())
    assert (listing.page.size, listing.page.offset, listing.page.legacy, listing.where) == (50, 0, False, [])
