"""``make invoke FN=metadata EVENT=events/metadata-prm.json``: run one function's handler on one event, in-process.

The function short name (``metadata``, ``proxy``, ``register``, ``authorize``, ``token``) names the template's
``<Name>Function``. The handler runs with the environment it has under ``make dev``: against the running stack if
``.dev/state.json`` describes a live one, otherwise against an ephemeral stack (moto, the template's resources and
the demo upstream) that lives as long as the command. Placeholders in the event (``{{ACCESS_TOKEN}}``...) are filled
by :mod:`infra.placeholders`; what they created for the dev user (the grant behind a token, a pending sign-in, an
API key) is revoked or deleted once the function has answered, so nothing is left on alice's My connections page
(``make invoke ... KEEP=1``, ``--keep``: keep it, e.g. to use the tokens the token function returned). The Lambda
response is printed as JSON, its body parsed when it is JSON (or SSE); the libraries' informational logs (botocore's
"Found credentials...", the demo upstream's) are not.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra import placeholders
from infra.dev import DEFAULT_DEV_PORT, DEFAULT_UPSTREAM_PORT, HOST, TEMPLATE_PATH, Stack, read_live_state, start_stack
from infra.devserver import LambdaFunction
from infra.lambda_event import rest_api_event
from infra.template import FunctionSpec, functions, load_template

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("infra.invoke")

FUNCTION_SUFFIX = "Function"


class UnknownFunction(LookupError):
    """The short name matches no function of the template."""


def function_names(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    """Short name (``metadata``) -> function (``MetadataFunction``) for every function of the template."""
    names = {}
    for spec in functions(template):
        short = spec.logical_id.removesuffix(FUNCTION_SUFFIX)
        names[short[:1].lower() + short[1:]] = spec
    return names


def function_spec(name: str, template: dict[str, Any]) -> FunctionSpec:
    names = function_names(template)
    by_logical_id = {spec.logical_id: spec for spec in names.values()}
    spec = names.get(name) or by_logical_id.get(name)
    if spec is None:
        raise UnknownFunction(f"unknown function {name!r}; valid names: {', '.join(sorted(names))}")
    return spec


# --- the environment ----------------------------------------------------------------------------------------

_ephemeral: Stack | None = None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT of a stopped stack is no user
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def default_environment(template: dict[str, Any]) -> dict[str, str]:
    """The running ``make dev`` stack's function environment, else that of an ephemeral stack started now."""
    global _ephemeral
    state = read_live_state()
    if state is not None:
        log.info("using the running `make dev` stack (%s)", state.get("dev_server_url"))
        return {str(key): str(value) for key, value in state["env"].items()}
    if _ephemeral is None:
        log.info("no running `make dev`: starting a temporary local stack")
        upstream_port = DEFAULT_UPSTREAM_PORT if _port_free(DEFAULT_UPSTREAM_PORT) else 0
        _ephemeral = start_stack(
            template, public_base_url=f"http://{HOST}:{DEFAULT_DEV_PORT}", upstream_port=upstream_port
        )
        atexit.register(_stop_ephemeral)
    return dict(_ephemeral.env)


def _stop_ephemeral() -> None:
    global _ephemeral
    if _ephemeral is not None:
        _ephemeral.stop()
        _ephemeral = None


def apply_environment(env: Mapping[str, str]) -> None:
    """Set the functions' environment; when it changes, the warm containers of the old one are gone (the next
    invocation is a cold start that reads the new one)."""
    global _filler_runtime
    changed = any(os.environ.get(key) != value for key, value in env.items())
    os.environ.update(env)
    if changed:
        discard_containers()
        _filler_runtime = None


def discard_containers() -> None:
    """Forget the warm containers: the next invocation of each function is a cold start."""
    for container in _functions.values():
        container.close()
    _functions.clear()


def warm_runtime(function: str) -> Runtime:
    """The runtime the warm container of ``function`` built at its cold start (after at least one invocation)."""
    spec = function_spec(function, load_template(TEMPLATE_PATH))
    container = _functions.get(spec.logical_id)
    modules = container.modules if container is not None else []
    if not modules:
        raise LookupError(f"{function} has no warm container: invoke it first")
    runtime: Runtime = modules[-1].function.runtime  # functions/<name>/app.py: build_function()'s container
    return runtime


