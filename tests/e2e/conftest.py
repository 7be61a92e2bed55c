"""Fixtures of the end-to-end tests: screenshot folders, a client metadata document host, a locally run OpenID
Provider, and a second gateway whose configuration adds a workspace that signs users in at that provider.

The session's ``dev_server`` cannot serve another configuration: the functions read theirs from the process
environment into one runtime per process, as a Lambda container does. So :func:`isolated_gateway` runs a second dev
server (its own moto, same template, same code) in a subprocess, with :func:`serve_gateway` as its entry point; its
store and its function containers run in processes of their own, as the session's do.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
import yaml

from infra.demo_upstream import DemoUpstream
from infra.dev import DEMO_UPSTREAM_URL, EXAMPLE_CONFIG, TEMPLATE_PATH, gateway_environment
from infra.devserver import REPO_ROOT, start_dev_server
from infra.local_aws import provision, start_local_aws
from infra.template import load_template
from tests.support.browser import artifact_dir
from tests.unit.net.https_server import LocalHttps, local_https

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
OIDC_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "oidc"
IDP_CLIENT_ID = "mcp-gateway"
IDP_CLIENT_SECRET = "gateway-secret"
OIDC_WORKSPACE = "corp"
STARTUP_SECONDS = 60


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """``test-artifacts/<test name>/``, emptied for this run."""
    return artifact_dir(request.node.name)


# --- a host for client ID metadata documents ----------------------------------------------------------------


@dataclass(frozen=True)
class CimdHost:
    """An https server on 127.0.0.1 with a throwaway certificate; ``ca_bundle`` trusts it and the public CAs."""

    https: LocalHttps
    ca_bundle: Path

    def url(self, path: str) -> str:
        return self.https.url(path, host=HOST)


@pytest.fixture(scope="module")
def cimd_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CimdHost]:
    with local_https() as https:
        bundle = tmp_path_factory.mktemp("ca") / "bundle.pem"
        bundle.write_text(Path(certifi.where()).read_text() + "\n" + Path(https.ca_file).read_text())
        yield CimdHost(https, bundle)


# --- a locally run OpenID Provider ----------------------------------------------------------------------------


def _npm_install() -> None:
    if (OIDC_FIXTURE / "node_modules" / "oidc-provider").is_dir():
        return
    logger.warning("installing oidc-provider into %s (npm install, once)", OIDC_FIXTURE)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=OIDC_FIXTURE, check=True, timeout=300)


class _Process:
    """A child process whose output is drained in the background (kept for error messages)."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        stdout = self.process.stdout
        assert stdout is not None
        threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True).start()

    def wait_for(self, prefix: str, what: str) -> str:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            for line in list(self.lines):
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{what} did not start (exit {self.process.poll()}):\n{''.join(self.lines)[-4000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            if self.process.stdin is not None:
                self.process.stdin.close()  # the gateway runner stops when its stdin closes
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    redirect_uri: str  # the gateway workspace's callback registered at the provider


def _start_oidc_provider(port: int, redirect_uri: str) -> tuple[_Process, OidcProvider]:
    _npm_install()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": IDP_CLIENT_ID,
        "OIDC_CLIENT_SECRET": IDP_CLIENT_SECRET,
        "OIDC_REDIRECT_URI": redirect_uri,
    }
    process = _Process(["node", "server.mjs"], cwd=OIDC_FIXTURE, env=env)
    issuer = process.wait_for("listening ", "oidc-provider")
    return process, OidcProvider(issuer, redirect_uri)


# --- a second gateway -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsolatedGateway:
    url: str
    idp: OidcProvider
    cimd: CimdHost


def isolated_config(upstream_url: str, idp_issuer: str) -> dict[str, object]:
    """examples/gateway.yaml (workspace ``demo``, dev login) plus workspace ``corp`` signing in at ``idp_issuer``;
    both have route ``echo`` in front of the demo upstream. The CIMD host runs on 127.0.0.1, so this test-only
    configuration turns on the local-stage switch that lets the gateway fetch metadata documents there."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(DEMO_UPSTREAM_URL, upstream_url)
    config: dict[str, object] = yaml.safe_load(text)
    config["oauth"] = {"cimd_allow_private_addresses": True}
    workspaces = config["workspaces"]
    assert isinstance(workspaces, dict)
    workspaces[OIDC_WORKSPACE] = {
        "title": "Corp (OpenID Connect)",
        "identity_provider": {
            "type": "oidc",
            "issuer": idp_issuer,
            "client_id": IDP_CLIENT_ID,
            "client_secret": f"plain:{IDP_CLIENT_SECRET}",
            "scopes": ["openid", "profile", "groups"],
        },
        "servers": {
            "echo": {
                "title": "Echo (corp)",
                "description": "The demo upstream, for users of the corporate identity provider.",
                "upstream": upstream_url,
                "scopes": ["mcp"],
            }
        },
    }
    return config


def serve_gateway(config_path: str, port: str, mode: str = "buffered") -> None:
    """Entry point of the gateway subprocess: moto with the template's resources, and the dev server on ``port``
    serving ``config_path`` in deployment ``mode`` (``ProxyResponseMode``: buffered or streaming), until stdin
    closes."""
    parameters = {"ProxyResponseMode": mode}
    logging.basicConfig(level=logging.WARNING)
    template = load_template(TEMPLATE_PATH)
    aws = start_local_aws()
    try:
        refs = provision(aws.endpoint_url, template)
        env = gateway_environment(
            template,
            endpoint_url=aws.endpoint_url,
            refs=refs,
            public_base_url=f"http://{HOST}:{port}",
            config_path=Path(config_path),
            parameters=parameters,
        )
        server = start_dev_server(template, env, host=HOST, port=int(port), parameters=parameters)
        try:
            print(f"ready {server.url}", flush=True)
            sys.stdin.read()
        finally:
            server.stop()
    finally:
        aws.stop()


def gateway_process(
    config: dict[str, object],
    directory: Path,
    port: int,
    *,
    mode: str = "buffered",
    env: dict[str, str] | None = None,
) -> _Process:
    """A gateway of its own in a subprocess (:func:`serve_gateway`): ``config`` written to ``directory``, served on
    ``port`` in deployment ``mode``, with this process's environment (without gateway or AWS settings) plus ``env``.
    Wait for it with ``wait_for("ready ", ...)``; stop it with ``stop()``."""
    config_path = directory / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "AWS_"))}
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)])
    environment.update(env or {})
    runner = "import sys; from tests.e2e.conftest import serve_gateway; serve_gateway(*sys.argv[1:])"
    return _Process([sys.executable, "-c", runner, str(config_path), str(port), mode], cwd=REPO_ROOT, env=environment)


@pytest.fixture(scope="module")
def isolated_gateway(
    demo_upstream: DemoUpstream, cimd_host: CimdHost, free_port: Callable[[], int]
) -> Iterator[IsolatedGateway]:
    """A second dev server whose config adds workspace ``corp`` (IdP: a local oidc-provider) and which trusts the
    CIMD host's certificate (the CIMD fetcher verifies TLS against ``SSL_CERT_FILE``, else certifi's bundle)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed (make test installs it with the npm fixtures)")
    port = free_port()
    idp_process, idp = _start_oidc_provider(free_port(), f"http://{HOST}:{port}/{OIDC_WORKSPACE}/oidc/callback")
    try:
        with tempfile.TemporaryDirectory(prefix="e2e-gateway-") as directory:
            config = isolated_config(demo_upstream.url, idp.issuer)
            certificates = {"SSL_CERT_FILE": str(cimd_host.ca_bundle)}
            gateway = gateway_process(config, Path(directory), port, env=certificates)
            try:
                url = gateway.wait_for("ready ", "the second dev server")
                yield IsolatedGateway(url, idp, cimd_host)
            finally:
                gateway.stop()
    finally:
        idp_process.stop()
