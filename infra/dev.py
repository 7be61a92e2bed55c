"""``make dev``: the whole gateway on 127.0.0.1, with no Docker and no AWS account.

Starts the local AWS stand-in (moto) and creates in it what template.yaml declares, the demo upstream MCP server on
127.0.0.1:9001 and the dev server on 127.0.0.1:9000 (each in a process of its own, as are the function containers),
then prints the route URLs. Ports: ``DEV_PORT`` and ``UPSTREAM_PORT``. In ``.dev/`` (or beside ``DEV_STATE_FILE``):
``state.json`` describes the running stack so ``make invoke`` and ``mcp-gateway admin --local`` can use it (removed
on exit: Ctrl-C or SIGTERM), ``local-aws.state`` keeps the stand-in's state across restarts (``--reset``, ``make dev
RESET=1``, deletes it first), ``config/`` holds the configuration served and its validated form.

    python -m infra.dev [--config path/to/gateway.yaml] [--reset]     # make dev [CONFIG=...] [RESET=1]

The gateway configuration defaults to examples/gateway.yaml. A configuration of one's own is served as written (the
demo upstream still starts; its routes may use it) and is checked first: a bad one stops ``make dev`` with the
message of ``python -m gateway.config check FILE``.

The building blocks (:func:`start_stack`, :func:`gateway_environment`) live in :mod:`infra.local_stack`, shared with
``make invoke``, ``make bench`` and the tests (importable from here too).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from infra.child_process import StopRequests
from infra.dev_overview import Overview, banner_sections, build_overview, local_pages, relative
from infra.devserver import REPO_ROOT, DevServer
from infra.lambda_container import QUIET_LOGGERS
from infra.local_stack import (
    DEFAULT_DEV_PORT,
    DEFAULT_UPSTREAM_PORT,
    DEMO_UPSTREAM_URL,
    EXAMPLE_CONFIG,
    HOST,
    TEMPLATE_PATH,
    Stack,
    compile_config,
    config_for_upstream,
    gateway_environment,
    is_example,
    served_config,
    start_stack,
)
from infra.ports import port_taken_message
from infra.template import load_template

__all__ = [
    "DEFAULT_DEV_PORT",
    "DEFAULT_UPSTREAM_PORT",
    "DEMO_UPSTREAM_URL",
    "EXAMPLE_CONFIG",
    "HOST",
    "TEMPLATE_PATH",
    "Stack",
    "compile_config",
    "config_for_upstream",
    "gateway_environment",
    "main",
    "read_live_state",
    "served_config",
    "start_stack",
    "state_file",
]

log = logging.getLogger("infra.dev")

DEFAULT_STATE_FILE = REPO_ROOT / ".dev" / "state.json"
LOCAL_AWS_STATE_NAME = "local-aws.state"


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
    moved = is_example(stack.config_source) and upstream is not None and upstream != DEMO_UPSTREAM_URL
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