def filler_runtime() -> Runtime:
    """A runtime of the current environment for filling placeholders (the same tables, keys and secrets as the
    function's own runtime, so a code or token made with it is valid in the function)."""
    global _filler_runtime
    if _filler_runtime is None:
        from gateway.runtime import Runtime  # gateway: the functions/ package, configured by env

        _filler_runtime = Runtime.from_environment()
    return _filler_runtime


# --- invoking -----------------------------------------------------------------------------------------------

# One warm container per function for the life of the process, as with repeated `sam local invoke --warm`.
_functions: dict[str, LambdaFunction] = {}
_filler_runtime: Runtime | None = None


def invoke(
    function: str,
    event: dict[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    template: dict[str, Any] | None = None,
    rest_api: bool = False,
    keep: bool = False,
    cleaned: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``function``'s handler on ``event`` (placeholders filled) and return the Lambda response.

    ``env`` is the functions' environment; by default that of the running ``make dev`` or of an ephemeral stack.
    ``rest_api``: deliver the (payload-2.0) event as the streaming deployment's REST API does, in payload format 1.0
    (:func:`infra.lambda_event.rest_api_event`). A result without ``statusCode`` is returned as
    ``{"result": ...}``. The handler's exceptions propagate. What the placeholders created is cleaned up afterwards
    unless ``keep`` (and described in ``cleaned``, when given).
    """
    template = load_template(TEMPLATE_PATH) if template is None else template
    spec = function_spec(function, template)
    apply_environment(default_environment(template) if env is None else env)
    leftovers = placeholders.Leftovers()
    filled = placeholders.fill(event, function=function, runtime=filler_runtime(), leftovers=leftovers)
    if rest_api:
        filled = rest_api_event(filled)
    container = _functions.get(spec.logical_id)
    if container is None or container.spec != spec:
        container = _functions[spec.logical_id] = LambdaFunction(spec, max_containers=1)
    try:
        result = container.invoke(filled)
    finally:
        if not keep:
            done = leftovers.clean(filler_runtime())
            if cleaned is not None:
                cleaned += done
    return result if isinstance(result, dict) else {"result": result}


def readable(response: Mapping[str, Any]) -> dict[str, Any]:
    """The response with its body decoded: JSON parsed, an SSE stream as its list of ``data`` JSON messages."""
    shown = dict(response)
    body = response.get("body")
    if not isinstance(body, str):
        return shown
    if response.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except ValueError:
            return shown
    headers = {str(k).lower(): str(v) for k, v in (response.get("headers") or {}).items()}
    if headers.get("content-type", "").startswith("text/event-stream"):
        messages = [line[5:].strip() for line in body.splitlines() if line.startswith("data:")]
        try:
            shown["body"] = [json.loads(message) for message in messages if message]
        except ValueError:
            shown["body"] = body
        return shown
    try:
        shown["body"] = json.loads(body)
    except ValueError:
        shown["body"] = body
    return shown


# Libraries whose informational lines are noise in `make invoke`'s output (the response is what matters).
QUIET_LOGGERS = ("botocore", "boto3", "mcp", "httpx", "uvicorn", "werkzeug")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    keep = "--keep" in args
    args = [arg for arg in args if arg != "--keep"]
    if len(args) != 2:
        print("usage: python -m infra.invoke [--keep] FUNCTION EVENT.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    for noisy in QUIET_LOGGERS:  # an explicit level: the functions' cold start sets the root logger to INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    name, event_path = args
    template = load_template(TEMPLATE_PATH)
    try:
        function_spec(name, template)
    except UnknownFunction as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        event = json.loads(Path(event_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as problem:
        print(f"error: cannot read event {event_path}: {problem}", file=sys.stderr)
        return 2
    cleaned: list[str] = []
    try:
        response = invoke(name, event, template=template, keep=keep, cleaned=cleaned)
    except placeholders.UnknownPlaceholder as problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(json.dumps(readable(response), indent=2, ensure_ascii=False))
    if cleaned:
        log.info("cleaned up after the sample event: %s (KEEP=1 keeps them)", ", ".join(cleaned))
    return 0


if __name__ == "__main__":
    sys.exit(main())
