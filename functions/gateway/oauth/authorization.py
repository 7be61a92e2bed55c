"""The authorization service: what happens to an authorization between ``/authorize`` and the token endpoint, beside
:class:`~gateway.oauth.token_service.TokenService` (which takes over at ``/token``).

- **Pending authorizations** (an ``/authorize`` request, or a sign-in the gateway starts for itself: My connections,
  an upstream connect link) are started here, held in the store while the user signs in and consents, and taken out
  exactly once when they produce their answer (:meth:`AuthorizationService.consume`: a conditional delete, so a form
  submitted twice issues one code).
- **Remembered consent**: a standing approval of (user, client, route) whose grant is still usable and covers the
  scopes asked issues the code without asking again.
- **Codes** are issued from a consumed pending authorization (RFC 6749 §4.1.2); the token endpoint redeems them.
- **Grants** are revoked here for the user (My connections) and the operator (the admin CLI, the console).

:func:`new_code` and :func:`new_grant` are the one place an :class:`AuthorizationCode` and a :class:`Grant` are made
(the token service, the local tools and the tests use them too). Pure domain code: the store and the audit trail
arrive as arguments; no boto3, no web framework. Nothing else writes the ``GrantStore`` for these flows.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config import OAuthPolicy
from gateway.crypto.hashing import hash_secret, random_token
from gateway.identity.user import SignedInUser
from gateway.routes import Route
from gateway.storage.ports import GrantStore
from gateway.storage.records import AuditKind, AuthorizationCode, ClientSource, Grant, PendingAuthorization

if TYPE_CHECKING:
    from gateway.audit import AuditTrail
    from gateway.oauth.authorize_request import AuthorizeRequest

logger = logging.getLogger("gateway.authorization")

REFRESH_SALT_BYTES = 16
GRANT_ID_BYTES = 18


def revoke_grant(
    grants: GrantStore, audit: AuditTrail | None, grant: Grant, now: int, *, reason: str, by: str | None = None
) -> None:
    """Revoke ``grant`` (its refresh tokens at once, its access tokens from their next call on) and forget its
    remembered consent; audited as ``grant.revoked`` with ``reason`` (``user``, ``admin``, ``offboarded``...) and
    ``by`` (the operator who acted, if one did). The one place a grant is revoked by a person: the user's own page,
    the admin CLI and the console."""
    grants.revoke_grant(grant.grant_id, now, reason)
    if audit is not None:
        audit.record(
            "grant.revoked", workspace=grant.workspace, route_key=grant.route_key, user_id=grant.user_id,
            client_id=grant.client_id, grant_id=grant.grant_id, reason=reason, by=by,
        )  # fmt: skip


class AlreadyAnswered(Exception):
    """The pending authorization was answered already (a second submit, another tab) or has expired."""


# --- the one factory of codes and grants --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A new authorization code: its value (for the client, once; never stored) and its record (stored by hash)."""

    value: str
    record: AuthorizationCode


def new_code(
    *,
    route: Route,
    client_id: str,
    redirect_uri: str,
    code_challenge: str,
    scopes: tuple[str, ...],
    user: SignedInUser,
    signed_in_at: int | None,
    now: int,
    lifetime_seconds: int,
) -> IssuedCode:
    """An authorization code for ``user`` and ``client_id`` on ``route`` (stored as its SHA-256, with the id of the
    grant the token endpoint will create)."""
    value = random_token(32)
    record = AuthorizationCode(
        code_hash=hash_secret(value),
        grant_id=random_token(GRANT_ID_BYTES),
        route_key=route.key,
        client_id=client_id,
        redirect_uri=redirect_uri,
        code_challenge=code_challenge,
        scopes=scopes,
        resource=route.resource,
        user_id=user.id,
        user_name=user.name,
        user_groups=user.groups,
        created_at=now,
        expires_at=now + lifetime_seconds,
        signed_in_at=signed_in_at,
    )
    return IssuedCode(value, record)


