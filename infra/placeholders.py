"""Placeholders in sample events: ``{{NAME}}`` stands for a value that only exists at run time.

Access tokens are signed by a KMS key that the local stand-in creates anew at every start, and codes are single-use,
so events in ``events/`` cannot hold them literally. ``make invoke`` and the tests call :func:`fill` on an event
before handing it to a function. Each placeholder has one filler registered here with :func:`placeholder`:

    @placeholder("AUTHORIZATION_CODE")
    def _authorization_code(context: PlaceholderContext) -> str: ...

Fillers run lazily (only for placeholders the event uses), once per event, with a gateway runtime of the
function's environment (``context.runtime``, handed to :func:`fill` by the caller). Fillers of one scenario may share
state through ``context.values`` under keys starting with ``_`` (e.g. a code and its PKCE verifier).

Fillers that need more of the gateway live in their own modules, listed in :data:`FILLER_MODULES` and imported on
the first :func:`fill`.

What a filler creates for the dev user (a grant behind a token, a pending sign-in, an API key) is noted in the
context's :class:`Leftovers`, which ``make invoke`` cleans up once the function has answered (unless ``KEEP=1``), so
a sample event leaves nothing on alice's My connections page. The client the fillers register, ``local-invoke``, is
named for what it is (:data:`LOCAL_CLIENT_NAME`) and kept: later events reuse it.
"""

from __future__ import annotations

import base64
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.routes import Route
    from gateway.runtime import Runtime

PATTERN = re.compile(r"\{\{\s*([A-Z][A-Z0-9_]*)\s*\}\}")

# Who the tokens made for sample events belong to: the dev login of examples/gateway.yaml.
LOCAL_SUBJECT = "alice"
LOCAL_CLIENT_ID = "local-invoke"
LOCAL_CLIENT_NAME = "make invoke (local sample events)"  # what My connections and the admin CLI show for it
LOCAL_REDIRECT_URI = "http://127.0.0.1:33418/callback"  # the redirect_uri of events/authorize-*.json, token-*.json


class UnknownPlaceholder(LookupError):
    """An event names a placeholder no filler is registered for."""


@dataclass
class Leftovers:
    """What the fillers of one event created in the gateway's stores, to be cleaned up after the invocation."""

    grants: list[str] = field(default_factory=list)
    api_keys: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def clean(self, runtime: Runtime) -> list[str]:
        """Revoke the grants (a grant the function never created from a code is a no-op) and the keys, delete the
        pending sign-ins; returns what was cleaned, e.g. ``["revoked 1 grant", "revoked 1 API key"]``."""
        from gateway.api_keys.issuing import revoke_key

        now = runtime.now()
        for grant_id in self.grants:
            runtime.grants.revoke_grant(grant_id, now, "make invoke cleanup")
        for key_id in self.api_keys:
            key = runtime.api_keys.get_key(key_id)
            if key is not None and key.status == "active":
                revoke_key(runtime.api_keys, runtime.audit, key, now, by="make invoke")
        for pending_id in self.pending:
            runtime.grants.delete_pending(pending_id)
        done = (("revoked", self.grants, "grant"), ("revoked", self.api_keys, "API key"))
        cleaned = [f"{verb} {len(found)} {what}{'' if len(found) == 1 else 's'}" for verb, found, what in done if found]
        if self.pending:
            cleaned.append(f"deleted {len(self.pending)} pending sign-in{'' if len(self.pending) == 1 else 's'}")
        self.grants, self.api_keys, self.pending = [], [], []
        return cleaned


