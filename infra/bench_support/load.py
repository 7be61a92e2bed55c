"""The load client of the proxy benchmark, run as its own process by :mod:`infra.bench` (so it does not share a GIL
with the servers it measures): ``tools/call`` requests from N threads, each with its own pooled ``httpx.Client``.

    python load.py URL CONCURRENCY MAX_REQUESTS MAX_SECONDS [BEARER_TOKEN [TOOL]]

Every response must be HTTP 200 with a JSON-RPC ``result``; anything else counts as an error. Prints one JSON line:
count, errors, elapsed seconds, throughput (requests/s) and latency percentiles (ms).
"""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx

WARMUP_REQUESTS_PER_THREAD = 20


def body(tool: str) -> bytes:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {"text": "x"}}}
    return json.dumps(message).encode()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def main(argv: list[str]) -> int:
    url, concurrency, max_requests, max_seconds = argv[0], int(argv[1]), int(argv[2]), float(argv[3])
    token = argv[4] if len(argv) > 4 and argv[4] else None
    content = body(argv[5] if len(argv) > 5 else "echo")
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-06-18",
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [max_requests]
    start_gate = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def one(client: httpx.Client) -> tuple[float, str | None]:
        started = time.perf_counter()
        try:
            response = client.post(url, content=content, headers=headers)
            elapsed = time.perf_counter() - started
        except httpx.HTTPError as error:
            return time.perf_counter() - started, type(error).__name__
        if response.status_code != 200 or b'"result"' not in response.content:
            return elapsed, f"HTTP {response.status_code}: {response.content[:200]!r}"
        return elapsed, None

    def worker() -> None:
        with httpx.Client(timeout=30.0, trust_env=False) as client:
            for _ in range(WARMUP_REQUESTS_PER_THREAD):  # open the pooled connection, warm the server side
                one(client)
            start_gate.wait()
            while time.perf_counter() < deadline[0]:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                elapsed, error = one(client)
                with lock:
                    latencies.append(elapsed)
                    if error is not None:
                        errors.append(error)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + 3600.0  # set for real once every worker is warm
    start_gate.wait()
    started = time.perf_counter()
    deadline[0] = started + max_seconds
    for thread in threads:
        thread.join(timeout=max_seconds + 60)
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    report = {
        "count": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "elapsed": elapsed,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p90_ms": percentile(ordered, 0.90) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "mean_ms": (sum(ordered) / len(ordered) * 1000) if ordered else float("nan"),
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
