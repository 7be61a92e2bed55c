"""Claude Code's CLI (npm ``@anthropic-ai/claude-code``, installed in tests/fixtures/claude-code) as a real MCP client.

Everything runs without an Anthropic account and without a model turn:

- ``claude mcp add --transport http`` / ``claude mcp list`` / ``claude mcp login NAME`` are ordinary subcommands.
  ``mcp login`` refuses to run without a terminal, so :meth:`ClaudeCode.login` gives it a pseudo-terminal; it runs its
  own MCP authorization (PRM, AS metadata, its client ID metadata document or a pre-registered client, PKCE,
  ``resource``, a loopback listener on ``localhost``) and opens the authorization URL with ``$BROWSER``. Here
  ``$BROWSER`` is a one-line script that writes the URL into a FIFO the test reads; the test's browser (headless
  Chromium) signs in, approves, and lands on the CLI's listener, which exchanges the code.
- ``claude -p --input-format stream-json --output-format stream-json`` reads control requests on stdin and answers
  ``control_response`` lines: ``mcp_status`` (the servers, their state and tools) and ``mcp_call`` (one tool call,
  ``mcp__<server>__<tool>``) need no model (:meth:`ClaudeCode.control`).

Isolation: ``HOME`` and ``CLAUDE_CONFIG_DIR`` in a temporary folder (its settings, MCP server list and OAuth tokens
stay there); no telemetry, error reporting or auto-update; and every connection that is not to a loopback address goes
to a proxy address where nothing listens (``HTTPS_PROXY`` on a closed 127.0.0.1 port, ``NO_PROXY`` for loopback), so
nothing leaves the machine even if a switch is missed.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "claude-code"
CLAUDE = FIXTURE / "node_modules" / ".bin" / "claude"
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # discard: nothing listens, so a missed outbound request fails at once
COMMAND_SECONDS = 60


def install() -> Path:
    """The CLI, installed on first use (``make test`` installs every npm fixture up front)."""
    if not CLAUDE.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, timeout=600)
    return CLAUDE


@dataclass
class Login:
    """A running ``claude mcp login``: the URL it asked the browser to open, then how it ended."""

    process: subprocess.Popen[bytes]
    authorization_url: str
    output: list[str] = field(default_factory=list)

    def finish(self, timeout: float = COMMAND_SECONDS) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        return code, "".join(self.output)


@dataclass
class ClaudeCode:
    """One user's Claude Code: its own home and config folder, and a project folder it runs in."""

    home: Path
    project: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "CLAUDE_CONFIG_DIR": str(self.home / ".claude"),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            # Documented switches: no telemetry, no error reports, no update checks, no other non-essential traffic.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DO_NOT_TRACK": "1",
            # And a net under them: only loopback is reachable.
            "HTTPS_PROXY": CLOSED_PORT_PROXY,
            "HTTP_PROXY": CLOSED_PORT_PROXY,
            "NO_PROXY": "127.0.0.1,localhost,::1",
        }
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = COMMAND_SECONDS) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLAUDE), *args],
            cwd=self.project,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @contextmanager
    def login(self, name: str) -> Iterator[Login]:
        """``claude mcp login NAME`` on a pseudo-terminal, ``$BROWSER`` handing the URL to the test."""
        fifo = self.home / "browser.fifo"
        if not fifo.exists():
            os.mkfifo(fifo)
        browser = self.home / "browser.sh"
        browser.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" > '{fifo}'\n", encoding="utf-8")
        browser.chmod(0o755)
        opened: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: opened.put(fifo.read_text(encoding="utf-8").strip()), daemon=True).start()

        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [str(CLAUDE), "mcp", "login", name],
            cwd=self.project,
            env={**self.env, "BROWSER": str(browser)},
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            start_new_session=True,
        )
        os.close(terminal)
        output: list[str] = []
        threading.Thread(target=_drain, args=(controller, output), daemon=True).start()
        url: str | None = None
        try:
            try:
                url = opened.get(timeout=COMMAND_SECONDS)
            except queue.Empty:
                raise AssertionError(f"claude mcp login opened no browser:\n{''.join(output)[-3000:]}") from None
            yield Login(process, url, output)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=15)
            if url is None:
                with suppress(OSError):  # let the reader thread end: open the FIFO's other side once
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    def control(self, requests: list[dict[str, Any]], *, timeout: float = COMMAND_SECONDS) -> dict[str, Any]:
        """Send each control request to ``claude -p`` in stream-json mode, one after the other, and return the
        responses by request id (each ``{"subtype": "success", "response": ...}`` or ``{"subtype": "error", ...}``)."""
        process = subprocess.Popen(
            [str(CLAUDE), "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"],
            cwd=self.project,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdin is not None and process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
        answers: dict[str, Any] = {}
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            for number, request in enumerate(requests):
                request_id = f"req-{number}"
                message = {"type": "control_request", "request_id": request_id, "request": request}
                process.stdin.write(json.dumps(message) + "\n")
                process.stdin.flush()
                while request_id not in answers:
                    try:
                        line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
                    except queue.Empty:
                        raise AssertionError(f"no answer to {request}:\n{''.join(seen)[-3000:]}") from None
                    if line is None:
                        raise AssertionError(f"claude -p ended before answering {request}:\n{''.join(seen)[-3000:]}")
                    seen.append(line)
                    answer = _control_response(line)
                    if answer is not None:
                        answers[answer["request_id"]] = answer
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return {f"req-{number}": answers[f"req-{number}"] for number in range(len(requests))}


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # the end


def _control_response(line: str) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("type") != "control_response":
        return None
    response = message.get("response")
    return response if isinstance(response, dict) else None


def _drain(controller: int, output: list[str]) -> None:
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        output.append(chunk.decode("utf-8", "replace"))
    os.close(controller)
