"""DPoP at the token endpoint (RFC 9449 §5): a proof on a token request, of any grant type, binds what is issued to
the proof's key. Whether a proof is required: the client registered ``dpop_bound_access_tokens: true`` (§5.2), or
its workspace requires DPoP for everyone (``dpop.required``). Nonces (§8) when the workspace asks for them
(``dpop.nonce``): a proof without the current one is answered ``use_dpop_nonce`` with a fresh ``DPoP-Nonce``.

Each proof is used once: its ``jti`` is remembered (a conditional write shared by every container) for as long as
its ``iat`` is accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from gateway.oauth.errors import OAuthError
from gateway.tokens.dpop import DpopNonceRequired, DpopNonces, InvalidDpopProof, canonical_url, the_proof, verify_proof

if TYPE_CHECKING:
    from gateway.oauth.clients import ClientInfo
    from gateway.routes import Route
    from gateway.storage.ports import SingleUseStore


class TokenEndpointDpop:
    """One per container."""

    def __init__(self, single_use: SingleUseStore, nonce_key: Callable[[], bytes]) -> None:
        self._single_use = single_use
        self._nonce_key = nonce_key
        self._nonces: DpopNonces | None = None

    def nonces(self) -> DpopNonces:
        if self._nonces is None:
            self._nonces = DpopNonces(self._nonce_key())
        return self._nonces

    def nonce_for(self, route: Route, now: int) -> str | None:
        """The ``DPoP-Nonce`` to send with a response of this route's token endpoint (None: nonces are off)."""
        return self.nonces().current(now) if route.workspace.dpop.nonce else None

    def binding(
        self, proofs: list[str], route: Route, client: ClientInfo, urls: Collection[str], now: int
    ) -> str | None:
        """The thumbprint of the key this request's tokens are bound to (None: no proof, and none required).
        ``urls``: the token endpoint as the client may address it. Raises :class:`OAuthError`."""
        if not proofs:
            if route.workspace.dpop.required:
                raise OAuthError("invalid_dpop_proof", "this workspace requires DPoP: send a DPoP proof (RFC 9449)")
            if client.dpop_bound_access_tokens:
                raise OAuthError(
                    "invalid_dpop_proof", "this client registered dpop_bound_access_tokens: send a DPoP proof"
                )
            return None
        nonce_ok = None
        if route.workspace.dpop.nonce:
            nonces = self.nonces()
            nonce_ok = lambda nonce: nonces.is_valid(nonce, now)  # noqa: E731 - one line, read at once
        try:
            proof = verify_proof(
                the_proof(proofs),
                method="POST",
                urls={canonical_url(url) for url in urls},
                now=now,
                nonce_ok=nonce_ok,
            )
        except DpopNonceRequired as problem:
            error = OAuthError("use_dpop_nonce", str(problem))
            error.headers["DPoP-Nonce"] = self.nonces().current(now)
            raise error from None
        except InvalidDpopProof as problem:
            raise OAuthError("invalid_dpop_proof", str(problem)) from None
        if not self._single_use.use(proof.replay_key(), proof.remember_until, now):
            raise OAuthError("invalid_dpop_proof", "the DPoP proof was already used (its jti is single-use)")
        return proof.jkt
