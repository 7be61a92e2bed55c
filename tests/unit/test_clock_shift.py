"""The clock-shift switch really moves the wall clock between collection and execution, in every thread, and the
``real_clock`` marker really suspends it: otherwise the shifted run in ``make test`` would prove nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

INNER_TESTS = """
import datetime
import threading
import time

import pytest

COLLECTED_AT = time.time()


def test_runs_an_hour_after_collection():
    assert time.time() - COLLECTED_AT >= 3600
    assert datetime.datetime.now().timestamp() - COLLECTED_AT >= 3600


def test_other_threads_see_the_shift():
    seen = []
    thread = threading.Thread(target=lambda: seen.append(time.time()))
    thread.start()
    thread.join()
    assert seen[0] - COLLECTED_AT >= 3600


@pytest.mark.real_clock
def test_real_clock_suspends_the_shift():
    assert time.time() - COLLECTED_AT < 600


def test_shift_resumes_after_a_real_clock_test():
    assert time.time() - COLLECTED_AT >= 3600
"""


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shift: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER_TESTS)
    monkeypatch.setenv("GATEWAY_TEST_CLOCK_SHIFT_SECONDS", shift)
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    return pytester.runpytest_subprocess("-p", "tests.support.clock_shift", "-p", "no:cacheprovider")


def test_shifted_run_moves_the_clock_after_collection(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_inner(pytester, monkeypatch, "3600")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*clock shift: wall clock moved +3600 s after collection*"])


def test_unshifted_run_leaves_the_clock_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_inner(pytester, monkeypatch, "")
    result.assert_outcomes(passed=1, failed=3)


def test_a_malformed_shift_stops_the_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_inner(pytester, monkeypatch, "an hour")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*GATEWAY_TEST_CLOCK_SHIFT_SECONDS must be a number of seconds*"])
