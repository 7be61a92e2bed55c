"""Client flows driven through the functions as ``make invoke`` runs them (simulated Lambda containers, sample events
with their placeholders filled): a token from the token function, an MCP call through the proxy."""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlencode

from infra import placeholders
from infra.devserver import REPO_ROOT
from infra.invoke import apply_environment, discard_containers, filler_runtime, invoke

EVENTS = REPO_ROOT / "events"
CLIENT_ID = "local-invoke"  # the client the placeholders register, as the sample events name it


def sample_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


def form_event(name: str, form: dict[str, str]) -> dict[str, Any]:
    """A sample event with its form body replaced."""
    event = sample_event(name)
    body = urlencode(form).encode()
    event["body"] = base64.b64encode(body).decode("ascii")
    event["headers"]["content-length"] = str(len(body))
    return event


def applied_environment() -> dict[str, str]:
    """The functions' environment the test applied (``gateway_env``, :func:`with_default_settings`): what the
    flows below run with. (``invoke`` without one would start a local stack of its own, with its own store.)"""
    return dict(os.environ)


def token_exchange(event: dict[str, Any]) -> dict[str, Any]:
    """The token function's answer to ``event`` (a code exchange, a refresh, a revocation)."""
    return invoke("token", event, env=applied_environment())


def mcp_call(access_token: str, env: dict[str, str] | None = None) -> int:
    """A ``tools/call`` (echo) with ``access_token`` through the proxy function: its HTTP status. ``env``: other
    settings than the applied ones."""
    event = sample_event("proxy-tools-call.json")
    event["headers"]["authorization"] = f"Bearer {access_token}"
    return int(invoke("proxy", event, env=applied_environment() if env is None else env)["statusCode"])


def refresh_status(refresh_token: str) -> int:
    event = form_event(
        "token-refresh.json", {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID}
    )
    return int(token_exchange(event)["statusCode"])


def with_default_settings(gateway_env: dict[str, str]) -> dict[str, str]:
    """Apply the functions' environment as the template's defaults set it; the next calls are cold starts."""
    apply_environment(gateway_env)
    discard_containers()
    return gateway_env


def issued_tokens() -> tuple[dict[str, Any], dict[str, Any]]:
    """A code exchanged at the token function: (its token response, the exchange event, to replay)."""
    event = placeholders.fill(sample_event("token-authorization-code.json"), function="token", runtime=filler_runtime())
    response = token_exchange(event)
    assert response["statusCode"] == 200, response.get("body")
    tokens: dict[str, Any] = json.loads(response["body"])
    return tokens, event
