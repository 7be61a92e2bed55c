"""Run in a fresh interpreter by :mod:`infra.bench`: import one Lambda handler, feed it one event, report timings.

Nothing but the standard library's ``sys``/``os``/``time`` is imported before the handler module, so the measured
import cost is the function's own. Timestamps are ``CLOCK_MONOTONIC`` (system-wide on Linux): the parent reads the
same clock just before it spawns this process, so ``responded - spawned`` is the cold start from a fresh
interpreter to the first handled event.

    python child.py MODE CODE_DIR MODULE:ATTR EVENT_JSON_PATH [ITERATIONS]

MODE: ``interpreter`` (report at once: the bare-interpreter baseline), ``bare`` (a trivial handler defined here: the
bare-handler baseline), ``handler`` (import MODULE and call ATTR). With ITERATIONS > 1 the handler is called that
many times and the peak RSS (``VmHWM``) is reported. The report is one JSON line on stdout; the process ends
with ``os._exit`` so interpreter teardown is not measured and cannot hang.
"""

import time

TOP_NS = time.clock_gettime_ns(time.CLOCK_MONOTONIC)

import os  # noqa: E402 - after the first timestamp on purpose
import sys  # noqa: E402


class _Context:
    """The attributes of the Lambda context object that handlers read."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _bare_handler(event: object, context: object) -> dict[str, object]:
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}


def _now() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _peak_rss_kb() -> int:
    """Peak RSS of this process. ``VmHWM``, not ``getrusage().ru_maxrss``: on Linux the latter survives exec and
    so reports the forking parent's peak when that was larger (the benchmark's parent holds moto: ~150 MB)."""
    peak = _status_kb("VmHWM")
    if peak < 0:  # not Linux
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak


def _emit(report: dict[str, object]) -> None:
    import json

    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    mode, code_dir, target, event_path = sys.argv[1:5]
    iterations = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    if mode == "interpreter":
        _emit({"top_ns": TOP_NS, "imported_ns": TOP_NS, "responded_ns": TOP_NS})
    sys.path[0] = code_dir  # as in Lambda: the function's code first (instead of this script's directory)
    import json  # the handler modules import it too; reading the event must not depend on them

    with open(event_path, encoding="utf-8") as file:
        event = json.load(file)
    if mode == "bare":
        handler = _bare_handler
    else:
        module_name, _, attribute = target.partition(":")
        # __import__, not importlib.import_module: only the former goes through the C import machinery that
        # ``-X importtime`` instruments, so the handler module appears as the root of its imports.
        __import__(module_name)
        handler = getattr(sys.modules[module_name], attribute)
    imported_ns = _now()
    context = _Context()
    result = handler(event, context)
    responded_ns = _now()
    boto_loaded = sorted(name for name in ("boto3", "botocore") if name in sys.modules)
    report: dict[str, object] = {
        "top_ns": TOP_NS,
        "imported_ns": imported_ns,
        "responded_ns": responded_ns,
        "status": result.get("statusCode") if isinstance(result, dict) else None,
        "body": str(result.get("body", ""))[:500] if isinstance(result, dict) else repr(result)[:500],
        "aws_sdk_modules": boto_loaded,
        "module_count": len(sys.modules),
    }
    if iterations > 1:
        report["rss_first_kb"] = _peak_rss_kb()
        statuses: dict[str, int] = {}
        started = _now()
        for _ in range(iterations - 1):
            status = str(handler(event, context).get("statusCode"))
            statuses[status] = statuses.get(status, 0) + 1
        report["warm_seconds"] = (_now() - started) / 1e9
        report["warm_statuses"] = statuses
        report["iterations"] = iterations
        report["rss_peak_kb"] = _peak_rss_kb()
        report["rss_now_kb"] = _status_kb("VmRSS")
    _emit(report)


if __name__ == "__main__":
    main()
