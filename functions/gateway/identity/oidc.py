"""A generic OpenID Connect relying party: how a workspace signs its users in at Cognito, Auth0, Okta, Entra ID,
Google, Keycloak or any other OpenID Provider, by configuration alone.

The flow is the authorization code flow (OpenID Connect Core 1.0 §3.1) with PKCE S256 (RFC 7636), ``state`` and
``nonce``. The provider's discovery document (OpenID Connect Discovery 1.0 §4) and its JWKS are fetched once per
issuer and cached in the warm container; the JWKS is fetched again once when an ID token names an unknown ``kid``
(the provider rotated its keys). The ID token is verified as OpenID Connect Core §3.1.3.7 requires: signature with
an asymmetric algorithm the provider advertises, ``iss``, ``aud`` (and ``azp`` when there are several audiences),
``exp`` and ``nonce``.

Claims for the user id, display name and groups are configurable (``user_id_claim``, ``name_claim``,
``groups_claim``; a dotted path such as ``realm_access.roles`` reaches into nested claims). When the ID token lacks
one of them and the provider has a UserInfo endpoint, the claims are completed from it (§5.3; its ``sub`` must equal
the ID token's, §5.3.2) — several providers put profile claims only there.
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx
import jwt

from gateway import safe_json
from gateway.config import OidcProvider
from gateway.crypto import pkce
from gateway.crypto.hashing import random_token
from gateway.http_client import shared_client
from gateway.identity.user import SignedInUser

# Asymmetric algorithms only: HS* would make the client secret a signing key, and "none" is never acceptable.
SUPPORTED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})
DISCOVERY_TTL_SECONDS = 3600.0
JWKS_TTL_SECONDS = 3600.0
JWKS_MIN_REFETCH_SECONDS = 10.0  # an unknown kid refetches the JWKS at most this often
CLOCK_SKEW_SECONDS = 60
HTTP_TIMEOUT = httpx.Timeout(10.0)


class OidcError(Exception):
    """Sign-in at the identity provider failed. The message is safe to show (no token, code or secret)."""


class UnverifiedIdentity(OidcError):
    """The provider signed the user in, but the claim that would name them cannot be trusted to (an email address
    the provider does not say it verified)."""


EMAIL_CLAIM = "email"


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of an OpenID Provider's discovery document the relying party uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    id_token_algorithms: tuple[str, ...]
    token_endpoint_auth_methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoginSecrets:
    """Per-sign-in values kept in the pending authorization: ``state`` comes from the caller."""

    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> LoginSecrets:
        return cls(nonce=random_token(24), code_verifier=random_token(48))  # 64 characters: RFC 7636 §4.1


# Warm-container caches, keyed by issuer and by JWKS URL: (fetched_at, value).
_metadata_cache: dict[str, tuple[float, ProviderMetadata]] = {}
_jwks_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def clear_caches() -> None:
    _metadata_cache.clear()
    _jwks_cache.clear()


def _same_issuer(configured: str, discovered: str) -> bool:
    # OIDC Discovery §4.3 wants them identical; the configuration's URL type may add a trailing slash to a bare
    # host (https://accounts.google.com/), so a trailing slash is the one difference tolerated.
    return configured.rstrip("/") == discovered.rstrip("/")


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim ``name``, or the value at a dotted path (``realm_access.roles``); None when absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class RelyingParty:
    """The gateway as an OpenID Connect client of one workspace's provider."""

    def __init__(
        self,
        provider: OidcProvider,
        redirect_uri: str,
        client_secret: str | None,
        *,
        http: Callable[[], httpx.AsyncClient] = shared_client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.issuer = str(provider.issuer)
        self.redirect_uri = redirect_uri
        self._client_secret = client_secret
        self._http = http
        self._clock = clock

    # --- discovery and keys ------------------------------------------------------------------------------------

    async def _get_json(self, url: str, what: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            response = await self._http().get(url, headers=dict(headers or {}), timeout=HTTP_TIMEOUT)
        except httpx.HTTPError as error:
            raise OidcError(f"could not fetch the identity provider's {what} ({type(error).__name__})") from None
        if response.status_code != 200:
            raise OidcError(f"the identity provider's {what} answered HTTP {response.status_code}")
        try:
            body = safe_json.loads(response.content)
        except ValueError:
            raise OidcError(f"the identity provider's {what} is not JSON") from None
        if not isinstance(body, dict):
            raise OidcError(f"the identity provider's {what} is not a JSON object")
        return body

    async def metadata(self) -> ProviderMetadata:
        cached = _metadata_cache.get(self.issuer)
        if cached is not None and self._clock() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"  # OIDC Discovery §4.1
        document = await self._get_json(url, "discovery document")
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or not _same_issuer(self.issuer, issuer):
            raise OidcError(f"the discovery document's issuer {issuer!r} is not the configured {self.issuer!r}")
        endpoints = {}
        for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = document.get(field)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise OidcError(f"the discovery document has no valid {field}")
            endpoints[field] = value
        userinfo = document.get("userinfo_endpoint")
        metadata = ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
            # OIDC Discovery §3: id_token_signing_alg_values_supported is required and must include RS256.
            id_token_algorithms=_strings(document.get("id_token_signing_alg_values_supported")) or ("RS256",),
            # Absent means client_secret_basic (OIDC Discovery §3).
            token_endpoint_auth_methods=_strings(document.get("token_endpoint_auth_methods_supported"))
            or ("client_secret_basic",),
        )
        _metadata_cache[self.issuer] = (self._clock(), metadata)
        return metadata

    async def _jwks(self, jwks_uri: str, *, refresh: bool) -> dict[str, Any]:
        cached = _jwks_cache.get(jwks_uri)
        now = self._clock()
        if cached is not None:
            age = now - cached[0]
            if age < JWKS_TTL_SECONDS and not (refresh and age >= JWKS_MIN_REFETCH_SECONDS):
                return cached[1]
        jwks = await self._get_json(jwks_uri, "JWKS")
        _jwks_cache[jwks_uri] = (now, jwks)
        return jwks

    @staticmethod
    def _find_key(jwks: Mapping[str, Any], kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        candidates = []
        for data in jwks.get("keys") or []:
            if not isinstance(data, dict) or data.get("use") == "enc":
                continue
            if kid is not None and data.get("kid") != kid:
                continue
            if data.get("alg") not in (None, algorithm):
                continue
            try:
                candidates.append(jwt.PyJWK(data, algorithm))
            except jwt.PyJWKError:
                continue  # a key type this algorithm cannot use
        # Without a kid the key must be unambiguous (OIDC Core §10.1).
        return candidates[0] if len(candidates) == 1 or (kid is not None and candidates) else None

    async def _signing_key(self, metadata: ProviderMetadata, kid: str | None, algorithm: str) -> jwt.PyJWK:
        key = self._find_key(await self._jwks(metadata.jwks_uri, refresh=False), kid, algorithm)
        if key is None:  # the provider may have rotated its keys: fetch the JWKS once more
            key = self._find_key(await self._jwks(metadata.jwks_uri, refresh=True), kid, algorithm)
        if key is None:
            raise OidcError(f"the ID token is signed with a key the identity provider does not publish (kid {kid!r})")
        return key

    # --- the flow --------------------------------------------------------------------------------------------

    async def authorization_url(self, *, state: str, secrets: LoginSecrets) -> str:
        """Where to send the browser: the provider's authorization endpoint with PKCE, state and nonce."""
        metadata = await self.metadata()
        params = dict(self.provider.extra_authorize_params)  # e.g. prompt, hd, domain_hint; never overrides ours
        params.update(
            {
                "response_type": "code",
                "client_id": self.provider.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(self.provider.scopes),
                "state": state,
                "nonce": secrets.nonce,
                "code_challenge": pkce.s256(secrets.code_verifier),
                "code_challenge_method": "S256",
            }
        )
        return _with_query(metadata.authorization_endpoint, params)

    async def sign_in(self, *, code: str, secrets: LoginSecrets) -> SignedInUser:
        """Exchange the code (OIDC Core §3.1.3), verify the ID token and return the user it names."""
        metadata = await self.metadata()
        tokens = await self._exchange(metadata, code, secrets.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcError("the identity provider's token response has no id_token (is 'openid' among the scopes?)")
        claims = await self._verify_id_token(metadata, id_token, secrets.nonce)
        access_token = tokens.get("access_token")
        if metadata.userinfo_endpoint and isinstance(access_token, str) and self._missing_claims(claims):
            claims = {**await self._userinfo(metadata.userinfo_endpoint, access_token, claims["sub"]), **claims}
        return self._user(claims)

    def _auth(self, metadata: ProviderMetadata, data: dict[str, str]) -> dict[str, str]:
        """Client authentication at the token endpoint; returns extra headers (OIDC Core §9)."""
        client_id = self.provider.client_id
        if self._client_secret is None:
            data["client_id"] = client_id  # a public client: PKCE protects the code
            return {}
        if "client_secret_basic" in metadata.token_endpoint_auth_methods:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = f"{quote(client_id, safe='')}:{quote(self._client_secret, safe='')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if "client_secret_post" in metadata.token_endpoint_auth_methods:
            data["client_id"] = client_id
            data["client_secret"] = self._client_secret
            return {}
        raise OidcError("the identity provider supports neither client_secret_basic nor client_secret_post")

    async def _exchange(self, metadata: ProviderMetadata, code: str, code_verifier: str) -> dict[str, Any]:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json", **self._auth(metadata, data)}
        try:
            response = await self._http().post(
                metadata.token_endpoint, data=data, headers=headers, timeout=HTTP_TIMEOUT
            )
        except httpx.HTTPError as problem:
            raise OidcError(
                f"could not reach the identity provider's token endpoint ({type(problem).__name__})"
            ) from None
        try:
            body = safe_json.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OidcError(f"the identity provider's token endpoint answered HTTP {response.status_code} without JSON")
        if response.status_code != 200:
            code = str(body.get("error") or "error")[:100]
            description = str(body.get("error_description") or "")[:300]
            raise OidcError(f"the identity provider refused the sign-in: {code} {description}".rstrip())
        return body

    async def _verify_id_token(self, metadata: ProviderMetadata, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.PyJWTError:
            raise OidcError("the identity provider's ID token is malformed") from None
        algorithm = header.get("alg")
        allowed = SUPPORTED_ALGORITHMS.intersection(metadata.id_token_algorithms)
        if algorithm not in allowed:
            raise OidcError(f"the ID token's algorithm {algorithm!r} is not one of {sorted(allowed)}")
        kid = header.get("kid")
        key = await self._signing_key(metadata, kid if isinstance(kid, str) else None, algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=[algorithm],
                audience=self.provider.client_id,
                issuer=metadata.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise OidcError(f"the identity provider's ID token is not valid: {error}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:  # OIDC Core §3.1.3.7 (4, 5)
            raise OidcError("the ID token has several audiences and its azp is not this gateway")
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
            raise OidcError("the ID token's nonce does not match this sign-in (replayed or mixed-up response)")
        return claims

    def _missing_claims(self, claims: Mapping[str, Any]) -> bool:
        names = [self.provider.user_id_claim, self.provider.name_claim, self.provider.groups_claim]
        if self.provider.user_id_claim == EMAIL_CLAIM:
            names.append("email_verified")
        return any(claim(claims, name) is None for name in names)

    async def _userinfo(self, endpoint: str, access_token: str, subject: str) -> dict[str, Any]:
        try:
            info = await self._get_json(endpoint, "UserInfo response", {"Authorization": f"Bearer {access_token}"})
        except OidcError:
            return {}  # optional completion: the ID token alone still signs the user in
        if info.get("sub") != subject:  # OIDC Core §5.3.2: otherwise the response MUST NOT be used
            return {}
        return info

    def _user(self, claims: Mapping[str, Any]) -> SignedInUser:
        user_id = claim(claims, self.provider.user_id_claim)
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id:
            raise OidcError(
                f"the identity provider sent no {self.provider.user_id_claim!r} claim to identify the user "
                "(check user_id_claim and the requested scopes)"
            )
        if self.provider.user_id_claim == EMAIL_CLAIM and claims.get("email_verified") not in (True, "true"):
            # An unverified address is whatever the user typed: at a provider that lets anyone set it, signing in as
            # someone else's address would take over their grants (OIDC Core §5.7: only verified and stable claims
            # may identify the user). Some providers send the flag as the string "true" (Cognito's UserInfo).
            raise UnverifiedIdentity(
                "user_id_claim is 'email', and the identity provider did not say this address is verified "
                "(email_verified is not true)"
            )
        name = claim(claims, self.provider.name_claim)
        return SignedInUser(
            id=user_id,
            name=name if isinstance(name, str) and name else None,
            groups=_strings(claim(claims, self.provider.groups_claim)),
        )