def new_grant(
    *,
    route: Route,
    client_id: str,
    user: SignedInUser,
    scopes: tuple[str, ...],
    now: int,
    absolute_lifetime_seconds: int,
    idle_lifetime_seconds: int | None = None,
    grant_id: str | None = None,
    signed_in_at: int | None = None,
) -> Grant:
    """A grant of ``user`` to ``client_id`` on ``route``: it ends at ``now + absolute_lifetime_seconds``, or sooner
    when unused for ``idle_lifetime_seconds`` (never later than the absolute end). ``grant_id`` is the one a code
    promised, if any."""
    absolute_expires_at = now + absolute_lifetime_seconds
    idle = absolute_lifetime_seconds if idle_lifetime_seconds is None else idle_lifetime_seconds
    return Grant(
        grant_id=grant_id or secrets.token_urlsafe(GRANT_ID_BYTES),
        route_key=route.key,
        workspace=route.workspace_name,
        user_id=user.id,
        user_name=user.name,
        user_groups=user.groups,
        client_id=client_id,
        scopes=scopes,
        created_at=now,
        absolute_expires_at=absolute_expires_at,
        idle_expires_at=min(now + idle, absolute_expires_at),
        refresh_salt=secrets.token_urlsafe(REFRESH_SALT_BYTES),
        signed_in_at=signed_in_at,
    )


def grant_from_code(code: AuthorizationCode, route: Route, policy: OAuthPolicy, now: int) -> Grant:
    """The grant a redeemed code creates (under the id the code promised), with the refresh-token lifetimes."""
    return new_grant(
        route=route,
        client_id=code.client_id,
        user=SignedInUser(code.user_id, code.user_name, code.user_groups),
        scopes=code.scopes,
        now=now,
        absolute_lifetime_seconds=policy.refresh_token_absolute_ttl_seconds,
        idle_lifetime_seconds=policy.refresh_token_idle_ttl_seconds,
        grant_id=code.grant_id,
        signed_in_at=code.signed_in_at if code.signed_in_at is not None else code.created_at,
    )


# --- the service ----------------------------------------------------------------------------------------------------


