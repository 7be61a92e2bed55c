"""The ``requestState`` of the gateway's own ``InputRequiredResult`` (MCP 2026-07-28 §Basic "Multi Round-Trip
Requests"), which asks a client to connect an upstream account, and how the client's retry is read back.

The state is ``gs1.`` + base64url(nonce ‖ AES-GCM(JSON)) under a key derived (HKDF-SHA256, an ``info`` of its own)
from the deployment's shared secret, like session ids (:mod:`gateway.proxy.session_ids`), with the route key and the
user id as associated data. It holds the time it was issued, the request it answers (method and name or URI), the
upstream whose account is asked for (a virtual route's member; empty on a plain route), the key of the input
request, and what the client's request carried for the upstream itself (its own ``requestState`` and other
``inputResponses``), which the retry gets back, so an upstream's own round trips survive one of the gateway's.

MCP 2026-07-28 §"Server Requirements (Basic Workflow)": ``requestState`` is attacker-controlled input. This one
decides nothing about access — on the retry the upstream is called with the credential the gateway holds for the
user, or the user is asked again — but it decides where a virtual route's retry goes, so it is integrity-protected
and refused (a JSON-RPC error saying why, never a 5xx) when it was altered or not issued here, was issued to another
user, for another route or another request, or has expired.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway import safe_json
from gateway.mcp.input_required import INPUT_RESPONSES, REQUEST_STATE, action_of, responses_of
from gateway.mcp.jsonrpc import Message
from gateway.mcp.stateless import named

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "gs1."
HKDF_INFO = b"mcp-gateway/request-state/v1"
NONCE_BYTES = 12
DEFAULT_MAX_AGE_SECONDS = 1800  # long enough to sign in at the gateway and at the upstream's authorization server
CLOCK_SKEW_SECONDS = 60
MAX_STATE_LENGTH = 96 * 1024  # what the gateway tries to open
MAX_CARRIED_BYTES = 48 * 1024  # the upstream's own state and responses kept inside ours (beyond: dropped)


class BadRequestState(Exception):
    """A ``requestState`` in the gateway's form that cannot be used; ``reason`` completes "requestState …"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConnectState:
    """What the gateway remembers across the round trip that asks for an upstream account."""

    method: str
    name: str | None
    member: str
    """The upstream whose account is asked for: a virtual route's member name, "" on a plain route."""
    key: str
    """The key of the gateway's input request (its answer is in the retry's ``inputResponses`` under it)."""
    upstream_state: str | None = None
    upstream_responses: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """A client's retry of a request the gateway answered with its own ``InputRequiredResult``."""

    message: Message
    """The request as the upstream gets it: the gateway's state and input response removed, the upstream's own
    ``requestState`` and ``inputResponses`` restored."""
    member: str
    action: str | None
    """The user's answer to the gateway's elicitation (``accept``, ``decline``, ``cancel``), if the client sent one."""


def derive_key(shared_secret: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(shared_secret)


class RequestStateCodec:
    def __init__(
        self,
        shared_secret: bytes | Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        """``shared_secret``: the secret, or how to read it (then only when a state is first sealed or opened)."""
        self._secret = shared_secret
        self._cipher: AESGCM | None = None
        self._clock = clock
        self.max_age_seconds = max_age_seconds

    @property
    def _aead(self) -> AESGCM:
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            secret = self._secret() if callable(self._secret) else self._secret
            self._cipher = AESGCM(derive_key(secret))
        return self._cipher

    @staticmethod
    def is_ours(value: object) -> bool:
        """Whether a ``requestState`` is in the gateway's form (anything else is an upstream's, passed on as is)."""
        return isinstance(value, str) and value.startswith(PREFIX)

    def seal(self, state: ConnectState, *, route_key: str, user_id: str) -> str:
        carried: dict[str, Any] = {}
        if state.upstream_state is not None:
            carried["s"] = state.upstream_state
        if state.upstream_responses:
            carried["r"] = state.upstream_responses
        if len(json.dumps(carried, separators=(",", ":"))) > MAX_CARRIED_BYTES:
            carried = {}  # too much to carry through the client: the upstream asks again for what it needs
        content = {
            "t": int(self._clock()), "m": state.method, "n": state.name, "u": state.member, "k": state.key, **carried,
        }  # fmt: skip
        plaintext = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, _associated_data(route_key, user_id))
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, value: str, *, route_key: str, user_id: str) -> ConnectState:
        """The state in ``value``; :class:`BadRequestState` unless sealed here for this user and route, in time."""
        encoded = value[len(PREFIX) :]
        if not value.startswith(PREFIX) or len(value) > MAX_STATE_LENGTH:
            raise BadRequestState("was not issued by this gateway")
        try:
            sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise BadRequestState("was altered or was not issued by this gateway") from None
        from cryptography.exceptions import InvalidTag

        try:
            aad = _associated_data(route_key, user_id)
            plaintext = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise BadRequestState(
                "was altered, or was issued to another user, for another route or by another gateway"
            ) from None
        content = safe_json.loads(plaintext)
        age = int(self._clock()) - int(content["t"])
        if age > self.max_age_seconds:
            raise BadRequestState(f"has expired (it is valid for {self.max_age_seconds // 60} minutes): call again")
        if age < -CLOCK_SKEW_SECONDS:
            raise BadRequestState("was issued in the future")
        responses = content.get("r")
        return ConnectState(
            method=str(content["m"]),
            name=content["n"] if isinstance(content["n"], str) else None,
            member=str(content["u"]),
            key=str(content["k"]),
            upstream_state=content["s"] if isinstance(content.get("s"), str) else None,
            upstream_responses=responses if isinstance(responses, dict) else None,
        )

    def ask(self, message: Message, *, member: str, key: str, route_key: str, user_id: str) -> str:
        """The state of an ``InputRequiredResult`` answering ``message`` (as the upstream would have got it): the
        upstream's own ``requestState`` and ``inputResponses`` in it are kept for the retry."""
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        upstream_state = params.get(REQUEST_STATE)
        state = ConnectState(
            method=str(message.get("method")),
            name=named(message),
            member=member,
            key=key,
            upstream_state=upstream_state if isinstance(upstream_state, str) else None,
            upstream_responses=responses_of(params) or None,
        )
        return self.seal(state, route_key=route_key, user_id=user_id)

    def resume(self, message: Message, *, route_key: str, user_id: str) -> Retry | None:
        """The retry in ``message``, when its ``requestState`` is the gateway's (None otherwise: no state, or an
        upstream's). :class:`BadRequestState` when it is the gateway's but cannot be used."""
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        value = params.get(REQUEST_STATE)
        if not self.is_ours(value):
            return None
        assert isinstance(value, str)
        state = self.open(value, route_key=route_key, user_id=user_id)
        if state.method != message.get("method") or state.name != named(message):
            raise BadRequestState("was issued for another request: retry the request it came with")
        responses = responses_of(params)
        ours = responses.pop(state.key, None)
        restored = {name: value for name, value in params.items() if name not in (REQUEST_STATE, INPUT_RESPONSES)}
        if state.upstream_state is not None:
            restored[REQUEST_STATE] = state.upstream_state
        merged = {**(state.upstream_responses or {}), **responses}
        if merged:
            restored[INPUT_RESPONSES] = merged
        return Retry({**message, "params": restored}, state.member, action_of(ours))


def _associated_data(route_key: str, user_id: str) -> bytes:
    route = route_key.encode()
    return b"request-state\x00" + len(route).to_bytes(2, "big") + route + user_id.encode()
