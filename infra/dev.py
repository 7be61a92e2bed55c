"""``make dev``: the whole gateway on 127.0.0.1, with no Docker and no AWS account.

Starts the local AWS stand-in (moto) and creates in it what template.yaml declares, the demo upstream MCP server on
127.0.0.1:9001 and the dev server on 127.0.0.1:9000, then prints the route URLs. Ports: ``DEV_PORT`` and
``UPSTREAM_PORT``. ``.dev/state.json`` (or ``DEV_STATE_FILE``) describes the running stack so ``make invoke`` can
use it; it is removed on exit (Ctrl-C or SIGTERM).

    python -m infra.dev [--config path/to/gateway.yaml]     # make dev [CONFIG=path/to/gateway.yaml]

The gateway configuration defaults to examples/gateway.yaml. A configuration of one's own is served as written (the
demo upstream still starts; its routes may use it) and is checked first: a bad one stops ``make dev`` with the
message of ``python -m gateway.config check FILE``.

The building blocks (:func:`start_stack`, :func:`gateway_environment`) are shared with ``make invoke`` and the tests.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from infra.demo_upstream import DemoUpstream, start_demo_upstream
from infra.devserver import REPO_ROOT, DevServer, function_environment
from infra.local_aws import LocalAws, local_environment, provision, start_local_aws
from infra.ports import port_taken_message
from infra.template import load_template

log = logging.getLogger("infra.dev")

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "gateway.yaml"
DEFAULT_STATE_FILE = REPO_ROOT / ".dev" / "state.json"
HOST = "127.0.0.1"
DEFAULT_DEV_PORT = 9000
DEFAULT_UPSTREAM_PORT = 9001
# The upstream URL examples/gateway.yaml gives the demo route; rewritten when the demo upstream runs elsewhere.
DEMO_UPSTREAM_URL = f"http://{HOST}:{DEFAULT_UPSTREAM_PORT}/mcp"


# --- building blocks ----------------------------------------------------------------------------------------


def gateway_environment(
    template: dict[str, Any],
    *,
    endpoint_url: str,
    refs: dict[str, str],
    public_base_url: str,
    config_path: Path = EXAMPLE_CONFIG,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every function gets locally: what the template gives it with ``parameters`` (with the
    provisioned table, key and secret ids), the SDK pointed at the stand-in, and the local stage, config and base
    URL. The config's validated form is written beside it (:func:`compile_config`), so the functions load it as they
    do deployed."""
    compile_config(config_path)
    env = function_environment(template, refs=refs, parameters=parameters)
    env.update(local_environment(endpoint_url))
    env.update(
        GATEWAY_STAGE="local",
        GATEWAY_CONFIG=str(config_path),
        GATEWAY_PUBLIC_BASE_URL=public_base_url,
        GATEWAY_METRICS="false",  # no EMF document per request in the dev server's terminal (CloudWatch reads them)
        GATEWAY_LOG_FORMAT="text",  # the dev server's readable lines, not a JSON line per record as well
    )
    return env


