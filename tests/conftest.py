"""Session fixtures: the local stack the functions run against, shared by integration and e2e tests.

``local_aws`` (moto with the template's resources), ``demo_upstream`` (the demo MCP server), ``gateway_env`` (the
functions' environment applied to ``os.environ``) and ``dev_server`` (the template's HTTP API on a free port) are
each started once per session, with the deployment's process boundaries: the store, the demo upstream and each of
the dev server's function containers run in processes of their own (docs/architecture.md, "The local stack").

The configuration also has route ``demo/everything`` in front of ``127.0.0.1:{everything_port}``, where the e2e
tests start ``@modelcontextprotocol/server-everything`` when they need it (the functions read one configuration per
process, so the route must exist from the start), and the pre-registered client ``demo-ci`` (``client_credentials``
as the service identity ``service:ci``).

``gateway_env`` uses the dev server's URL as the public base URL, so a token made in-process (``make invoke``,
placeholders) is valid at the dev server and vice versa.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from infra.demo_upstream import DemoUpstream, start_demo_upstream
from infra.dev import TEMPLATE_PATH, config_for_upstream, gateway_environment
from infra.devserver import DevServer, function_environment, patched_environ, start_dev_server
from infra.local_aws import local_environment, provision, start_local_aws
from infra.template import load_template
from tests.support.rate_limits import generous_rate_limits

# GATEWAY_TEST_CLOCK_SHIFT_SECONDS moves the wall clock after collection (make test runs a shifted pass).
pytest_plugins = ["tests.support.clock_shift"]

if TYPE_CHECKING:
    from gateway.runtime import Runtime

HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalAwsStack:
    """moto serving the template's tables, keys and secrets."""

    endpoint_url: str
    refs: dict[str, str]
    env: dict[str, str]  # what the template gives the functions, plus the SDK pointed at moto


def pick_free_port() -> int:
    """A port free on 127.0.0.1 right now (for servers whose URL must be known before they start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Call it for a port free on 127.0.0.1 right now."""
    return pick_free_port


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


@pytest.fixture(scope="session")
def local_aws(template: dict[str, Any]) -> Iterator[LocalAwsStack]:
    aws = start_local_aws()
    try:
        refs = provision(aws.endpoint_url, template)
        env = {**function_environment(template, refs=refs), **local_environment(aws.endpoint_url)}
        yield LocalAwsStack(aws.endpoint_url, refs, env)
    finally:
        aws.stop()


@pytest.fixture(scope="session")
def demo_upstream() -> Iterator[DemoUpstream]:
    upstream = start_demo_upstream()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture(scope="session")
def dev_server_port() -> int:
    return pick_free_port()


@pytest.fixture(scope="session")
def everything_port() -> int:
    """Where route ``demo/everything`` expects server-everything (started by the tests that use it)."""
    return pick_free_port()


def _with_everything_route(config_path: Path, directory: Path, port: int) -> Path:
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["workspaces"]["demo"]["servers"]["everything"] = {
        "title": "Everything (MCP reference server)",
        "upstream": f"http://{HOST}:{port}/mcp",
        "scopes": ["mcp"],
    }
    # A CI job's client for route echo, bound to the service identity service:ci (client_credentials).
    config["workspaces"]["demo"]["clients"] = [
        {
            "client_id": "demo-ci",
            "client_name": "Demo CI job",
            "client_secret": "plain:demo-ci-secret",
            "servers": ["echo"],
            "service_identity": "service:ci",
        }
    ]
    copy = directory / "gateway-with-everything.yaml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return copy


@pytest.fixture(scope="session")
def gateway_env(
    template: dict[str, Any],
    local_aws: LocalAwsStack,
    demo_upstream: DemoUpstream,
    dev_server_port: int,
    everything_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The functions' environment, applied to ``os.environ`` for the session: examples/gateway.yaml pointed at
    the demo upstream (plus route ``demo/everything``), the public base URL of the (future) dev server, the
    provisioned resources."""
    directory = Path(tmp_path_factory.mktemp("gateway-config"))
    config_path = _with_everything_route(config_for_upstream(demo_upstream.url, directory), directory, everything_port)
    env = gateway_environment(
        template,
        endpoint_url=local_aws.endpoint_url,
        refs=local_aws.refs,
        public_base_url=f"http://{HOST}:{dev_server_port}",
        config_path=config_path,
    )
    # The session's tests share one client address (127.0.0.1): limits far above what they send, so the counters
    # are kept (and exercised) without refusing anything; tests of the limits run a gateway of their own. The
    # proxy's per-caller limit stays as deployed by default (off): the hot-path tests count the default's calls.
    env.update(generous_rate_limits(env))
    with patched_environ(env):
        yield env


@pytest.fixture(scope="session")
def gateway_runtime(gateway_env: dict[str, str]) -> Runtime:
    """A gateway runtime of the functions' environment in the test process: the same tables, keys and secrets
    as the functions' own (each simulated container builds its own), for making and inspecting state."""
    from gateway.runtime import Runtime

    return Runtime.from_environment()


@pytest.fixture(scope="session")
def dev_server(template: dict[str, Any], gateway_env: dict[str, str], dev_server_port: int) -> Iterator[DevServer]:
    server = start_dev_server(template, gateway_env, host=HOST, port=dev_server_port)
    try:
        assert server.url == gateway_env["GATEWAY_PUBLIC_BASE_URL"]
        yield server
    finally:
        server.stop()
