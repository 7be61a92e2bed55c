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
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.child_process import StopRequests
from infra.demo_upstream import DemoUpstream, start_demo_upstream
from infra.dev_overview import Overview, banner_sections, build_overview, local_pages, relative
from infra.devserver import REPO_ROOT, DevServer, function_environment
from infra.lambda_container import QUIET_LOGGERS
from infra.local_aws import LocalAws, local_environment, provision, start_local_aws
from infra.ports import port_taken_message
from infra.template import load_template

log = logging.getLogger("infra.dev")

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "gateway.yaml"
DEFAULT_STATE_FILE = REPO_ROOT / ".dev" / "state.json"
LOCAL_AWS_STATE_NAME = "local-aws.state"
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
    compiled: bool = False,
) -> dict[str, str]:
    """The environment every function gets locally: what the template gives it with ``parameters`` (with the
    provisioned table, key and secret ids), the SDK pointed at the stand-in, and the local stage, config and base
    URL. The config's validated form is written beside it (:func:`compile_config`, unless ``compiled``), so the
    functions load it as they do deployed."""
    if not compiled:
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


def served_config(config_path: Path, directory: Path, upstream_url: str | None) -> Path:
    """The copy of ``config_path`` the functions read, in ``directory`` (its validated form goes beside it, not
    beside the user's file): examples/gateway.yaml pointed at the demo upstream's actual address, any other
    configuration as written."""
    directory.mkdir(parents=True, exist_ok=True)
    text = config_path.read_text(encoding="utf-8")
    if _is_example(config_path) and upstream_url is not None:
        text = text.replace(DEMO_UPSTREAM_URL, upstream_url)
    copy = directory / config_path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def _is_example(config_path: Path) -> bool:
    return config_path.resolve() == EXAMPLE_CONFIG.resolve()


@dataclass
class Stack:
    """The local AWS stand-in with the template's resources, the demo upstream, and the functions' environment;
    each server in a process of its own (:mod:`infra.child_process`)."""

    aws: LocalAws
    refs: dict[str, str]
    upstream: DemoUpstream | None
    env: dict[str, str]
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    config_source: Path = EXAMPLE_CONFIG  # the configuration asked for; ``config_path`` is the one served
    aws_state: Path | None = None  # where the stand-in keeps its state across restarts, if it does

    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    @property
    def config_path(self) -> Path:
        """The configuration the functions read (``GATEWAY_CONFIG``)."""
        return Path(self.env["GATEWAY_CONFIG"])

    def stop(self) -> None:
        """Stop the demo upstream, then the stand-in (which saves its state last). Idempotent."""
        if self.upstream is not None:
            self.upstream.stop()
        self.aws.stop()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

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
    config_dir: Path | None = None,
    aws_state: Path | None = None,
) -> Stack:
    """Start moto, provision the template, start the demo upstream (``upstream_port`` None: none) and compute
    the functions' environment for a copy of ``config_path`` (:func:`served_config`) in ``config_dir`` (default: a
    temporary directory, removed at stop); ``parameters`` are template parameters (``ProxyResponseMode``);
    ``aws_state``: the file the stand-in keeps its state in across restarts. Raises ``OSError`` when a port is
    taken."""
    # The two servers start side by side, and the configuration is validated meanwhile.
    upstream = start_demo_upstream(upstream_port, wait=False) if upstream_port is not None else None
    try:
        aws = start_local_aws(aws_port, state=aws_state, wait=False)
    except BaseException:
        if upstream is not None:
            upstream.stop()
        raise
    workdir = None
    try:
        if config_dir is None:
            workdir = tempfile.TemporaryDirectory(prefix="mcp-gateway-dev-")
            config_dir = Path(workdir.name)
        served = served_config(config_path, config_dir, upstream.url if upstream is not None else None)
        compile_config(served)
        aws.wait_ready()
        refs = provision(aws.endpoint_url, template)
        env = gateway_environment(
            template,
            endpoint_url=aws.endpoint_url,
            refs=refs,
            public_base_url=public_base_url,
            config_path=served,
            parameters=parameters,
            compiled=True,
        )
        if upstream is not None:
            upstream.wait_ready()
    except BaseException:
        aws.stop()
        if upstream is not None:
            upstream.stop()
        if workdir is not None:
            workdir.cleanup()
        raise
    return Stack(aws, refs, upstream, env, workdir, config_path, aws_state)


