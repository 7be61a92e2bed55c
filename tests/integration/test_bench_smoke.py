"""Smoke test of ``make bench``: the cold-start part runs and prints a row with a number for every function.

Not a timing assertion: targets are checked by the benchmark (docs/performance.md), not by timed tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.bench import cases
from infra.template import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


def _bench(*arguments: str, timeout: float) -> str:
    """What ``python -m infra.bench ARGUMENTS`` prints, once it exited 0."""
    completed = subprocess.run(
        [sys.executable, "-m", "infra.bench", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_coldstart_table_lists_every_existing_function() -> None:
    output = _bench("--only", "coldstart", "--runs", "2", timeout=540)
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith("| function")
    }
    expected = ["bare interpreter", "bare handler"]
    expected += [case.name for case in cases(load_template(REPO_ROOT / "template.yaml")) if case.exists]
    for name in expected:
        assert name in rows, f"no cold-start row for {name}:\n{output[-3000:]}"
        median = rows[name][2]  # columns: event, status, median ms, ...
        assert re.fullmatch(r"\d+", median), f"{name}: no number in the median column ({median!r})"
    assert "Import breakdown" in output
    # and the streaming deployment's proxy started as the Lambda Web Adapter starts it, its first answer a 200
    assert "streaming deployment's proxy (`python -m proxy.serve`" in output
    assert "(status 200)" in output
    for phase in ("spawn → port open (imports, runtime, uvicorn)", "port open → first answer read", "total"):
        assert re.fullmatch(r"\d+", rows[phase][0]), f"{phase}: no median ({rows[phase]!r})"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_dpop_part_measures_both_tokens_and_no_kms_call() -> None:
    # Not a timing assertion: the row exists, the DPoP calls went through, and no KMS call was made on the hot path
    output = _bench("--only", "dpop", timeout=280)
    assert re.search(r"\| Bearer \| \d+\.\d+ \| \d+\.\d+ \| \d+\.\d+ \| 0 \|", output), output[-3000:]
    assert re.search(r"\| DPoP .*\| \d+\.\d+ \| \d+\.\d+ \| \d+\.\d+ \| 0 \|", output), output[-3000:]
    assert "Added by DPoP:" in output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_handler_cpu_part_prints_its_breakdown_and_the_summary_its_rows() -> None:
    # A few invocations only: this checks that the part runs and reports, not what it measures
    output = _bench("--only", "handler", "--handler-calls", "10", "--rounds", "1", timeout=240)
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith(("| variant", "| what"))
    }
    for variant in ("plain route, default settings", "verified token and grant cache hit", "virtual route"):
        row = next((cells for label, cells in rows.items() if variant in label), None)
        assert row is not None, f"no handler-CPU row for {variant}:\n{output[-3000:]}"
        assert re.fullmatch(r"\*\*\d+\.\d{3}\*\*", row[0]), f"{variant}: no CPU figure ({row[0]!r})"
        assert row[-1].startswith(("met", "missed")), f"{variant}: no verdict ({row[-1]!r})"
    # the warm hot path's calls, counted by the store: the default reads the grant once, the cache hit not at all
    default = next(cells for label, cells in rows.items() if "default settings (grant" in label)
    cached = next(cells for label, cells in rows.items() if "cache hit" in label)
    reads, kms = 10, 12  # columns after the CPU figure and the nine stages/after-answer cells
    assert (default[reads], default[kms], cached[reads], cached[kms]) == ("1.00", "0.00", "0.00", "0.00")
    assert "proxy handler CPU per warm `tools/call`, default settings" in output  # the summary's row


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_console_part_times_every_page_and_the_rollup_write() -> None:
    # Not a timing assertion: every page answered 200 (the part raises otherwise) and has a row with numbers
    output = _bench("--only", "console", "--audit-events", "300", "--console-rounds", "2", timeout=280)
    for page in ("Overview, last week", "Clients", "Grants", "Issuances", "Audit log, one client", "API keys", "Users"):
        assert re.search(rf"\| {re.escape(page)}[^|]* \| \d+\.\d \| \d+\.\d \| (met|missed) \|", output), output[-3000:]
    assert re.search(r"the usage rollups \(two `UpdateItem`s\) \d+\.\d+ ms", output), output[-3000:]
