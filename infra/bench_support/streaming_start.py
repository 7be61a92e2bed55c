"""The streaming deployment's cold start, as the Lambda Web Adapter sees it: spawn ``python -m proxy.serve`` (what
``functions/proxy/run.sh`` runs) in the functions' directory, wait until its port accepts a connection (the adapter's
readiness check), then send the first request, the same ``tools/call`` as the buffered proxy's cold-start row, and
read its whole answer.

Timestamps are the parent's ``CLOCK_MONOTONIC``: *ready* is spawn → port open (interpreter, imports, the runtime and
uvicorn's start), *first request* is port open → the answer read (lazy imports, AWS clients, KMS ``GetPublicKey``, the
upstream connection, the adapter-shaped hop).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

READY_POLL_SECONDS = 0.002
START_TIMEOUT_SECONDS = 30.0
FORWARDED = ("authorization", "content-type", "accept", "mcp-protocol-version")


@dataclass(frozen=True)
class StreamingStart:
    ready_ms: float
    first_request_ms: float
    status: int

    @property
    def total_ms(self) -> float:
        return self.ready_ms + self.first_request_ms


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _request_of(event: Mapping[str, Any]) -> tuple[str, str, dict[str, str], bytes]:
    """Method, path, headers and body of a payload-2.0 event (the proxy's sample event)."""
    raw = str(event.get("body") or "")
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    headers = {name: value for name, value in (event.get("headers") or {}).items() if name.lower() in FORWARDED}
    method = str(event["requestContext"]["http"]["method"])
    return method, str(event["rawPath"]), headers, body


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.serve exited with {process.returncode} before opening its port")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(READY_POLL_SECONDS)
    raise RuntimeError("proxy.serve did not open its port in time")


def start_once(functions_dir: Path, env: Mapping[str, str], event: Mapping[str, Any]) -> StreamingStart:
    method, path, headers, body = _request_of(event)
    port = _free_port()
    child_env = {**env, "GATEWAY_RESPONSE_STREAMING": "true", "PORT": str(port)}
    child_env.pop("PYTHONPATH", None)  # Lambda's path: the task root (the working directory here) and site-packages
    spawned = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy.serve"],
        cwd=functions_dir,
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process)
        ready = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=START_TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        finally:
            connection.close()
        answered = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return StreamingStart((ready - spawned) / 1e6, (answered - ready) / 1e6, status)


def measure(functions_dir: Path, env: Mapping[str, str], event_path: Path, runs: int) -> str:
    """A markdown paragraph and table: the streaming proxy's start, median of ``runs`` after one warm-up."""
    event = json.loads(event_path.read_text(encoding="utf-8"))
    start_once(functions_dir, env, event)  # warm-up: .pyc files, page cache
    starts = [start_once(functions_dir, env, event) for _ in range(runs)]
    statuses = sorted({start.status for start in starts})
    rows = [
        ("spawn → port open (imports, runtime, uvicorn)", [start.ready_ms for start in starts]),
        ("port open → first answer read", [start.first_request_ms for start in starts]),
        ("total", [start.total_ms for start in starts]),
    ]
    lines = [
        f"The streaming deployment's proxy (`python -m proxy.serve`, what `run.sh` starts under the Lambda Web "
        f"Adapter), {runs} runs after one warm-up, the same `tools/call` (status {', '.join(map(str, statuses))}); "
        "the adapter's own start (a native binary) and its forwarding are not included:",
        "",
        "| phase | median ms | p90 ms |",
        "|---|---|---|",
    ]
    for label, values in rows:
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        lines.append(f"| {label} | {statistics.median(values):.0f} | {p90:.0f} |")
    return "\n".join(lines)