def compile_config(config_path: Path) -> None:
    """Validate the configuration and write its validated form beside it, as ``make build`` does for the deployed
    one (the same command, on this checkout's functions/). A file that cannot be validated (or a directory that
    cannot be written) is left as it is: the functions then validate the file themselves and report what is wrong
    with it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "functions")}
    command = [sys.executable, "-m", "gateway.config", "compile", str(config_path)]
    completed = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        log.debug("no validated form of %s: %s", config_path, completed.stderr.strip())


def config_for_upstream(upstream_url: str, directory: Path, config_path: Path = EXAMPLE_CONFIG) -> Path:
    """``config_path`` itself if the demo upstream runs where it says, else a copy in ``directory`` pointing at
    ``upstream_url``."""
    if upstream_url == DEMO_UPSTREAM_URL:
        return config_path
    text = config_path.read_text(encoding="utf-8").replace(DEMO_UPSTREAM_URL, upstream_url)
    copy = directory / config_path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def _is_example(config_path: Path) -> bool:
    return config_path.resolve() == EXAMPLE_CONFIG.resolve()


@dataclass
class Stack:
    """The local AWS stand-in with the template's resources, the demo upstream, and the functions' environment."""

    aws: LocalAws
    refs: dict[str, str]
    upstream: DemoUpstream | None
    env: dict[str, str]
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    config_source: Path = EXAMPLE_CONFIG  # the configuration asked for; ``config_path`` is the one served

    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    @property
    def config_path(self) -> Path:
        """The configuration the functions read (``GATEWAY_CONFIG``)."""
        return Path(self.env["GATEWAY_CONFIG"])

    def stop(self) -> None:
        if self.upstream is not None:
            self.upstream.stop()
        self.aws.stop()
        if self._workdir is not None:
            self._workdir.cleanup()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_stack(
    template: dict[str, Any],
    *,
    public_base_url: str,
    upstream_port: int | None = 0,
    aws_port: int = 0,
    config_path: Path = EXAMPLE_CONFIG,
    parameters: Mapping[str, str] | None = None,
) -> Stack:
    """Start moto, provision the template, start the demo upstream (``upstream_port`` None: none) and compute
    the functions' environment for ``config_path``: examples/gateway.yaml pointed at the demo upstream's actual
    port (:func:`config_for_upstream`), any other configuration as written; ``parameters`` are template parameters
    (``ProxyResponseMode``). Raises ``OSError`` when a port is taken."""
    upstream = start_demo_upstream(upstream_port) if upstream_port is not None else None
    try:
        aws = start_local_aws(aws_port)
    except BaseException:
        if upstream is not None:
            upstream.stop()
        raise
    try:
        refs = provision(aws.endpoint_url, template)
        workdir = None
        served = config_path
        if _is_example(config_path) and upstream is not None and upstream.url != DEMO_UPSTREAM_URL:
            workdir = tempfile.TemporaryDirectory(prefix="mcp-gateway-dev-")
            served = config_for_upstream(upstream.url, Path(workdir.name), config_path)
        env = gateway_environment(
            template,
            endpoint_url=aws.endpoint_url,
            refs=refs,
            public_base_url=public_base_url,
            config_path=served,
            parameters=parameters,
        )
    except BaseException:
        aws.stop()
        if upstream is not None:
            upstream.stop()
        raise
    return Stack(aws, refs, upstream, env, workdir, config_path)


# --- the state file -----------------------------------------------------------------------------------------


def state_file() -> Path:
    """Where ``make dev`` describes the running stack: ``.dev/state.json``, or ``DEV_STATE_FILE`` (tests)."""
    return Path(os.environ.get("DEV_STATE_FILE") or DEFAULT_STATE_FILE)


def write_state(stack: Stack, server: DevServer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "started_at": int(time.time()),
        "aws_endpoint_url": stack.endpoint_url,
        "dev_server_url": server.url,
        "upstream_url": stack.upstream.url if stack.upstream else None,
        "refs": stack.refs,
        "env": stack.env,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_live_state(path: Path | None = None) -> dict[str, Any] | None:
    """The state of a running ``make dev``, or None if there is none (no file, or its process is gone)."""
    path = state_file() if path is None else path
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        pid = int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return state if isinstance(state.get("env"), dict) else None


# --- make dev -----------------------------------------------------------------------------------------------


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{variable} must be a port number, not {value!r}") from None


def _port_taken(what: str, port: int, variable: str) -> SystemExit:
    """The message names who holds the port (:mod:`infra.ports`). Every server here sets ``SO_REUSEADDR``, so the
    connections a stopped ``make dev`` leaves in TIME_WAIT never cause it; only a socket a process still holds."""
    remedy = f"Stop it, or choose another port: {variable}=<port> make dev"
    return SystemExit(port_taken_message(port, what, remedy, HOST))


def check_config(config_path: Path) -> None:
    """Exit with ``python -m gateway.config check``'s message (each bad key and why) if the file is not valid."""
    from gateway.config import ConfigError, load_config  # gateway: functions/ package

    try:
        load_config(config_path)
    except ConfigError as problem:
        raise SystemExit(str(problem)) from None


