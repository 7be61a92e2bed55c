"""Wire models of the token and revocation endpoints, parsed from ``application/x-www-form-urlencoded`` bodies.

RFC 6749 §3.2: parameters sent without a value are treated as omitted, unrecognised parameters are ignored, and a
parameter MUST NOT be included more than once. Every problem becomes an :class:`OAuthError` whose description names
the offending parameters (never their values: a code or token must not be echoed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Annotated, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.oauth.errors import OAuthError

MAX_FIELDS = 50
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1 (ID-JAG redemption)
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", JWT_BEARER)

# Generous bounds: they only keep absurd values out of hashing and storage keys.
Short = Annotated[str, Field(min_length=1, max_length=2048)]
Secretish = Annotated[str, Field(min_length=1, max_length=4096)]


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AuthorizationCodeRequest(_Form):
    """RFC 6749 §4.1.3, with PKCE (RFC 7636 §4.5) and a resource indicator (RFC 8707 §2)."""

    grant_type: Literal["authorization_code"]
    code: Secretish
    redirect_uri: Short
    code_verifier: Short
    client_id: Short | None = None
    resource: Short | None = None


class RefreshTokenRequest(_Form):
    """RFC 6749 §6, with a resource indicator (RFC 8707 §2)."""

    grant_type: Literal["refresh_token"]
    refresh_token: Secretish
    scope: Short | None = None
    client_id: Short | None = None
    resource: Short | None = None


class ClientCredentialsRequest(_Form):
    """RFC 6749 §4.4.2, with a resource indicator (RFC 8707 §2)."""

    grant_type: Literal["client_credentials"]
    scope: Short | None = None
    client_id: Short | None = None
    resource: Short | None = None


class JwtBearerRequest(_Form):
    """RFC 7523 §2.1: an assertion as the authorization grant (here an ID-JAG, the MCP extension
    io.modelcontextprotocol/enterprise-managed-authorization §5), with a resource indicator (RFC 8707 §2)."""

    grant_type: Literal["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assertion: Annotated[str, Field(min_length=1, max_length=16384)]
    scope: Short | None = None
    client_id: Short | None = None
    resource: Short | None = None


AnyTokenRequest = AuthorizationCodeRequest | RefreshTokenRequest | ClientCredentialsRequest | JwtBearerRequest
TokenRequest = Annotated[AnyTokenRequest, Field(discriminator="grant_type")]
_token_request: TypeAdapter[AnyTokenRequest] = TypeAdapter(TokenRequest)


class RevocationRequest(_Form):
    """RFC 7009 §2.1. ``token_type_hint`` is only a hint: unknown values are ignored (the search extends to every
    supported token type)."""

    token: Secretish
    token_type_hint: Short | None = None
    client_id: Short | None = None


def parse_form(body: bytes) -> dict[str, str]:
    """The parameters of a form body; empty values dropped (RFC 6749 §3.2), repeated names refused."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the request body is not UTF-8 form data") from None
    except ValueError:
        raise OAuthError("invalid_request", f"the request has more than {MAX_FIELDS} parameters") from None
    repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameters must not be repeated (RFC 6749 §3.2): {', '.join(repeated)}")
    return {name: value for name, value in pairs if value != ""}


def _describe(error: ValidationError) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for item in error.errors():
        # Locations look like ("code",) or ("authorization_code", "code") with a discriminated union.
        name = str(item["loc"][-1]) if item["loc"] else "body"
        (missing if item["type"] == "missing" else invalid).append(name)
    parts = []
    if missing:
        parts.append(f"missing parameter(s): {', '.join(sorted(set(missing)))}")
    if invalid:
        parts.append(f"invalid parameter(s): {', '.join(sorted(set(invalid)))}")
    return "; ".join(parts) or "the request is malformed"


def parse_token_request(form: Mapping[str, str]) -> AnyTokenRequest:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "missing parameter(s): grant_type")
    if grant_type not in GRANT_TYPES:
        raise OAuthError(
            "unsupported_grant_type",
            f"grant_type must be one of: {', '.join(GRANT_TYPES)}",
        )
    try:
        return _token_request.validate_python(dict(form))
    except ValidationError as error:
        raise OAuthError("invalid_request", _describe(error)) from None


def parse_revocation_request(form: Mapping[str, str]) -> RevocationRequest:
    try:
        return RevocationRequest.model_validate(dict(form))
    except ValidationError as error:
        raise OAuthError("invalid_request", _describe(error)) from None