@dataclass
class PlaceholderContext:
    """What a filler may use: the event being filled and the gateway runtime of this process; what it creates goes
    into ``leftovers``."""

    function: str
    event: dict[str, Any]
    runtime: Runtime
    values: dict[str, str] = field(default_factory=dict)
    leftovers: Leftovers = field(default_factory=Leftovers)

    def route(self) -> Route:
        """The route the event addresses (its ``workspace``/``server`` path parameters), else the default route."""
        runtime = self.runtime
        parameters = self.event.get("pathParameters") or {}
        workspace, server = parameters.get("workspace"), parameters.get("server")
        route = runtime.routes.get(workspace, server) if workspace and server else None
        route = route or runtime.routes.default_route
        if route is None:
            raise LookupError("the event names no route and the configuration has no default_route")
        return route


Filler = Callable[[PlaceholderContext], str]
FILLERS: dict[str, Filler] = {}

# Modules whose import registers more fillers (they import this module, so they are loaded lazily).
FILLER_MODULES = ("infra.placeholders_oauth", "infra.placeholders_authorize", "infra.placeholders_upstream")


def load_fillers() -> dict[str, Filler]:
    """Every registered filler, after importing :data:`FILLER_MODULES`."""
    for module in FILLER_MODULES:
        importlib.import_module(module)
    return FILLERS


def placeholder(name: str) -> Callable[[Filler], Filler]:
    """Register the filler of ``{{name}}``."""

    def register(filler: Filler) -> Filler:
        if name in FILLERS:
            raise ValueError(f"placeholder {name} is registered twice")
        FILLERS[name] = filler
        return filler

    return register


def names_in(value: Any) -> set[str]:
    """The placeholder names used anywhere in an event (including inside a base64-encoded body)."""
    found: set[str] = set()
    for text in _strings(value):
        found.update(PATTERN.findall(text))
    return found


def fill(
    event: dict[str, Any], *, runtime: Runtime, function: str = "", leftovers: Leftovers | None = None
) -> dict[str, Any]:
    """A copy of ``event`` with every ``{{NAME}}`` replaced by its filler's value, made with ``runtime`` (one of
    the same environment as the function that will handle the event). What the fillers create is added to
    ``leftovers`` when given (otherwise it stays)."""
    names = names_in(event)
    fillers = load_fillers() if names else FILLERS
    unknown = sorted(names - fillers.keys())
    if unknown:
        raise UnknownPlaceholder(
            f"unknown placeholder(s) {', '.join('{{' + n + '}}' for n in unknown)}; "
            f"known: {', '.join('{{' + n + '}}' for n in sorted(fillers))}"
        )
    if not names:
        return event
    context = PlaceholderContext(function=function, event=event, runtime=runtime)
    if leftovers is not None:
        context.leftovers = leftovers
    for name in sorted(names):
        context.values[name] = fillers[name](context)
    filled: dict[str, Any] = _replace(event, context.values)
    if event.get("isBase64Encoded") and isinstance(event.get("body"), str):
        decoded = _decode(event["body"])
        if decoded is not None and PATTERN.search(decoded):
            filled["body"] = base64.b64encode(_substitute(decoded, context.values).encode()).decode("ascii")
    if "body" in filled and "content-length" in (filled.get("headers") or {}):
        body = filled["body"]
        size = len(base64.b64decode(body)) if filled.get("isBase64Encoded") else len(body.encode())
        filled["headers"]["content-length"] = str(size)
    return filled


def _substitute(text: str, values: dict[str, str]) -> str:
    return PATTERN.sub(lambda match: values[match.group(1)], text)


