"""The template's CloudWatch dashboard shows figures the functions emit (issue 26 item 4): every metric a widget
reads, with its dimension set, is one some request's EMF document carries, and the Overview's figures per tool
(calls, latency gateway vs upstream, errors by origin) and its most active clients and users are all there."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from gateway.observability import Observation, ObserveRequests
from infra.devserver import REPO_ROOT
from infra.template import load_template

Metric = tuple[str, frozenset[str]]  # name, dimension names


def _dashboard() -> dict[str, Any]:
    body = load_template(REPO_ROOT / "template.yaml")["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    text = re.sub(r"\$\{[^}]+\}", "X", body["Fn::Sub"])  # the stack's names and region
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def _read_by_dashboard(dashboard: dict[str, Any]) -> set[Metric]:
    """(metric, dimensions) of every McpGateway metric the widgets read: plain rows (with CloudWatch's "." and "..."
    shorthands for the previous row's values) and SEARCH expressions."""
    read: set[Metric] = set()
    for widget in dashboard["widgets"]:
        previous: list[str] = []
        for row in widget["properties"].get("metrics", []):
            values = [item for item in row if not isinstance(item, dict)]
            expressions = [item["expression"] for item in row if isinstance(item, dict) and "expression" in item]
            for expression in expressions:
                schema = re.search(r"\{McpGateway,([^}]*)\}", expression)
                if schema:
                    dimensions = frozenset(schema.group(1).split(","))
                    read |= {(name, dimensions) for name in re.findall(r'MetricName=\\?"(\w+)', expression)}
            if not values:
                continue
            if values == ["..."]:
                values = previous
            values = [previous[n] if value == "." else value for n, value in enumerate(values)]
            if values[0] == "McpGateway":
                read.add((values[1], frozenset(values[2::2])))
            previous = values
    return read


def _emitted() -> set[Metric]:
    """(metric, dimensions) of the EMF documents of a proxied call (ok and failed by every origin) and a token."""
    emitted: set[Metric] = set()
    cases: list[tuple[str, Observation, int]] = [
        ("proxy", Observation(route="demo/echo", tool="echo", tool_outcome="ok", upstream_ms=2), 200),
        ("proxy", Observation(route="demo/echo", tool="echo", tool_outcome="error", upstream_ms=2), 200),
        ("proxy", Observation(route="demo/echo", tool="echo", tool_outcome="auth_required", upstream_ms=2), 200),
        ("proxy", Observation(route="demo/echo", tool="echo", tool_outcome="http_502", upstream_ms=2), 502),
        ("proxy", Observation(route="demo/echo", tool="echo", tool_outcome="http_500"), 500),
        ("proxy", Observation(route="demo/echo"), 400),
        ("token", Observation(route="demo/echo", method="authorization_code", counts={"TokensIssued": 1}), 200),
        ("token", Observation(route="demo/echo", method="refresh_token", counts={"TokensRefreshed": 1}), 200),
    ]  # fmt: skip
    for service, seen, status in cases:
        observer = ObserveRequests(cast(Any, None), service, sink=None)
        observer.known_tools = {"demo/echo": {"echo"}}  # a tool the upstream answered: a bounded dimension value
        document = observer.metrics(seen, status, 5.0)
        directive = document["_aws"]["CloudWatchMetrics"][0]
        names = [metric["Name"] for metric in directive["Metrics"]]
        emitted |= {(name, frozenset(dims)) for dims in directive["Dimensions"] for name in names}
    return emitted


def test_every_metric_the_dashboard_reads_is_emitted_with_its_dimensions() -> None:
    read, emitted = _read_by_dashboard(_dashboard()), _emitted()
    assert read, "the dashboard reads no McpGateway metric"
    assert read <= emitted, f"read but never emitted: {sorted(read - emitted, key=str)}"


def test_the_dashboard_shows_the_overviews_figures_per_tool_and_its_most_active_callers() -> None:
    dashboard = _dashboard()
    per_tool = frozenset({"route", "service", "tool"})
    read = _read_by_dashboard(dashboard)
    for name in ("Requests", "GatewayLatency", "UpstreamLatency", "ErrorsGateway", "ErrorsUpstream", "ErrorsAuth"):
        assert (name, per_tool) in read, f"no {name} per tool"
    queries = [w["properties"]["query"] for w in dashboard["widgets"] if w["type"] == "log"]
    assert any("by client, user" in query and "sort calls desc" in query for query in queries)
