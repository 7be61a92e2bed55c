"""``make dev`` (or ``python -m infra.dev``) run by a test as a user runs it in a terminal: in a process group of its
own, with ports, a state directory and nothing of the test session's function environment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.ports import tcp_sockets

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
STARTUP_SECONDS = 90
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed"]  # -o: never (re)install the venv from a test


def dev_environment(state_dir: Path, dev_port: int, upstream_port: int) -> dict[str, str]:
    """This environment without the session's function environment, with the given ports and a private state
    directory (``DEV_STATE_FILE``: the state file, and beside it the kept local state and the served config)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "AWS_"))}
    env.update(DEV_PORT=str(dev_port), UPSTREAM_PORT=str(upstream_port), DEV_STATE_FILE=str(state_dir / "state.json"))
    return env


@dataclass
class Running:
    """``make dev`` (or ``python -m infra.dev``) in a process group of its own, as in a terminal."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, self.output
            time.sleep(0.1)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole process group (make and its child)."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)

    def ctrl_c(self) -> None:
        """Ctrl-C, and the wait until every process of the group is gone (``make`` itself then exits of SIGINT,
        as it does in a terminal); asserts that the dev server said it stopped."""
        self.interrupt()
        deadline = time.monotonic() + STARTUP_SECONDS
        while self.group() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.group() == [], self.output
        assert self.output.rstrip().endswith("stopped"), self.output

    def group(self) -> list[int]:
        """The processes still in its process group (make, the dev server, the servers and containers it started)."""
        return processes_in_group(self.process.pid)


def start(command: list[str], env: dict[str, str]) -> Running:
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = Running(process)
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: running.lines.extend(iter(stdout.readline, "")), daemon=True).start()
    return running


def kill_group(running: Running) -> None:
    """What a test leaves running is gone afterwards (SIGKILL to the group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(running.process.pid, signal.SIGKILL)
    if running.process.poll() is None:
        running.process.wait()


def processes_in_group(group: int) -> list[int]:
    """The live processes whose process group is ``group`` (from /proc; zombies are not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def listening(port: int) -> bool:
    return any(item.state == "LISTEN" for item in tcp_sockets(port) or [])


def read_state(state_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((state_dir / "state.json").read_text())
    return state
