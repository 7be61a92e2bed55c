"""The summary of docs/performance.md, built from the figures of one ``make bench`` run (never written by hand).

Each row says its target, what this run measured and the verdict; the heading dates the run and states the machine's
load (the 1-minute load average at its start and end, and the highest seen between the parts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RSS_TARGET_MB = 150.0


def _verdict(value: float, limit: float, unit: str = "ms", digits: int = 2) -> str:
    if math.isnan(value):
        return "not measured"
    if value <= limit:
        return f"met ({limit - value:.{digits}f} {unit} to spare)"
    return f"missed by {value - limit:.{digits}f} {unit}"


def _cold_rows(coldstart: Any) -> list[list[str]]:
    rows = []
    base = next((row.median for row in coldstart.rows if row.name == "bare interpreter"), math.nan)
    for row in coldstart.rows:
        if row.name.startswith("bare"):
            continue
        if row.skipped or row.failure:
            rows.append([f"{row.name} cold start", "—", row.skipped or f"failed: {row.failure}", "not measured"])
            continue
        target = "—" if row.target_ms is None else f"≤ {row.target_ms:.0f} ms"
        measured = f"{row.median:.0f} ms median, p90 {row.p90:.0f} ms (bare interpreter {base:.0f} ms)"
        verdict = "(no target)" if row.target_ms is None else _verdict(row.median, row.target_ms, digits=0)
        rows.append([f"{row.name} cold start ({row.event})", target, measured, verdict])
    return rows


def _handler_rows(reports: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    from infra.bench_support.handler_report import verdicts

    targets = verdicts(reports)

    def stages(key: str) -> str:
        report = reports[key]
        top = sorted(report["stages"].items(), key=lambda item: -item[1])[:4]
        return ", ".join(f"{name} {value:.2f}" for name, value in top)

    default, cached, virtual, botocore = (reports[key] for key in ("default", "cached", "virtual", "botocore"))
    return [
        [
            "proxy handler CPU per warm `tools/call`, default settings (grant read per call), store's time excluded",
            targets["default"][0],
            f"{default['handler_ms']:.2f} ms (largest stages, ms: {stages('default')}); "
            f"{default['reads_per_call']:.2f} reads, {default['kms_per_call']:.0f} KMS calls per call",
            targets["default"][1],
        ],
        [
            "same, verified-token and grant cache hit",
            targets["cached"][0],
            f"{cached['handler_ms']:.2f} ms ({stages('cached')}); {cached['reads_per_call']:.2f} reads, "
            f"{cached['kms_per_call']:.0f} KMS calls per call",
            targets["cached"][1],
        ],
        [
            "same, virtual route over the same upstream",
            targets["virtual"][0],
            f"{virtual['handler_ms']:.2f} ms ({virtual['handler_ms'] - default['handler_ms']:+.2f} ms over plain)",
            targets["virtual"][1],
        ],
        [
            "lever: the grant read's client side, direct signed request vs botocore",
            "(halve it)",
            f"{default['stages']['grant read']:.2f} ms vs {botocore['stages']['grant read']:.2f} ms per `GetItem`; "
            f"handler {default['handler_ms']:.2f} vs {botocore['handler_ms']:.2f} ms",
            "halved" if default["stages"]["grant read"] <= botocore["stages"]["grant read"] / 2 else "not halved",
        ],
        [
            "work after the answer: the `tool.called` audit write",
            "off the request path",
            f"{default['after_ms']:.2f} ms of CPU after the handler returned ({default['writes_per_call']:.2f} "
            "writes per call)",
            "off the answer's path (billed in the same invocation)",
        ],
    ]


def _proxy_rows(figures: Mapping[str, Any]) -> list[list[str]]:
    by_concurrency = figures["by_concurrency"]
    rows = []
    one = by_concurrency.get(1)
    if one is not None:
        targets = proxy_verdicts(one, figures["get_item_ms"])
        direct = one["direct"]["p50_ms"]
        base = one["pass-through"]["p50_ms"] - direct
        for label in ("gateway", "gateway, grant cache 30 s", "gateway, streaming mode", "gateway, virtual route"):
            added = one[label]["p50_ms"] - direct
            measured = (
                f"+{added:.2f} ms p50 ({direct:.2f} → {one[label]['p50_ms']:.2f} ms); pass-through +{base:.2f} ms; "
                f"store round trip {figures['get_item_ms']:.2f} ms; gateway CPU {one[label]['gateway_cpu_ms']:.2f} "
                "ms/req"
            )
            rows.append([f"added p50 through `make dev`, concurrency 1: {label}", *targets[label][:1], measured,
                         targets[label][1]])  # fmt: skip
    for concurrency, measured in sorted(by_concurrency.items()):
        direct_rate = measured["direct"]["throughput"] or math.nan
        ratios = ", ".join(
            f"{label} {measured[label]['throughput'] / direct_rate:.0%}"
            for label in ("pass-through", "gateway", "gateway, grant cache 30 s")
        )
        rows.append([f"throughput vs direct, concurrency {concurrency}", "(measured)", ratios, "—"])
    return rows


def proxy_verdicts(measured: Mapping[str, Mapping[str, Any]], get_item_ms: float) -> dict[str, tuple[str, str]]:
    """(target, verdict) of the rows at concurrency 1 (issue 23 item 3)."""
    direct = measured["direct"]["p50_ms"]
    base = measured["pass-through"]["p50_ms"] - direct

    def within(label: str, limit: float, text: str) -> tuple[str, str]:
        added = measured[label]["p50_ms"] - direct
        verdict = f"met ({limit - added:.2f} ms to spare)" if added <= limit else f"missed by {added - limit:.2f} ms"
        return f"≤ +{limit:.2f} ms ({text})", verdict

    verdicts = {
        "gateway": within("gateway", base + get_item_ms + 1.0, "pass-through + store round trip + 1.0"),
        "gateway, grant cache 30 s": within("gateway, grant cache 30 s", base + 1.0, "pass-through + 1.0"),
        "gateway, streaming mode": ("(measured)", "—"),
    }
    plain = measured["gateway"]["p50_ms"]
    virtual = measured["gateway, virtual route"]["p50_ms"]
    verdicts["gateway, virtual route"] = (
        f"≤ gateway + 0.30 ms = {plain + 0.3:.2f} ms p50",
        "met" if virtual <= plain + 0.3 else f"missed by {virtual - plain - 0.3:.2f} ms",
    )
    return verdicts


def summary(findings: Mapping[str, Any], started: str, ended: str, loads: Sequence[float], cpus: int | None) -> str:
    """The summary table of one run: ``findings`` holds each part's figures (``coldstart``: the cold-start report,
    ``rss``: peak MB by function, ``handler`` and ``proxy``: their parts' figures)."""
    rows: list[list[str]] = []
    if "coldstart" in findings:
        rows.extend(_cold_rows(findings["coldstart"]))
    if findings.get("rss"):
        peak_name, peak = max(findings["rss"].items(), key=lambda item: item[1])
        verdict = _verdict(peak, RSS_TARGET_MB, "MB", digits=0)
        rows.append(["peak RSS after the warm invocations", f"≤ {RSS_TARGET_MB:.0f} MB",
                     f"{peak:.0f} MB at most ({peak_name})", verdict])  # fmt: skip
    if "handler" in findings:
        rows.extend(_handler_rows(findings["handler"]))
    if "proxy" in findings:
        rows.extend(_proxy_rows(findings["proxy"]))
    heading = (
        f"Run of {started} to {ended} (UTC), {cpus} CPUs shared with other work: 1-minute load average "
        f"{loads[0]:.2f} at the start, {loads[-1]:.2f} at the end, {max(loads):.2f} at most between the parts. "
        "Every figure below comes from that one run (`make bench --write-docs`); the sections further down are "
        "the same run's tables.\n\n"
    )
    table = ["| what | target | measured | verdict |", "|---|---|---|---|"]
    table.extend("| " + " | ".join(row) + " |" for row in rows)
    return heading + "\n".join(table)
