"""The npm tools the interoperability tests run, and the Node 22 that runs them.

The conformance suite and the MCP Inspector CLI need Node >= 22.19; the system Node may be older, so
``tests/fixtures/node22`` installs Node 22 from npm (package ``node``) and every tool here runs with that binary.
``make test`` installs each fixture folder once (infra/scripts/test.sh); :func:`ensure_installed` does the same for a
bare ``pytest`` run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
NODE22_DIR = FIXTURES / "node22"
NODE22 = NODE22_DIR / "node_modules" / ".bin" / "node"
CONFORMANCE_DIR = FIXTURES / "conformance"
CONFORMANCE_CLI = CONFORMANCE_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
INSPECTOR_DIR = FIXTURES / "inspector"
INSPECTOR_CLI = (
    INSPECTOR_DIR
    / "node_modules"
    / "@modelcontextprotocol"
    / "inspector"
    / "clients"
    / "launcher"
    / "build"
    / "index.js"
)
TS_CLIENT_DIR = FIXTURES / "ts-client"
NPM_INSTALL_TIMEOUT = 600


def ensure_installed(*folders: Path) -> None:
    """``npm install`` in each fixture folder that has no node_modules yet (Node 22 first: the others run on it).
    Skips the test when npm itself is missing."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    for folder in (NODE22_DIR, *folders):
        if (folder / "node_modules").is_dir():
            continue
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            check=True,
            timeout=NPM_INSTALL_TIMEOUT,
        )
    if not NODE22.exists():
        pytest.fail(f"{NODE22} is missing after npm install in {NODE22_DIR}")


def node22_version() -> str:
    return subprocess.run([str(NODE22), "--version"], capture_output=True, text=True, check=True).stdout.strip()