def banner(server: DevServer, stack: Stack) -> str:
    """What ``make dev`` prints: where everything runs, each route's URL, and how to add it to Claude Code, all
    from the configuration the functions are given."""
    from gateway.config import DevLoginProvider, load_config  # gateway: functions/ package
    from gateway.routes import RouteTable

    config = load_config(stack.config_path)
    routes = RouteTable(config, server.url).all()
    names = [route.server_name for route in routes]
    lines = [
        "",
        "MCP gateway running locally (Ctrl-C to stop)",
        f"  dev server     {server.url}  ({len(server.routes)} routes of {len(server.functions)} functions"
        " from template.yaml)",
        f"  local AWS      {stack.endpoint_url}  (moto: DynamoDB, KMS, Secrets Manager, SSM)",
        "  mode           "
        + (
            "streaming (the proxy under uvicorn, answers streamed as written: ProxyResponseMode=streaming)"
            if server.streaming
            else "buffered (every answer whole, as the HTTP API and Mangum; make dev MODE=streaming to stream)"
        ),
    ]
    source = _relative(stack.config_source)
    if stack.upstream is not None:
        unused = not any(
            stack.upstream.url in (route.server.upstream, *(m.server.upstream for m in route.members()))
            for route in routes
        )
        lines.append(f"  demo upstream  {stack.upstream.url}" + (f"  (no route of {source} uses it)" if unused else ""))
    if stack.config_path != stack.config_source:
        source += ", with the demo upstream's actual port"  # see config_for_upstream
    lines += ["", f"Routes ({source}):"]
    for route in routes:
        lines += [
            f"  {route.key:<20} {route.resource}  ->  "
            + (
                str(route.server.upstream)
                if route.server.upstream
                else ", ".join(f"{m.member}: {m.server.upstream}" for m in route.members())
            ),
            f"  {'':<20} PRM: {route.resource_metadata_url}",
        ]
    lines += ["", "Add a route to Claude Code:"]
    for route in routes:
        name = (
            route.server_name if names.count(route.server_name) == 1 else f"{route.workspace_name}-{route.server_name}"
        )
        lines.append(f"  claude mcp add --transport http {name} {route.resource}")
    for workspace_name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        if isinstance(provider, DevLoginProvider):
            logins = ", ".join(f"{user.id} / {user.password}" for user in provider.users)
            lines.append(f"\nDev login for workspace {workspace_name}: {logins}")
    lines.append("")
    return "\n".join(lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.dev", description="Run the gateway locally (what `make dev` runs)."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=EXAMPLE_CONFIG,
        metavar="FILE",
        help=f"the gateway configuration to serve (default: {_relative(EXAMPLE_CONFIG)}; make dev CONFIG=FILE)",
    )
    parser.add_argument(
        "--mode",
        choices=("buffered", "streaming"),
        default="buffered",
        help="the deployment mode (template parameter ProxyResponseMode; make dev MODE=streaming)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    config_path = Path(os.path.abspath(arguments.config))  # the functions may run with another working directory
    check_config(config_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mcp", "httpx", "botocore", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Installed first: Ctrl-C or SIGTERM during start-up still ends in a clean shutdown.
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    dev_port = _port("DEV_PORT", DEFAULT_DEV_PORT)
    upstream_port = _port("UPSTREAM_PORT", DEFAULT_UPSTREAM_PORT)
    state_path = state_file()
    template = load_template(TEMPLATE_PATH)
    parameters = {"ProxyResponseMode": arguments.mode}

    # Bind the dev server's port first: a taken port fails before anything else starts.
    try:
        server = DevServer(template, host=HOST, port=dev_port, parameters=parameters)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise _port_taken("dev server", dev_port, "DEV_PORT") from None
        raise
    try:
        stack = start_stack(
            template,
            public_base_url=f"http://{HOST}:{server.port}",
            upstream_port=upstream_port,
            config_path=config_path,
            parameters=parameters,
        )
    except OSError as error:
        server.stop()
        if error.errno == errno.EADDRINUSE:
            raise _port_taken("demo upstream", upstream_port, "UPSTREAM_PORT") from None
        raise

    try:
        server.start(stack.env)
        write_state(stack, server, state_path)
        print(banner(server, stack), flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nstopping...", flush=True)
    finally:
        server.stop()
        stack.stop()
        state_path.unlink(missing_ok=True)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
