"""``make bench``: cold start, imports, peak RSS, token-signing choice and proxy overhead (docs/performance.md).

    python -m infra.bench [--only coldstart|rss|tokens|handler|proxy|virtual|dpop] [--runs N] [--write-docs]

Everything runs on 127.0.0.1 against a local stack started here, with the deployment's process boundaries: moto
provisioned from template.yaml (its own process, over kept connections: the store is elsewhere, as DynamoDB is), the
demo upstream MCP server (its own process), and, for the proxy benchmark, the dev server (this process) whose
function containers are processes of their own, as Lambda runs them, and a load client (its own process).

- ``coldstart``: each function's handler in a fresh interpreter (:mod:`infra.bench_support.child`), from spawn to
  the first handled event, with ``.pyc`` compiled (``compileall`` on functions/ and one discarded warm-up round),
  median and p90 of ``--runs``, next to a bare interpreter and a bare handler measured in the same rounds; then one
  ``-X importtime`` run per function for the import breakdown.
- ``rss``: peak RSS (``ru_maxrss``) of a fresh interpreter after ``--rss-iterations`` warm invocations.
- ``tokens``: RS256 vs ES256: local verify cost, token size, KMS Sign latency against moto.
- ``handler``: the proxy handler's CPU per warm ``tools/call``, invoked as Lambda invokes it (no HTTP server), split
  into stages (:mod:`infra.bench_support.handler_report`).
- ``proxy``: ``tools/call`` latency and throughput directly against the demo upstream, through a plain pass-through
  and through the dev server (default settings, grant cache, streaming, a virtual route).
- ``dpop``: the gateway's CPU per warm ``tools/call`` with a DPoP proof beside a Bearer token, and its KMS calls
  (:mod:`infra.bench_support.dpop_cpu`).

The machine is shared and noisy: compare ratios measured within one run, not numbers across runs.
``--write-docs`` rewrites the tables between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` in
docs/performance.md and keeps the prose.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from infra.bench_support import summary
from infra.dev import EXAMPLE_CONFIG, config_for_upstream, gateway_environment
from infra.devserver import REPO_ROOT
from infra.lambda_event import HttpApiRoutes, HttpRequest, build_event
from infra.template import FunctionSpec, functions, load_template

FUNCTIONS_DIR = REPO_ROOT / "functions"
EVENTS_DIR = REPO_ROOT / "events"
DOCS_PATH = REPO_ROOT / "docs" / "performance.md"
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
SUPPORT_DIR = Path(__file__).resolve().parent / "bench_support"
CHILD_SCRIPT = SUPPORT_DIR / "child.py"
LOAD_SCRIPT = SUPPORT_DIR / "load.py"
WARMUP_REQUESTS_PER_THREAD = 20  # what the load client sends per thread before measuring (bench_support/load.py)

HOST = "127.0.0.1"
# The base URL the functions believe they are served at (audiences, metadata URLs); the dev server's real port
# does not matter to them.
PUBLIC_BASE_URL = "http://127.0.0.1:9000"
FIRST_PARTY = frozenset({"gateway", "metadata", "proxy", "register", "authorize", "oauth_token"})
PARTS = ("coldstart", "rss", "tokens", "handler", "proxy", "virtual", "dpop", "console")
CHILD_TIMEOUT_SECONDS = 120.0
LOCAL_REDIRECT_URI = "http://127.0.0.1:33418/callback"


def say(message: str) -> None:
    print(message, flush=True)


# --- statistics ---------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p90 of 10 values is the 9th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def fmt_ms(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.0f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def machine_line() -> str:
    return (
        f"Measured {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {platform.machine()}, {os.cpu_count()} "
        f"CPUs (1-minute load average {os.getloadavg()[0]:.2f}), Python {platform.python_version()} "
        f"({platform.system()} {platform.release()})."
    )


# --- the local stack ----------------------------------------------------------------------------------------


@dataclass
class Stack:
    template: dict[str, Any]
    endpoint_url: str
    upstream_url: str
    env: dict[str, str]


@contextmanager
def local_stack(template: dict[str, Any]) -> Iterator[Stack]:
    """moto provisioned from the template and the demo upstream, each in a process of its own, and the functions'
    env applied to ``os.environ`` (so this process can mint tokens as the token endpoint would)."""
    from infra.demo_upstream import start_demo_upstream
    from infra.invoke import apply_environment
    from infra.local_aws import provision, start_local_aws

    upstream = start_demo_upstream()
    aws = None
    saved = dict(os.environ)
    try:
        aws = start_local_aws()
        refs = provision(aws.endpoint_url, template)
        with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-") as workdir:
            config = config_for_upstream(upstream.url, Path(workdir), EXAMPLE_CONFIG)
            env = gateway_environment(
                template,
                endpoint_url=aws.endpoint_url,
                refs=refs,
                public_base_url=PUBLIC_BASE_URL,
                config_path=config,
            )
            apply_environment(env)
            yield Stack(template, aws.endpoint_url, upstream.url, env)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if aws is not None:
            aws.stop()
        upstream.stop()


# --- the functions and their events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One function of the template and the event its cold start is measured with."""

    name: str
    spec: FunctionSpec
    description: str
    expected_status: frozenset[int]
    target_ms: float | None
    make_event: Callable[[Stack], dict[str, Any]]
    env: tuple[tuple[str, str], ...] = ()
    """Environment the case sets over the stack's (e.g. tracing on)."""

    @property
    def module(self) -> str:
        return self.spec.handler.rpartition(".")[0]

    @property
    def attribute(self) -> str:
        return self.spec.handler.rpartition(".")[2]

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attribute}"

    @property
    def module_path(self) -> Path:
        return REPO_ROOT / self.spec.code_uri / (self.module.replace(".", "/") + ".py")

    @property
    def exists(self) -> bool:
        return self.module_path.is_file()