# --- the state file -----------------------------------------------------------------------------------------


def state_file() -> Path:
    """Where ``make dev`` describes the running stack: ``.dev/state.json``, or ``DEV_STATE_FILE`` (tests)."""
    return Path(os.environ.get("DEV_STATE_FILE") or DEFAULT_STATE_FILE)


def local_aws_state_file(state_path: Path) -> Path:
    """Where ``make dev`` keeps the local AWS stand-in's state across restarts: beside the state file."""
    return state_path.parent / LOCAL_AWS_STATE_NAME


def served_config_dir(state_path: Path) -> Path:
    """Where ``make dev`` keeps the configuration it serves and its validated form: beside the state file."""
    return state_path.parent / "config"


def write_state(stack: Stack, server: DevServer, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": os.getpid(),
        "started_at": int(time.time()),
        "aws_endpoint_url": stack.endpoint_url,
        "dev_server_url": server.url,
        "upstream_url": stack.upstream.url if stack.upstream else None,
        "config_source": str(stack.config_source),
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


def banner(server: DevServer, stack: Stack, overview: Overview) -> str:
    """What ``make dev`` prints: where everything runs, each route's URL and how to add it to Claude Code, the
    start page and My connections, all from the configuration the functions are given."""
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
    if stack.upstream is not None:
        lines.append(f"  demo upstream  {stack.upstream.url}")
    if stack.aws_state is not None:
        lines.append(
            f"  local state    {_relative(stack.aws_state.parent)}/ keeps clients, grants, keys and connections "
            "across restarts (make dev RESET=1 starts clean)"
        )
    return "\n".join(lines + banner_sections(overview))


def _relative(path: Path) -> str:
    return relative(path, REPO_ROOT)


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
    parser.add_argument(
        "--reset",
        action="store_true",
        help="start with a clean local state: forget the clients, grants, keys and connections kept in .dev/ "
        "(make dev RESET=1)",
    )
    return parser.parse_args(argv)


def overview_of(server: DevServer, stack: Stack) -> Overview:
    from gateway.config import load_config  # gateway: functions/ package

    source = _relative(stack.config_source)
    upstream = stack.upstream.url if stack.upstream is not None else None
    moved = _is_example(stack.config_source) and upstream is not None and upstream != DEMO_UPSTREAM_URL
    return build_overview(
        load_config(stack.config_path),
        server.url,
        config_source=source,
        upstream_url=upstream,
        default_upstream_url=DEMO_UPSTREAM_URL,
        serves=lambda method, path: server.match(method, path) is not None,
        served_as=", with the demo upstream's actual port" if moved else "",
    )


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    config_path = Path(os.path.abspath(arguments.config))  # the functions may run with another working directory
    check_config(config_path)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Installed first: Ctrl-C or SIGTERM during start-up still ends in a clean shutdown. Signal-safe: the handlers
    # only note the signal (infra.child_process.StopRequests), so the SIGTERM that make forwards on top of the
    # process group's own can never block the process in a lock.
    with StopRequests() as stop_requests:
        return _run(arguments, config_path, stop_requests)


def _run(arguments: argparse.Namespace, config_path: Path, stop_requests: StopRequests) -> int:
    dev_port = _port("DEV_PORT", DEFAULT_DEV_PORT)
    upstream_port = _port("UPSTREAM_PORT", DEFAULT_UPSTREAM_PORT)
    state_path = state_file()
    aws_state = local_aws_state_file(state_path)
    if arguments.reset:
        aws_state.unlink(missing_ok=True)
        log.info("local state reset: starting clean")
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
            config_dir=served_config_dir(state_path),
            aws_state=aws_state,
        )
    except OSError as error:
        server.stop()
        if error.errno == errno.EADDRINUSE:
            raise _port_taken("demo upstream", upstream_port, "UPSTREAM_PORT") from None
        raise
    except BaseException:
        server.stop()
        raise

    try:
        overview = overview_of(server, stack)
        server.local_pages = local_pages(overview)
        server.start(stack.env)
        write_state(stack, server, state_path)
        if not stop_requests.requested:
            print(banner(server, stack, overview), flush=True)
        stop_requests.wait()
        print("\nstopping...", flush=True)
    finally:
        # In order: no new requests, then the containers, the demo upstream, and the store last (it saves).
        state_path.unlink(missing_ok=True)
        server.stop()
        stack.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