class AuthorizationService:
    """One per container (it holds no request state)."""

    def __init__(self, *, grants: GrantStore, policy: OAuthPolicy, audit: AuditTrail | None = None) -> None:
        self._grants = grants
        self._policy = policy
        self._audit = audit

    # --- pending authorizations ----------------------------------------------------------------------------------

    def start(self, route: Route, request: AuthorizeRequest, now: int) -> PendingAuthorization:
        """A pending authorization for a validated ``/authorize`` request (not stored yet: see :meth:`hold`)."""
        return self.start_for(
            route, request.client.client_id, request.client.source, redirect_uri=request.redirect_uri,
            state=request.state, code_challenge=request.code_challenge, scopes=request.scopes, now=now,
        )  # fmt: skip

    def start_stand_in(
        self, route: Route, client_id: str, redirect_uri: str, state: str | None, now: int
    ) -> PendingAuthorization:
        """A pending authorization for one of the gateway's own stand-in clients (connecting an upstream account,
        the user's connections page): the workspace's sign-in, with no OAuth client and no code behind it."""
        return self.start_for(
            route, client_id, "preregistered", redirect_uri=redirect_uri, state=state, code_challenge="", scopes=(),
            now=now,
        )  # fmt: skip

    def start_for(
        self,
        route: Route,
        client_id: str,
        source: ClientSource,
        *,
        redirect_uri: str,
        state: str | None,
        code_challenge: str,
        scopes: tuple[str, ...],
        now: int,
    ) -> PendingAuthorization:
        """A pending authorization of ``client_id`` (validated by the caller), not stored yet."""
        return PendingAuthorization(
            pending_id=random_token(32),
            route_key=route.key,
            client_id=client_id,
            client_source=source,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=code_challenge,
            scopes=scopes,
            resource=route.resource,
            created_at=now,
            expires_at=now + self._policy.pending_authorization_ttl_seconds,
            csrf_token=random_token(32),
        )

    def hold(self, pending: PendingAuthorization) -> None:
        """Store (or replace) ``pending`` while the user signs in and consents."""
        self._grants.put_pending(pending)

    def held(self, pending_id: str, now: int) -> PendingAuthorization | None:
        """The pending authorization, or None if unknown, answered or expired."""
        return self._grants.get_pending(pending_id, now)

    def signed_in(self, pending: PendingAuthorization, user: SignedInUser, now: int) -> PendingAuthorization:
        """``pending`` with the user the identity provider vouched for (and when), and its IdP round trip cleared
        so that a replayed IdP callback no longer matches. Not stored: see :meth:`hold`."""
        return dataclasses.replace(
            pending,
            user_id=user.id,
            user_name=user.name,
            user_groups=user.groups,
            signed_in_at=now,
            idp_state=None,
            idp_nonce=None,
            idp_code_verifier=None,
        )

    def consume(self, pending: PendingAuthorization, now: int) -> None:
        """Take ``pending`` out of the store before it produces its answer, so that it produces one (a conditional
        delete decides between concurrent requests). Raises :class:`AlreadyAnswered` for the others, and when the
        stored one was signed in as someone else meanwhile."""
        taken = self._grants.take_pending(pending.pending_id, now)
        if taken is None or (taken.user_id is not None and taken.user_id != pending.user_id):
            raise AlreadyAnswered(pending.pending_id)

    def abandon(self, pending_id: str) -> None:
        """Forget a pending authorization that ends without an answer to a client (idempotent)."""
        self._grants.delete_pending(pending_id)

    # --- consent and codes -----------------------------------------------------------------------------------------

    def remembered(self, route: Route, pending: PendingAuthorization, now: int) -> bool:
        """A standing approval of (user, client, route) whose grant is still usable and covers the scopes asked."""
        if pending.user_id is None:
            return False
        consent = self._grants.get_consent(route.key, pending.client_id, pending.user_id)
        if consent is None or not set(pending.scopes) <= set(consent.scopes):
            return False
        grant = self._grants.get_grant(consent.grant_id)
        return grant is not None and grant.is_usable(now)

    def issue_code(self, route: Route, pending: PendingAuthorization, now: int, *, approved: bool = False) -> str:
        """RFC 6749 §4.1.2: consume ``pending`` (signed in) and store a code for it; returns the code's value, for
        the redirect to the client. ``approved``: the user just approved on the consent page (audited as
        ``consent.granted``; a remembered consent is not). Raises :class:`AlreadyAnswered`."""
        if pending.user_id is None:
            raise ValueError("a code is issued only for a signed-in user")
        self.consume(pending, now)  # first: a second submit of the same consent issues nothing
        if approved:
            self._record_consent("consent.granted", route, pending, scope=" ".join(pending.scopes))
        issued = new_code(
            route=route,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            scopes=pending.scopes,
            user=SignedInUser(pending.user_id, pending.user_name, pending.user_groups),
            signed_in_at=pending.signed_in_at,
            now=now,
            lifetime_seconds=self._policy.authorization_code_ttl_seconds,
        )
        self._grants.put_code(issued.record)
        logger.info("authorization code issued for route %s, client %s", route.key, pending.client_id[:100])
        return issued.value

    def deny(self, route: Route, pending: PendingAuthorization, now: int) -> None:
        """The user denied on the consent page: consume ``pending`` (no code is ever issued for it), audited as
        ``consent.denied``. Raises :class:`AlreadyAnswered`."""
        self.consume(pending, now)
        self._record_consent("consent.denied", route, pending)

    def _record_consent(self, kind: AuditKind, route: Route, pending: PendingAuthorization, **detail: str) -> None:
        self._record(kind, route.workspace_name, route.key, pending.user_id, pending.client_id, None, **detail)

    # --- grants ---------------------------------------------------------------------------------------------------

    def grant(self, grant_id: str) -> Grant | None:
        return self._grants.get_grant(grant_id)

    def grants_of_user(self, workspace: str, user_id: str) -> list[Grant]:
        return self._grants.grants_of_user(workspace, user_id)

    def revoke_grant(self, grant: Grant, now: int, *, reason: str) -> None:
        """Revoke ``grant`` for its user (My connections): :func:`revoke_grant`."""
        revoke_grant(self._grants, self._audit, grant, now, reason=reason)

    def _record(
        self,
        kind: AuditKind,
        workspace: str,
        route_key: str,
        user_id: str | None,
        client_id: str,
        grant_id: str | None,
        **detail: str | None,
    ) -> None:
        if self._audit is not None:
            self._audit.record(
                kind, workspace=workspace, route_key=route_key, user_id=user_id, client_id=client_id,
                grant_id=grant_id, **detail,
            )  # fmt: skip