def _sample_event(name: str) -> Callable[[Stack], dict[str, Any]]:
    def make(stack: Stack) -> dict[str, Any]:
        from infra import placeholders
        from infra.invoke import filler_runtime

        event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        return placeholders.fill(event, function=name.partition("-")[0], runtime=filler_runtime())

    return make


def _http_event(
    method: str, path: str, *, query: str = "", headers: Mapping[str, str] | None = None, body: bytes = b""
) -> Callable[[Stack], dict[str, Any]]:
    """An event as API Gateway builds it for this request (the template's routes decide the route key)."""

    def make(stack: Stack) -> dict[str, Any]:
        table: HttpApiRoutes[str] = HttpApiRoutes()
        for spec in functions(stack.template):
            for route in spec.routes:
                table.add(route.method, route.path, spec.logical_id)
        match = table.match(method, path)
        if match is None:
            raise LookupError(f"no route of the template matches {method} {path}")
        request = HttpRequest(
            method=method,
            raw_path=path,
            raw_query=query,
            headers=[("host", "127.0.0.1:9000"), ("user-agent", "infra.bench"), *(headers or {}).items()],
            body=body,
        )
        return build_event(request, match, server_port=9000)

    return make


def cases(template: dict[str, Any]) -> list[Case]:
    """The functions whose cold start is measured, in template order, each with its event."""
    specs = {spec.logical_id: spec for spec in functions(template)}
    dcr = {
        "client_name": "bench client",
        "redirect_uris": [LOCAL_REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    token_form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": "bench-code-that-was-never-issued",
            "redirect_uri": LOCAL_REDIRECT_URI,
            "client_id": "bench-unknown-client",
            "code_verifier": "x" * 43,
        }
    )
    authorize_query = urlencode(
        {
            "response_type": "code",
            "client_id": "bench-unknown-client",
            "redirect_uri": LOCAL_REDIRECT_URI,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "bench",
            "resource": f"{PUBLIC_BASE_URL}/demo/echo/mcp",
        }
    )
    wanted = [
        Case(
            "metadata",
            specs["MetadataFunction"],
            "PRM GET (events/metadata-prm.json)",
            frozenset({200}),
            150.0,
            _sample_event("metadata-prm.json"),
        ),
        Case(
            "proxy",
            specs["ProxyFunction"],
            "tools/call, valid token, demo upstream answers (events/proxy-tools-call.json)",
            frozenset({200}),
            300.0,
            _sample_event("proxy-tools-call.json"),
        ),
        Case(
            "proxy, tracing on",
            specs["ProxyFunction"],
            "as proxy, with Tracing=true: the Powertools Tracer (X-Ray SDK) at init, spans per request",
            frozenset({200}),
            None,
            _sample_event("proxy-tools-call.json"),
            env=(("GATEWAY_TRACING", "true"), ("AWS_XRAY_CONTEXT_MISSING", "IGNORE_ERROR")),
        ),
        Case(
            "register",
            specs["RegisterFunction"],
            "DCR POST, public client",
            frozenset({201}),
            None,
            _http_event(
                "POST",
                "/demo/echo/register",
                headers={"content-type": "application/json"},
                body=json.dumps(dcr).encode(),
            ),
        ),
        Case(
            "authorize",
            specs["AuthorizeFunction"],
            "GET /authorize, unknown client_id",
            frozenset({400, 401}),
            450.0,
            _http_event("GET", "/demo/echo/authorize", query=authorize_query),
        ),
        Case(
            "token",
            specs["TokenFunction"],
            "authorization_code grant, code never issued",
            frozenset({400, 401}),
            450.0,
            _http_event(
                "POST",
                "/demo/echo/token",
                headers={"content-type": "application/x-www-form-urlencoded"},
                body=token_form.encode(),
            ),
        ),
        Case(
            "admin",
            specs["AdminFunction"],
            "GET the admin API's OpenAPI document (FastAPI; not on a client's path)",
            frozenset({200}),
            None,
            _http_event("GET", "/demo/admin/api/openapi.json"),
        ),
    ]
    return wanted


# --- running a handler in a fresh interpreter ---------------------------------------------------------------


@dataclass
class ChildResult:
    spawned_ns: int
    report: dict[str, Any]
    stderr: str

    @property
    def total_ms(self) -> float:
        return (int(self.report["responded_ns"]) - self.spawned_ns) / 1e6

    @property
    def startup_ms(self) -> float:
        return (int(self.report["top_ns"]) - self.spawned_ns) / 1e6

    @property
    def import_ms(self) -> float:
        return (int(self.report["imported_ns"]) - int(self.report["top_ns"])) / 1e6

    @property
    def first_event_ms(self) -> float:
        return (int(self.report["responded_ns"]) - int(self.report["imported_ns"])) / 1e6


class ChildFailed(RuntimeError):
    pass


def run_child(
    mode: str,
    target: str,
    event_path: Path,
    env: Mapping[str, str],
    *,
    iterations: int = 1,
    python_flags: Sequence[str] = (),
    timeout: float = CHILD_TIMEOUT_SECONDS,
) -> ChildResult:
    command = [
        sys.executable,
        *python_flags,
        str(CHILD_SCRIPT),
        mode,
        str(FUNCTIONS_DIR),
        target,
        str(event_path),
        str(iterations),
    ]
    spawned_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    completed = subprocess.run(command, env=dict(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout)[-2000:]
        raise ChildFailed(f"{mode} {target} exited with {completed.returncode}: {tail}")
    return ChildResult(spawned_ns, json.loads(lines[-1]), completed.stderr)


def child_environment(stack: Stack) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stack.env)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)  # Lambda's path: the function's code (the child puts it first) and site-packages
    return env


def compile_bytecode() -> None:
    """``.pyc`` for the functions' code (site-packages got theirs from pip; the warm-up round writes the rest)."""
    compileall.compile_dir(str(FUNCTIONS_DIR), quiet=1)


