"""Fillers of the authorize function's sample-event placeholders, registered with :mod:`infra.placeholders`.

- ``{{CLIENT_ID}}``: the ``local-invoke`` client, registered (once) at the event's route as a public client with the
  loopback redirect URI the events use.
- ``{{PENDING_ID}}`` and ``{{PENDING_COOKIE}}``: a pending authorization of that client for the dev user's sign-in,
  stored as /authorize stores it, and the ``name=value`` of the signed cookie that binds a browser to it (both
  placeholders of one event name the same pending authorization).

Importing this module registers the fillers (``infra.placeholders`` must import it, as it does ``placeholders_oauth``).
"""

from __future__ import annotations

from gateway.web.common import cookies
from infra.placeholders import LOCAL_CLIENT_ID, LOCAL_REDIRECT_URI, PlaceholderContext, ensure_local_client, placeholder

CODE_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 Appendix B
_PENDING_KEY = "PENDING_ID"


@placeholder("CLIENT_ID")
def _client_id(context: PlaceholderContext) -> str:
    return ensure_local_client(context.runtime, context.route())


def _pending_id(context: PlaceholderContext) -> str:
    """One pending authorization per event, at the default route (the login page event names only a workspace)."""
    existing = context.values.get(_PENDING_KEY)
    if existing:
        return existing
    _client_id(context)
    route = context.route()
    runtime = context.runtime
    now = runtime.now()
    pending = runtime.authorization.start_for(
        route, LOCAL_CLIENT_ID, "dcr", redirect_uri=LOCAL_REDIRECT_URI, state="make-invoke",
        code_challenge=CODE_CHALLENGE, scopes=tuple(route.default_scopes), now=now,
    )  # fmt: skip
    runtime.authorization.hold(pending)
    context.leftovers.pending.append(pending.pending_id)
    context.values[_PENDING_KEY] = pending.pending_id
    return pending.pending_id


@placeholder("PENDING_ID")
def _pending_placeholder(context: PlaceholderContext) -> str:
    return _pending_id(context)


@placeholder("PENDING_COOKIE")
def _pending_cookie(context: PlaceholderContext) -> str:
    pending_id = _pending_id(context)
    runtime = context.runtime
    name = cookies.cookie_name(pending_id, runtime.base_url)
    return f"{name}={cookies.sign(name, pending_id, runtime.shared_secret)}"
