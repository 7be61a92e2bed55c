"""The console's actions: each asks first (``GET /{ws}/admin/confirm?action=...``), and its button POSTs the form to
``/{ws}/admin/act`` with the session's CSRF token; the answer is a page that says what was done (a new API key's
value, shown this once, whole). Every action is one call into the operator service, audited as done by
``console:<admin>`` (the same service the JSON API and ``mcp-gateway admin`` call)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.responses import HTMLResponse

from gateway.api_keys.issuing import KeyRequest
from gateway.operations.views import Ended
from gateway.web.admin.access import Admin, ConsoleRefusal, console_url
from gateway.web.admin.listing import connection_route_keys
from gateway.web.admin.pages import render

MAX_FIELD = 2000


def _field(source: Mapping[str, Any], name: str) -> str:
    value = source.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD:
        raise ConsoleRefusal(400, "", f"The form needs {name.replace('_', ' ')}.")
    return value.strip()


def _question(admin: Admin, action: str, params: Mapping[str, str]) -> tuple[str, str, dict[str, str]]:
    """(question, consequence, the form's hidden fields) of an action, after checking what it names."""
    operator = admin.operator()
    if action == "revoke_grant":
        grant = operator.grant(_field(params, "id"))
        if grant.workspace != admin.workspace:
            raise ConsoleRefusal(404, admin.workspace, "That grant is not one of this workspace's.")
        return (
            f"Revoke {grant.user_name or grant.user_id}'s grant to {grant.client_id}?",
            f"The client's next MCP call on {grant.route_key} is refused (401) and its refresh token stops working. "
            "It asks the user to sign in again if it still needs access.",
            {"action": action, "id": grant.grant_id},
        )
    if action == "revoke_client":
        client_id = _field(params, "id")
        return (
            f"Revoke the client {client_id}?",
            "Every active grant it holds in this workspace is revoked and its registration ends: it can neither call, "
            "refresh nor sign in again without registering anew.",
            {"action": action, "id": client_id},
        )
    if action == "revoke_key":
        key_id = _field(params, "id")
        key = next((k for k in operator.keys(admin.workspace) if k.key_id == key_id), None)
        if key is None:
            raise ConsoleRefusal(404, admin.workspace, "That key is not one of this workspace's.")
        return (
            f"Revoke the API key {key.name} ({key.key_id})?",
            f"Every job or agent using it (acting as {key.user_id}) is refused from its next request.",
            {"action": action, "id": key.key_id},
        )
    if action == "disconnect":
        route_key, user_id = _field(params, "id"), _field(params, "user_id")
        return (
            f"Disconnect {user_id}'s account at {route_key}?",
            "The gateway forgets the credential; the user connects again when a call needs it.",
            {"action": action, "id": route_key, "user_id": user_id},
        )
    if action == "offboard":
        user_id = _field(params, "user_id")
        return (
            f"End all of {user_id}'s access to this workspace?",
            "Every active grant and API key of theirs is revoked and their upstream accounts are disconnected "
            "(unless kept below). Their clients are refused from their next request.",
            {"action": action, "user_id": user_id},
        )
    raise ConsoleRefusal(400, admin.workspace, "Choose something to do from the console's pages.")


def confirm(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    action = params.get("action", "")
    question, consequence, fields = _question(admin, action, params)
    return render(
        admin, "", question, confirmation={
            "question": question, "consequence": consequence, "fields": fields,
            "action": console_url(admin.services.base_url, admin.workspace, "act"),
            "offboard": action == "offboard", "cancel": console_url(admin.services.base_url, admin.workspace),
        },
    )  # fmt: skip


def act(admin: Admin, form: FormData) -> HTMLResponse:
    """Do what the confirmed form says (its CSRF token checked by the caller) and show what was done."""
    action = form.get("action")
    operator = admin.operator()
    by = admin.acting_as
    ended: list[Ended] = []
    created = None
    if action == "revoke_grant":
        _question(admin, action, {"id": _field(form, "id")})  # the grant is this workspace's
        ended = [operator.revoke_grant(_field(form, "id"), by=by)]
    elif action == "revoke_client":
        ended = operator.revoke_client(_field(form, "id"), workspace=admin.workspace, by=by)
    elif action == "revoke_key":
        _question(admin, action, {"id": _field(form, "id")})
        ended = [operator.revoke_key(_field(form, "id"), by=by)]
    elif action == "disconnect":
        route_key = _field(form, "id")
        if route_key not in connection_route_keys(admin):
            raise ConsoleRefusal(404, admin.workspace, "That route has no per-user accounts in this workspace.")
        ended = [operator.disconnect(route_key, _field(form, "user_id"), by=by)]
    elif action == "offboard":
        result = operator.offboard_user(
            admin.workspace, _field(form, "user_id"), keep_connections=form.get("keep_connections") == "on", by=by,
            route_keys=connection_route_keys(admin),
        )  # fmt: skip
        ended = list(result.offboarding.ended)
    elif action == "create_key":
        servers = tuple(value for value in form.getlist("servers") if isinstance(value, str) and value)
        days = form.get("expires_in_days")
        expires = (
            admin.now() + int(days) * 86400
            if isinstance(days, str) and days.isdigit() and 0 < int(days) <= 3650
            else None
        )
        tools = tuple(t.strip() for t in str(form.get("tools") or "").split(",") if t.strip())
        created = operator.create_key(
            KeyRequest(
                workspace=admin.workspace, user_id=_field(form, "user_id"), name=_field(form, "name"),
                servers=servers, tools=tools, expires_at=expires, created_by=by,
            )
        )  # fmt: skip
    else:
        raise ConsoleRefusal(400, admin.workspace, "Choose something to do from the console's pages.")
    return render(
        admin, "", "Done", done={"ended": ended, "created": created,
                                 "back": console_url(admin.services.base_url, admin.workspace)},
    )  # fmt: skip