@dataclass
class Prepared:
    """A case whose event is written to a file, or the reason it is skipped."""

    case: Case
    event_path: Path | None = None
    skipped: str | None = None


def prepare(all_cases: Sequence[Case], stack: Stack, directory: Path) -> list[Prepared]:
    prepared = []
    for case in all_cases:
        if not case.exists:
            note = f"not measured: {case.module_path.relative_to(REPO_ROOT)} does not exist yet"
            say(f"  note: {case.name}: {note}")
            prepared.append(Prepared(case, skipped=note))
            continue
        try:
            event = case.make_event(stack)
        except Exception as error:  # an event that cannot be built must not stop the other functions
            say(f"  note: {case.name}: cannot build its event: {error}")
            prepared.append(Prepared(case, skipped=f"event could not be built ({type(error).__name__})"))
            continue
        path = directory / f"{case.name}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        prepared.append(Prepared(case, path))
    return prepared


# --- cold start ---------------------------------------------------------------------------------------------


@dataclass
class ColdStartRow:
    name: str
    event: str
    target_ms: float | None
    results: list[ChildResult] = field(default_factory=list)
    skipped: str | None = None
    failure: str | None = None

    def values(self, attribute: str) -> list[float]:
        return [float(getattr(result, attribute)) for result in self.results]

    @property
    def median(self) -> float:
        values = self.values("total_ms")
        return statistics.median(values) if values else math.nan

    @property
    def p90(self) -> float:
        return percentile(self.values("total_ms"), 0.9)

    def median_of(self, attribute: str) -> float:
        values = self.values(attribute)
        return statistics.median(values) if values else math.nan

    @property
    def statuses(self) -> str:
        seen = sorted({str(result.report.get("status")) for result in self.results})
        return ", ".join(seen) if seen else "—"

    @property
    def aws_sdk(self) -> str:
        if not self.results:
            return "—"
        loaded = sorted({name for result in self.results for name in result.report.get("aws_sdk_modules", [])})
        return ", ".join(loaded) if loaded else "no"


@dataclass
class ColdStartReport:
    rows: list[ColdStartRow]
    runs: int
    imports: dict[str, str]
    problems: list[str]

    def table(self) -> str:
        interpreter = next((row for row in self.rows if row.name == "bare interpreter"), None)
        base = interpreter.median if interpreter else math.nan
        body = []
        for row in self.rows:
            if row.skipped or row.failure:
                body.append([row.name, row.event, "—", "—", "—", "—", "—", "—", _target(row.target_ms), "—", "—"])
                body[-1][9] = row.skipped or f"failed: {row.failure}"
                continue
            median = row.median
            verdict = "—"
            if row.target_ms is not None:
                verdict = "met" if median <= row.target_ms else f"missed by {median - row.target_ms:.0f} ms"
            body.append(
                [
                    row.name,
                    row.event,
                    row.statuses,
                    fmt_ms(median),
                    fmt_ms(row.p90),
                    fmt_ms(median - base),
                    fmt_ms(row.median_of("import_ms")),
                    fmt_ms(row.median_of("first_event_ms")),
                    _target(row.target_ms),
                    verdict,
                    row.aws_sdk,
                ]
            )
        header = [
            "function",
            "event",
            "status",
            "median ms",
            "p90 ms",
            "minus interpreter",
            "init (imports) ms",
            "first event ms",
            "target",
            "verdict",
            "boto3/botocore loaded",
        ]
        return (
            f"{machine_line()} {self.runs} runs each, interleaved, after one discarded warm-up round; "
            "time from spawning `python` to the handler's first response (`.pyc` present).\n\n"
            + markdown_table(header, body)
        )


def _target(target_ms: float | None) -> str:
    return "—" if target_ms is None else f"≤ {target_ms:.0f}"


def measure_cold_starts(prepared: Sequence[Prepared], stack: Stack, runs: int) -> ColdStartReport:
    env = child_environment(stack)
    compile_bytecode()
    measurable = [item for item in prepared if item.event_path is not None]
    any_event = measurable[0].event_path if measurable else None
    if any_event is None:
        raise RuntimeError("no function could be measured")
    baselines = [
        ColdStartRow("bare interpreter", "`python child.py` up to its first line", None),
        ColdStartRow("bare handler", "`def handler(e, c): return {...}` on the PRM event", None),
    ]
    rows: dict[str, ColdStartRow] = {}
    for item in prepared:
        case = item.case
        rows[case.name] = ColdStartRow(case.name, case.description, case.target_ms, skipped=item.skipped)
    problems: list[str] = []

    def one_round(record: bool) -> None:
        for mode, row in (("interpreter", baselines[0]), ("bare", baselines[1])):
            result = run_child(mode, "-", any_event, env)
            if record:
                row.results.append(result)
        for item in measurable:
            row = rows[item.case.name]
            if row.failure:
                continue
            assert item.event_path is not None
            try:
                result = run_child("handler", item.case.target, item.event_path, {**env, **dict(item.case.env)})
            except (ChildFailed, subprocess.TimeoutExpired) as error:
                row.failure = str(error).splitlines()[0][:200]
                problems.append(f"{item.case.name}: {error}")
                continue
            status = result.report.get("status")
            if status not in item.case.expected_status:
                message = (
                    f"{item.case.name}: status {status}, expected {sorted(item.case.expected_status)}: "
                    f"{str(result.report.get('body'))[:300]}"
                )
                if message not in problems:
                    problems.append(message)
                if item.case.name == "proxy":  # a failed tools/call makes the number meaningless
                    row.failure = f"status {status}, not 200"
                    continue
            if record:
                row.results.append(result)

    say(f"  warm-up round (discarded), then {runs} rounds")
    one_round(record=False)
    for number in range(runs):
        one_round(record=True)
        measured = ", ".join(f"{name} {row.results[-1].total_ms:.0f}" for name, row in rows.items() if row.results)
        say(f"  round {number + 1}/{runs}: {measured} ms")

    imports = {}
    for item in measurable:
        if rows[item.case.name].failure:
            continue
        assert item.event_path is not None
        result = run_child(
            "handler",
            item.case.target,
            item.event_path,
            {**env, **dict(item.case.env)},
            python_flags=("-X", "importtime"),
        )
        imports[item.case.name] = import_breakdown(result.stderr, item.case.module)
    return ColdStartReport([*baselines, *rows.values()], runs, imports, problems)


