"""Form parsing and the token/revocation wire models: every bad body is an OAuthError that says what is wrong."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.errors import OAuthError
from gateway.oauth.token_requests import (
    AuthorizationCodeRequest,
    RefreshTokenRequest,
    parse_form,
    parse_revocation_request,
    parse_token_request,
)

CODE_FORM = {
    "grant_type": "authorization_code",
    "code": "abc",
    "redirect_uri": "http://127.0.0.1:1234/callback",
    "code_verifier": "v" * 43,
    "client_id": "c1",
}


def test_authorization_code_request_is_parsed() -> None:
    request = parse_token_request(parse_form(urlencode(CODE_FORM).encode()))

    assert isinstance(request, AuthorizationCodeRequest)
    assert request.code == "abc"
    assert request.client_id == "c1"
    assert request.resource is None


def test_refresh_request_is_parsed_and_unknown_parameters_are_ignored() -> None:
    # RFC 6749 §3.2: unrecognised parameters are ignored; client_secret belongs to client authentication
    form = parse_form(b"grant_type=refresh_token&refresh_token=r.0.x&scope=mcp&client_secret=s&foo=bar")

    request = parse_token_request(form)

    assert isinstance(request, RefreshTokenRequest)
    assert (request.refresh_token, request.scope) == ("r.0.x", "mcp")


def test_percent_encoding_and_plus_are_decoded() -> None:
    form = parse_form(b"redirect_uri=https%3A%2F%2Fclaude.ai%2Fapi%2Fmcp%2Fauth_callback&scope=mcp+offline_access")

    assert form == {"redirect_uri": "https://claude.ai/api/mcp/auth_callback", "scope": "mcp offline_access"}


def test_empty_values_count_as_absent() -> None:
    # RFC 6749 §3.2: parameters sent without a value are treated as omitted
    form = parse_form(urlencode({**CODE_FORM, "resource": "", "client_id": ""}).encode())

    request = parse_token_request(form)

    assert request.resource is None
    assert request.client_id is None


def test_repeated_parameters_are_refused_by_name() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_form(b"grant_type=authorization_code&code=a&code=b&scope=x&scope=")

    assert excinfo.value.error == "invalid_request"
    assert excinfo.value.description.endswith(": code, scope")  # names only: values are never echoed


def test_missing_grant_type_is_invalid_request() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_token_request({"code": "x"})

    assert excinfo.value.error == "invalid_request"
    assert "grant_type" in excinfo.value.description


@pytest.mark.parametrize(
    "grant_type", ["password", "implicit", "AUTHORIZATION_CODE", "urn:ietf:params:oauth:grant-type:device_code"]
)
def test_other_grant_types_are_unsupported(grant_type: str) -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_token_request({"grant_type": grant_type})

    assert excinfo.value.error == "unsupported_grant_type"
    assert excinfo.value.status_code == 400


def test_missing_parameters_are_named() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_token_request({"grant_type": "authorization_code", "code": "x"})

    assert excinfo.value.error == "invalid_request"
    assert excinfo.value.description == "missing parameter(s): code_verifier, redirect_uri"


def test_missing_refresh_token_is_named() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_token_request({"grant_type": "refresh_token"})

    assert excinfo.value.description == "missing parameter(s): refresh_token"


def test_oversized_values_are_invalid() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_token_request({**CODE_FORM, "code_verifier": "v" * 3000})

    assert excinfo.value.description == "invalid parameter(s): code_verifier"


def test_non_utf8_body_is_invalid_request() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_form(b"code=%ff%fe")

    assert excinfo.value.error == "invalid_request"


def test_too_many_fields_is_invalid_request() -> None:
    with pytest.raises(OAuthError) as excinfo:
        parse_form("&".join(f"p{i}=1" for i in range(100)).encode())

    assert excinfo.value.error == "invalid_request"


def test_revocation_request() -> None:
    request = parse_revocation_request(parse_form(b"token=abc&token_type_hint=refresh_token"))
    assert (request.token, request.token_type_hint) == ("abc", "refresh_token")

    with pytest.raises(OAuthError) as excinfo:
        parse_revocation_request(parse_form(b"token_type_hint=refresh_token"))
    assert excinfo.value.description == "missing parameter(s): token"


_names = st.sampled_from(
    ["grant_type", "code", "redirect_uri", "code_verifier", "client_id", "resource", "refresh_token", "scope", "token"]
) | st.text(max_size=12)
_values = st.sampled_from(["authorization_code", "refresh_token", ""]) | st.text(max_size=40)


def _problem_of(body: bytes) -> OAuthError | None:
    """The OAuthError parsing ``body`` raises, if any; any other exception fails the test."""
    try:
        form = parse_form(body)
        parse_token_request(form)
        parse_revocation_request(form)
    except OAuthError as problem:
        return problem
    return None


@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_oauth_errors(body: bytes) -> None:
    problem = _problem_of(body)

    assert problem is None or (problem.status_code == 400 and problem.description)


@given(st.lists(st.tuples(_names, _values), max_size=12))
def test_random_forms_never_raise_anything_but_oauth_errors(pairs: list[tuple[str, str]]) -> None:
    problem = _problem_of(urlencode(pairs).encode())

    assert problem is None or (problem.error in ("invalid_request", "unsupported_grant_type") and problem.description)