def _replace(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _substitute(value, values)
    if isinstance(value, dict):
        return {key: _replace(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, values) for item in value]
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        found = [text for item in value.values() for text in _strings(item)]
        if value.get("isBase64Encoded") and isinstance(value.get("body"), str):
            decoded = _decode(value["body"])
            if decoded is not None:
                found.append(decoded)
        return found
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _decode(body: str) -> str | None:
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except ValueError:
        return None


# --- fillers ------------------------------------------------------------------------------------------------


def ensure_local_client(runtime: Runtime, route: Route) -> str:
    """Register the public client ``local-invoke`` at ``route`` (never expiring) unless an earlier event did."""
    import contextlib

    from gateway.storage.ports import AlreadyExists
    from gateway.storage.records import RegisteredClient

    now = runtime.now()
    client = RegisteredClient(
        client_id=LOCAL_CLIENT_ID,
        route_key=route.key,
        client_name=LOCAL_CLIENT_NAME,
        redirect_uris=(LOCAL_REDIRECT_URI,),
        token_endpoint_auth_method="none",
        client_secret_hash=None,
        created_at=now,
        last_used_at=now,
        expires_at=None,
    )
    with contextlib.suppress(AlreadyExists):
        runtime.clients.create(client)
    return LOCAL_CLIENT_ID


def create_grant(
    runtime: Runtime,
    route: Route,
    *,
    subject: str = LOCAL_SUBJECT,
    client_id: str = LOCAL_CLIENT_ID,
    lifetime_seconds: int = 86400,
) -> str:
    """Create an active grant of ``subject`` on ``route`` as the token endpoint does (a code, redeemed), and return
    its id. The proxy checks every token's grant, so tokens made outside the token endpoint need a real one."""
    from gateway.identity.user import SignedInUser
    from gateway.oauth.authorization import new_code, new_grant

    now = runtime.now()
    user = SignedInUser(subject)
    scopes = tuple(route.default_scopes)
    code = new_code(
        route=route, client_id=client_id, redirect_uri="http://127.0.0.1/callback", code_challenge="-", scopes=scopes,
        user=user, signed_in_at=now, now=now, lifetime_seconds=60,
    ).record  # fmt: skip
    grant = new_grant(
        route=route, client_id=client_id, user=user, scopes=scopes, now=now, absolute_lifetime_seconds=lifetime_seconds,
        grant_id=code.grant_id, signed_in_at=now,
    )  # fmt: skip
    runtime.grants.put_code(code)
    runtime.grants.redeem_code(code.code_hash, grant, None, now)
    return grant.grant_id


def grant_backed_token(
    runtime: Runtime,
    route: Route,
    *,
    subject: str = LOCAL_SUBJECT,
    client_id: str = LOCAL_CLIENT_ID,
    lifetime_seconds: int | None = None,
    leftovers: Leftovers | None = None,
) -> str:
    """An access token for ``route`` whose grant exists and is active (see :func:`create_grant`); the grant is
    noted in ``leftovers`` when given."""
    grant_id = create_grant(runtime, route, subject=subject, client_id=client_id)
    if leftovers is not None:
        leftovers.grants.append(grant_id)
    return runtime.access_tokens.issue(
        route=route,
        subject=subject,
        client_id=client_id,
        scopes=route.default_scopes,
        grant_id=grant_id,
        lifetime_seconds=lifetime_seconds,
    )


@placeholder("ACCESS_TOKEN")
def _access_token(context: PlaceholderContext) -> str:
    """A valid access token for the event's route, as the token endpoint would issue it to the dev user (with an
    active grant behind it, which the proxy checks)."""
    return grant_backed_token(context.runtime, context.route(), leftovers=context.leftovers)


@placeholder("API_KEY")
def _api_key(context: PlaceholderContext) -> str:
    """A gateway API key of the dev user for the event's route (docs/non-interactive.md), made as
    ``mcp-gateway admin create-key`` makes one."""
    from gateway.api_keys.issuing import KeyRequest, create_key

    runtime, route = context.runtime, context.route()
    request = KeyRequest(
        workspace=route.workspace_name, user_id=LOCAL_SUBJECT, name="sample event", servers=(route.server_name,)
    )
    key, value = create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
    context.leftovers.api_keys.append(key.key_id)
    return value


@placeholder("EXPIRED_ACCESS_TOKEN")
def _expired_access_token(context: PlaceholderContext) -> str:
    """A correctly signed access token for the event's route that expired a minute ago."""
    return grant_backed_token(context.runtime, context.route(), lifetime_seconds=-60, leftovers=context.leftovers)