# --- import breakdown ---------------------------------------------------------------------------------------


@dataclass
class ImportNode:
    name: str
    self_us: int
    cumulative_us: int
    level: int
    children: list[ImportNode] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[ImportNode]:
    """The forest of ``-X importtime`` (lines come in post-order: children before their parent)."""
    roots: list[ImportNode] = []
    pending: dict[int, list[ImportNode]] = defaultdict(list)
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name_field = parts[2][1:]
        level = (len(name_field) - len(name_field.lstrip(" "))) // 2
        node = ImportNode(name_field.strip(), int(parts[0]), int(parts[1]), level)
        node.children = pending.pop(level + 1, [])
        if level == 0:
            roots.append(node)
        else:
            pending[level].append(node)
    return roots


def _first_party(name: str) -> bool:
    return name.split(".", 1)[0] in FIRST_PARTY


def import_breakdown(stderr: str, handler_module: str, top: int = 10) -> str:
    """Top packages by import time (each module's own time summed per top-level package) and the first-party
    modules that pulled them in; imports made while handling the first event are attributed to ``first event``."""
    roots = parse_importtime(stderr)
    totals: dict[str, int] = defaultdict(int)
    via: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    handler_seen = False

    def walk(node: ImportNode, owner: str) -> None:
        package = node.name.split(".", 1)[0]
        if _first_party(node.name):
            owner = node.name
        totals[package] += node.self_us
        via[package][owner] += node.self_us
        for child in node.children:
            walk(child, owner)

    for root in roots:
        owner = "first event" if handler_seen else "interpreter/child"
        walk(root, owner)
        if root.name == handler_module:
            handler_seen = True
    total_us = sum(totals.values())
    by_owner: dict[str, int] = defaultdict(int)
    for owners_of_package in via.values():
        for owner, micros in owners_of_package.items():
            by_owner[owner] += micros
    heaviest = sorted(by_owner.items(), key=lambda item: -item[1])[:6]
    rows = []
    for package, micros in sorted(totals.items(), key=lambda item: -item[1])[:top]:
        owners = sorted(via[package].items(), key=lambda item: -item[1])[:3]
        pulled = ", ".join(f"{owner} ({us / 1000:.0f})" for owner, us in owners)
        rows.append([f"`{package}`", f"{micros / 1000:.1f}", pulled])
    owners_line = ", ".join(f"{owner} {micros / 1000:.0f}" for owner, micros in heaviest)
    return (
        f"All imports: {total_us / 1000:.0f} ms under `-X importtime` (which inflates them). Imports attributed to "
        f"the first-party module that pulled them in first (ms): {owners_line}.\n\n"
        + markdown_table(["package", "ms (own modules)", "pulled in by (ms)"], rows)
    )


# --- peak RSS -----------------------------------------------------------------------------------------------


def measure_rss(
    prepared: Sequence[Prepared], stack: Stack, iterations: int, peaks: dict[str, float] | None = None
) -> str:
    """The ``rss`` part's table; each function's peak (MB) also goes to ``peaks``."""
    env = child_environment(stack)
    rows = []
    for item in prepared:
        case = item.case
        if item.event_path is None:
            rows.append([case.name, "—", "—", "—", "—", item.skipped or "—"])
            continue
        say(f"  {case.name}: {iterations} invocations in a fresh interpreter")
        try:
            result = run_child(
                "handler", case.target, item.event_path, env, iterations=iterations, timeout=max(180.0, iterations)
            )
        except (ChildFailed, subprocess.TimeoutExpired) as error:
            rows.append([case.name, "—", "—", "—", "—", f"failed: {str(error).splitlines()[0][:160]}"])
            continue
        report = result.report
        peak_mb = int(report["rss_peak_kb"]) / 1024
        if peaks is not None:
            peaks[case.name] = peak_mb
        first_mb = int(report["rss_first_kb"]) / 1024
        statuses = report.get("warm_statuses", {})
        per_call = float(report["warm_seconds"]) / max(1, iterations - 1) * 1000
        verdict = "met" if peak_mb <= 150 else f"missed by {peak_mb - 150:.0f} MB"
        rows.append(
            [
                case.name,
                f"{first_mb:.0f}",
                f"{peak_mb:.0f}",
                f"{per_call:.2f}",
                ", ".join(f"{status} x{count}" for status, count in sorted(statuses.items())),
                verdict,
            ]
        )
    return (
        f"{machine_line()} Peak RSS (`VmHWM`) of a fresh interpreter after the first event and after {iterations} "
        "invocations with the same event (target ≤ 150 MB).\n\n"
        + markdown_table(
            ["function", "after 1st event MB", f"peak after {iterations} MB", "warm ms/invocation", "statuses", ""],
            rows,
        )
    )


# --- token signing: RS256 vs ES256 --------------------------------------------------------------------------


def _time_per_call(function: Callable[[], object], count: int) -> float:
    """Microseconds per call, the best of three batches (the least disturbed by other processes)."""
    best = math.inf
    batch = max(1, count // 3)
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(batch):
            function()
        best = min(best, (time.perf_counter() - started) / batch)
    return best * 1e6


def measure_tokens(stack: Stack, verify_count: int, kms_count: int) -> str:
    import boto3
    import jwt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    from infra.invoke import filler_runtime

    runtime = filler_runtime()
    route = runtime.routes.get("demo", "echo")
    if route is None:
        raise LookupError("the configuration has no route demo/echo")
    now = int(time.time())
    claims = {  # what AccessTokens.issue puts in a token, with realistic lengths
        "iss": route.issuer,
        "sub": "alice",
        "aud": route.resource,
        "client_id": "4f1c2a9e-7a53-4d1e-9d1f-2f6f3c1b8e0a",
        "scope": " ".join(route.default_scopes),
        "gid": "g_" + "a" * 22,
        "jti": "b" * 22,
        "iat": now,
        "exp": now + 3600,
    }
    keys: dict[str, tuple[Any, Any]] = {}
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys["RS256"] = (rsa_key, rsa_key.public_key())
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys["ES256"] = (ec_key, ec_key.public_key())

    rows = []
    results: dict[str, dict[str, float]] = {}
    for algorithm, (private_key, public_key) in keys.items():
        headers = {"typ": "at+jwt", "kid": "k" * 43}
        token = jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)
        signing_input, _, signature_b64 = token.rpartition(".")
        signature = jwt.utils.base64url_decode(signature_b64.encode())
        if algorithm == "RS256":

            def raw_verify(
                public_key: Any = public_key, signature: bytes = signature, data: str = signing_input
            ) -> None:
                public_key.verify(signature, data.encode(), padding.PKCS1v15(), hashes.SHA256())

        else:
            der = jwt.utils.raw_to_der_signature(signature, public_key.curve)

            def raw_verify(public_key: Any = public_key, signature: bytes = der, data: str = signing_input) -> None:
                public_key.verify(signature, data.encode(), ec.ECDSA(hashes.SHA256()))

        def pyjwt_verify(token: str = token, public_key: Any = public_key, algorithm: str = algorithm) -> None:
            jwt.decode(token, public_key, algorithms=[algorithm], audience=route.resource, issuer=route.issuer)

        def local_sign(
            private_key: Any = private_key, algorithm: str = algorithm, headers: dict[str, str] = headers
        ) -> None:
            jwt.encode(claims, private_key, algorithm=algorithm, headers=headers)

        results[algorithm] = {
            "pyjwt_verify_us": _time_per_call(pyjwt_verify, verify_count),
            "raw_verify_us": _time_per_call(raw_verify, verify_count),
            "local_sign_us": _time_per_call(local_sign, max(30, verify_count // 10)),
            "size": float(len(token)),
            "signature_size": float(len(signature_b64)),
        }

    kms: Any = boto3.session.Session().client("kms", endpoint_url=stack.endpoint_url)
    kms_specs = {
        "RS256": ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
        "ES256": ("ECC_NIST_P256", "ECDSA_SHA_256"),
    }
    for algorithm, (key_spec, signing_algorithm) in kms_specs.items():
        key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=key_spec, Description=f"bench {algorithm}")[
            "KeyMetadata"
        ]["KeyId"]
        message = b"x" * 600
        latencies = []
        for _ in range(kms_count):
            started = time.perf_counter()
            kms.sign(KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=signing_algorithm)
            latencies.append((time.perf_counter() - started) * 1000)
        results[algorithm]["kms_sign_ms"] = statistics.median(latencies)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    # The gateway's own verification (RS256, the runtime's cached public keys, claims checks included).
    token = runtime.access_tokens.issue(route=route, subject="alice", client_id="bench", scopes=["mcp"], grant_id="g")
    gateway_verify_us = _time_per_call(lambda: runtime.access_tokens.verify(token, route=route), verify_count)

    price = {"RS256": "$0.03", "ES256": "$0.15"}
    for algorithm in ("RS256", "ES256"):
        result = results[algorithm]
        rows.append(
            [
                algorithm,
                f"{result['pyjwt_verify_us']:.0f}",
                f"{result['raw_verify_us']:.0f}",
                f"{result['local_sign_us']:.0f}",
                f"{result['size']:.0f} ({result['signature_size']:.0f})",
                f"{result['kms_sign_ms']:.1f}",
                price[algorithm],
            ]
        )
    ratio = results["ES256"]["pyjwt_verify_us"] / results["RS256"]["pyjwt_verify_us"]
    return (
        f"{machine_line()} Same claims and header for both; verify = best of 3 batches of {verify_count // 3}; "
        f"KMS Sign = median of {kms_count} calls to moto (says nothing about AWS).\n\n"
        + markdown_table(
            [
                "algorithm",
                "PyJWT decode+verify µs",
                "signature verify only µs",
                "local sign µs",
                "token bytes (signature)",
                "KMS Sign via moto ms",
                "KMS price / 10,000 Sign",
            ],
            rows,
        )
        + f"\n\nES256/RS256 verify-time ratio in this run: {ratio:.2f}. The gateway's own "
        f"`AccessTokens.verify` (RS256, cached keys, all claim checks): {gateway_verify_us:.0f} µs."
    )


# --- proxy latency and throughput ---------------------------------------------------------------------------


def run_load(
    url: str, concurrency: int, requests: int, seconds: float, token: str = "", tool: str = "echo"
) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(LOAD_SCRIPT), url, str(concurrency), str(requests), str(seconds), token, tool],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"load client failed ({completed.returncode}): {completed.stderr[-1500:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def processes_cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU time of each live process of ``pids`` so far (``/proc/<pid>/stat``)."""
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
    return seconds


class GatewayCpu:
    """CPU time of the dev server's process and its container processes over a measurement (containers started
    meanwhile count from zero); the store and the upstream, in processes of their own, are not counted."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._before = processes_cpu_seconds(server.process_ids())

    def seconds(self) -> float:
        after = processes_cpu_seconds(self._server.process_ids())
        return sum(value - self._before.get(pid, 0.0) for pid, value in after.items())


DYNAMODB_READS = frozenset(
    f"DynamoDB_20120810.{name}" for name in ("GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems")
)


@contextmanager
def counting_dynamodb_reads(endpoint_url: str) -> Iterator[Callable[[], int]]:
    """Count the DynamoDB reads the store serves meanwhile (counted by the stand-in itself, in its own process)."""
    from infra.local_aws import store_calls

    def reads(calls: Mapping[str, int]) -> int:
        return sum(count for name, count in calls.items() if name in DYNAMODB_READS)

    before = reads(store_calls(endpoint_url))
    yield lambda: reads(store_calls(endpoint_url)) - before


# The proxy as deployed by default (revocation bites on the next request: one grant read per call), with the
# opt-in grant-status cache that saves the read at the price of a revocation delay, and in the streaming deployment
# (template parameters, then environment).
# (label, template parameters, environment, route path, tool)
BUFFERED, DEFAULTS = {"ProxyResponseMode": "buffered"}, {"GATEWAY_GRANT_STATUS_CACHE_SECONDS": "0"}
PROXY_VARIANTS: tuple[tuple[str, dict[str, str], dict[str, str], str, str], ...] = (
    ("gateway", BUFFERED, DEFAULTS, "/demo/echo/mcp", "echo"),
    ("gateway, grant cache 30 s", BUFFERED, {"GATEWAY_GRANT_STATUS_CACHE_SECONDS": "30"}, "/demo/echo/mcp", "echo"),
    ("gateway, streaming mode", {"ProxyResponseMode": "streaming"},
     {**DEFAULTS, "GATEWAY_RESPONSE_STREAMING": "true"}, "/demo/echo/mcp", "echo"),
    ("gateway, virtual route", BUFFERED, DEFAULTS, "/demo/toolbox/mcp", "demo_say"),
)  # fmt: skip

# List prices (us-east-1, first tier) for the cost estimate of docs/performance.md: per million requests, and per
# GB-second of an arm64 function. The proxy bills its whole wall time (the upstream's included) at 1 GB.
PRICE_PER_MILLION = {"http_api": 1.00, "rest_api": 3.50, "lambda_requests": 0.20}
PRICE_PER_GB_SECOND_ARM64 = 0.0000133334
PROXY_MEMORY_GB = 1.0


def cost_per_million_calls(front_door: str, wall_ms: float) -> float:
    """API Gateway + Lambda requests + Lambda duration for a million proxied calls of ``wall_ms`` each."""
    duration = wall_ms / 1000 * PROXY_MEMORY_GB * PRICE_PER_GB_SECOND_ARM64 * 1_000_000
    return PRICE_PER_MILLION[front_door] + PRICE_PER_MILLION["lambda_requests"] + duration


def measure_handler(stack: Stack, directory: Path, calls: int, rounds: int) -> tuple[str, dict[str, Any]]:
    """The ``handler`` part: each variant of :mod:`infra.bench_support.handler_report` with tokens whose grants
    exist (one per route), on the sample ``tools/call`` event."""
    from infra import placeholders
    from infra.bench_support.handler_report import PLAIN, VIRTUAL, measure_handler_cpu
    from infra.invoke import filler_runtime
    from infra.local_aws_server import CALLS_PATH

    runtime = filler_runtime()
    tokens = {}
    for path in (PLAIN, VIRTUAL):
        workspace, server = path.strip("/").split("/")[:2]
        route = runtime.routes.get(workspace, server)
        if route is None:
            raise LookupError(f"the configuration has no route {workspace}/{server}")
        tokens[path] = placeholders.grant_backed_token(runtime, route)
    event = json.loads((EVENTS_DIR / "proxy-tools-call.json").read_text(encoding="utf-8"))
    sample = placeholders.fill(event, function="proxy", runtime=runtime)
    return measure_handler_cpu(
        FUNCTIONS_DIR, child_environment(stack), f"{stack.endpoint_url}{CALLS_PATH}", sample, tokens, directory,
        calls=calls, rounds=rounds, say=say,
    )  # fmt: skip


def measure_proxy(
    stack: Stack, requests: int, seconds: float, concurrencies: Sequence[int]
) -> tuple[str, dict[str, Any]]:
    """The ``proxy`` part: the markdown, and the figures by concurrency and path (for the summary)."""
    from infra import placeholders
    from infra.bench_support.passthrough import start_passthrough
    from infra.devserver import start_dev_server
    from infra.invoke import filler_runtime

    runtime = filler_runtime()
    tokens = {}
    for path in {path for _, _, _, path, _ in PROXY_VARIANTS}:
        workspace, name = path.strip("/").split("/")[:2]
        route = runtime.routes.get(workspace, name)
        if route is None:
            raise LookupError(f"the configuration has no route {workspace}/{name}")
        tokens[path] = placeholders.grant_backed_token(runtime, route)
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = runtime.access_tokens.verify(tokens["/demo/echo/mcp"], route=route).grant_id
    get_item_ms = _time_per_call(lambda: runtime.grants.get_grant(grant_id), 300) / 1000
    rows = []
    figures: dict[str, Any] = {"get_item_ms": get_item_ms, "by_concurrency": {}}
    for concurrency in concurrencies:
        measured: dict[str, dict[str, Any]] = {}
        say(f"  direct, concurrency {concurrency}: up to {requests} requests or {seconds:g} s")
        measured["direct"] = run_load(stack.upstream_url, concurrency, requests, seconds)
        with start_passthrough(stack.upstream_url) as passthrough:
            say(f"  pass-through, concurrency {concurrency}: up to {requests} requests or {seconds:g} s")
            measured["pass-through"] = run_load(passthrough.url, concurrency, requests, seconds)
        for label, parameters, settings, path, tool in PROXY_VARIANTS:
            server = start_dev_server(stack.template, {**stack.env, **settings}, parameters=parameters)
            try:
                say(f"  {label}, concurrency {concurrency}: up to {requests} requests or {seconds:g} s")
                cpu = GatewayCpu(server)
                with counting_dynamodb_reads(stack.endpoint_url) as reads:
                    result = run_load(f"{server.url}{path}", concurrency, requests, seconds, tokens[path], tool)
                    read_count = reads()
                served = result["count"] + WARMUP_REQUESTS_PER_THREAD * concurrency
                result["gateway_cpu_ms"] = cpu.seconds() / served * 1000 if served else math.nan
                result["reads_per_call"] = read_count / served if served else math.nan
                if result["errors"]:
                    say(f"    {result['errors']} errors, first: {result['first_error']}")
                measured[label] = result
            finally:
                server.stop()
        figures["by_concurrency"][concurrency] = measured
        verdicts = summary.proxy_verdicts(measured, get_item_ms) if concurrency == 1 else {}
        direct = measured["direct"]
        for label, result in measured.items():
            added_p50 = result["p50_ms"] - direct["p50_ms"]
            ratio = result["throughput"] / direct["throughput"] if direct["throughput"] else math.nan
            comparison = "" if label == "direct" else f"+{added_p50:.2f} ms p50, {ratio:.0%} throughput"
            cost = "—"
            if label not in ("direct", "pass-through"):
                front_door = "rest_api" if "streaming" in label else "http_api"
                cost = f"{cost_per_million_calls(front_door, added_p50 + 1.0):.2f}"
            target, verdict = verdicts.get(label, ("—", "—"))
            rows.append(
                [
                    str(concurrency),
                    label,
                    str(result["count"]),
                    str(result["errors"]),
                    f"{result['p50_ms']:.2f}",
                    f"{result['p99_ms']:.2f}",
                    f"{result['throughput']:.0f}",
                    "—" if "gateway_cpu_ms" not in result else f"{result['gateway_cpu_ms']:.2f}",
                    "—" if "reads_per_call" not in result else f"{result['reads_per_call']:.2f}",
                    comparison,
                    target,
                    verdict,
                    cost,
                ]
            )
    text = (
        f"{machine_line()} `tools/call` (echo) from a separate load-client process (threads, one pooled httpx "
        f"client each), up to {requests} requests or {seconds:g} s per row after a warm-up; direct = the demo "
        "upstream (uvicorn, its own process), pass-through = a plain Starlette + httpx pass-through in front of it "
        "(its own process: what any HTTP proxy adds), gateway = the dev server in front of it (same proxy handler code "
        "as Lambda, payload-2.0 events, Mangum, each function container a process of its own) with the deployment's "
        "default settings (the grant's status read on every request, so a revocation bites on the next call); "
        "`grant cache 30 s` = the same with the opt-in `GATEWAY_GRANT_STATUS_CACHE_SECONDS=30`; `streaming mode` = "
        "the streaming deployment (`ProxyResponseMode=streaming`: the dev server forwards to the proxy's ASGI app "
        "under uvicorn and streams its answer back, as API Gateway's response streaming and the Lambda Web Adapter "
        "do); `virtual route` = default settings, `demo/toolbox` (the same upstream's `echo` as `demo_say`); "
        "measured back to back in one run.\n\n"
        "`gateway CPU` is the CPU time per request of the dev server's process and its container processes (HTTP "
        "server, the hand-off to a container, the proxy handler; not the store's or the upstream's, which run in "
        "processes of their own); `DynamoDB reads/call` counts the reads the store served, warm-up included. One "
        "grant read (`GetItem`, strongly consistent) against the local stand-in (moto in its own process, over a "
        f"kept connection) takes {get_item_ms:.2f} ms here, best of 3 batches: that is the `store round trip` of "
        "the target (issue 23: the gateway's added p50 at concurrency 1 within +1.0 ms of the pass-through's plus "
        "one store round trip; the cached row needs no round trip; a virtual route within 0.3 ms of the plain "
        "route). `$/M calls` estimates what a million calls cost on AWS at list prices (us-east-1): the front "
        "door's requests (HTTP API $1.00, REST API $3.50 per million), Lambda's requests ($0.20 per million) and its "
        "duration at 1 GB arm64, taking the gateway's added p50 plus 1 ms of upstream time as the billed time.\n\n"
        + markdown_table(
            [
                "concurrency",
                "path",
                "requests",
                "errors",
                "p50 ms",
                "p99 ms",
                "req/s",
                "gateway CPU ms/req",
                "DynamoDB reads/call",
                "vs direct",
                "target (added p50)",
                "verdict",
                "$/M calls",
            ],
            rows,
        )
    )
    return text, figures


# --- docs ---------------------------------------------------------------------------------------------------


def write_docs(sections: Mapping[str, str], path: Path = DOCS_PATH) -> list[str]:
    """Replace each ``<!-- bench:NAME:start -->...<!-- bench:NAME:end -->`` block; returns the names not found."""
    text = path.read_text(encoding="utf-8")
    missing = []
    for name, content in sections.items():
        pattern = re.compile(
            rf"(<!-- bench:{re.escape(name)}:start -->\n).*?(<!-- bench:{re.escape(name)}:end -->)", re.DOTALL
        )

        def block(match: re.Match[str], content: str = content) -> str:
            return match.group(1) + content.rstrip("\n") + "\n" + match.group(2)

        text, count = pattern.subn(block, text)
        if count == 0:
            missing.append(name)
    path.write_text(text, encoding="utf-8")
    return missing


# --- main ---------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--runs", type=int, default=10, help="cold-start runs per function (default 10)")
    parser.add_argument("--rss-iterations", type=int, default=1000, help="warm invocations for peak RSS")
    parser.add_argument("--requests", type=int, default=2000, help="proxy benchmark: requests per row (max)")
    parser.add_argument("--seconds", type=float, default=10.0, help="proxy benchmark: seconds per row (max)")
    parser.add_argument("--concurrency", type=int, action="append", help="proxy client concurrency (default 1, 8)")
    parser.add_argument("--handler-calls", type=int, default=300, help="handler CPU: invocations per round")
    parser.add_argument("--rounds", type=int, default=5, help="handler CPU: rounds, plain and instrumented each")
    parser.add_argument("--verify-count", type=int, default=2000, help="token verifications per algorithm")
    parser.add_argument("--kms-count", type=int, default=50, help="KMS Sign calls per key spec")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the tables in docs/performance.md")
    parser.add_argument("--audit-events", type=int, default=100_000, help="console benchmark: audit events loaded")
    parser.add_argument("--console-rounds", type=int, default=15, help="console benchmark: warm requests per page")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rss_iterations < 1 or args.requests < 1 or args.seconds <= 0 or args.console_rounds < 1:
        parser.error("counts must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = args.only or list(PARTS)
    template = load_template(TEMPLATE_PATH)
    sections: dict[str, str] = {}
    findings: dict[str, Any] = {}  # each part's figures, for the summary
    problems: list[str] = []
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    loads = [os.getloadavg()[0]]
    say("==> starting the local stack (moto provisioned from template.yaml, demo upstream)")
    with local_stack(template) as stack, tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-events-") as tmp:
        prepared: list[Prepared] = []
        if "coldstart" in parts or "rss" in parts:
            prepared = prepare(cases(template), stack, Path(tmp))
        if "coldstart" in parts:
            say(f"==> cold start: {args.runs} runs per function in fresh interpreters")
            report = measure_cold_starts(prepared, stack, args.runs)
            findings["coldstart"] = report
            problems.extend(report.problems)
            sections["coldstart"] = report.table()
            proxy_event = next((item.event_path for item in prepared if item.case.name == "proxy"), None)
            if proxy_event is not None:
                from infra.bench_support import streaming_start

                say("  the streaming deployment's proxy: spawn, port open, first answer")
                try:
                    streaming = streaming_start.measure(FUNCTIONS_DIR, child_environment(stack), proxy_event, args.runs)
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                    streaming = f"The streaming deployment's proxy start was not measured: {error}"
                    problems.append(streaming)
                sections["coldstart"] += "\n\n" + streaming
            say("\nCold start (ms)\n\n" + sections["coldstart"] + "\n")
            blocks = [f"**{name}**\n\n{table}" for name, table in report.imports.items()]
            sections["imports"] = "\n\n".join(blocks) if blocks else "No function could be measured."
            say("Import breakdown (`-X importtime`)\n\n" + sections["imports"] + "\n")
        if "rss" in parts:
            say(f"==> peak RSS after {args.rss_iterations} warm invocations")
            loads.append(os.getloadavg()[0])
            findings["rss"] = {}
            sections["rss"] = measure_rss(prepared, stack, args.rss_iterations, findings["rss"])
            say("\n" + sections["rss"] + "\n")
        if "tokens" in parts:
            loads.append(os.getloadavg()[0])
            say("==> token signing: RS256 vs ES256")
            sections["tokens"] = measure_tokens(stack, args.verify_count, args.kms_count)
            say("\n" + sections["tokens"] + "\n")
        if "handler" in parts:
            loads.append(os.getloadavg()[0])
            say("==> the proxy handler's CPU per warm tools/call, invoked as Lambda invokes it (no HTTP server)")
            text, findings["handler"] = measure_handler(stack, Path(tmp), args.handler_calls, args.rounds)
            sections["handler"] = f"{machine_line()} " + text
            say("\n" + sections["handler"] + "\n")
        if "proxy" in parts:
            loads.append(os.getloadavg()[0])
            concurrencies = args.concurrency or [1, 8]
            say("==> proxy latency and throughput: direct vs through the dev server")
            sections["proxy"], findings["proxy"] = measure_proxy(stack, args.requests, args.seconds, concurrencies)
            say("\n" + sections["proxy"] + "\n")
        if "virtual" in parts:
            loads.append(os.getloadavg()[0])
            from infra.bench_support.virtual import measure_virtual

            say("==> virtual routes: merged tools/list over three upstreams, tools/call against a plain route")
            sections["virtual"] = f"{machine_line()} " + measure_virtual(template, stack.env, REPO_ROOT, 30, 300)
            say("\n" + sections["virtual"] + "\n")
        if "dpop" in parts:
            loads.append(os.getloadavg()[0])
            from infra.bench_support.dpop_cpu import measure_dpop

            say("==> DPoP: gateway CPU per warm tools/call with a proof, beside Bearer")
            sections["dpop"] = f"{machine_line()} " + measure_dpop(REPO_ROOT, 1000)
            say("\n" + sections["dpop"] + "\n")
        if "console" in parts:
            loads.append(os.getloadavg()[0])
            from infra.bench_support.console import measure_console

            say(f"==> admin console: {args.audit_events} audit events loaded, warm pages")
            sections["console"] = f"{machine_line()} " + measure_console(stack, args.audit_events, args.console_rounds)
            say("\n" + sections["console"] + "\n")
    loads.append(os.getloadavg()[0])
    ended_at = time.strftime("%H:%M", time.gmtime())
    sections["summary"] = summary.summary(findings, started_at, ended_at, loads, os.cpu_count())
    say("\nSummary\n\n" + sections["summary"] + "\n")
    if parts != list(PARTS):
        del sections["summary"]  # a summary of some parts only would sit beside tables of another run
    for problem in problems:
        say(f"warning: {problem}")
    if args.write_docs:
        missing = write_docs(sections)
        for name in missing:
            say(f"warning: docs/performance.md has no <!-- bench:{name}:start/end --> markers; not written")
        say(f"==> wrote {', '.join(name for name in sections if name not in missing)} to docs/performance.md")
    say(f"==> done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
