"""Signed pending-authorization cookies."""

from __future__ import annotations

from starlette.responses import Response

from gateway.web.common import cookies

SECRET = b"s" * 32


def test_a_signed_value_verifies_and_a_tampered_one_does_not() -> None:
    signed = cookies.sign("n", "pending-1", SECRET)
    assert cookies.unsign("n", signed, SECRET) == "pending-1"
    assert cookies.unsign("n", signed.replace("pending-1", "pending-2"), SECRET) is None
    assert cookies.unsign("other-name", signed, SECRET) is None  # bound to the cookie name
    assert cookies.unsign("n", signed, b"another secret") is None
    assert cookies.unsign("n", "no-signature", SECRET) is None


def test_https_cookies_are_host_prefixed_and_secure() -> None:
    response = Response()
    cookies.set_pending_cookie(response, "p1", "https://gw.example.com", SECRET, 900)
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-mcpgw-p-")
    assert all(part in header for part in ("Secure", "HttpOnly", "SameSite=lax", "Path=/", "Max-Age=900"))


def test_http_dev_cookies_are_plain() -> None:
    response = Response()
    cookies.set_pending_cookie(response, "p1", "http://127.0.0.1:8080", SECRET, 900)
    header = response.headers["set-cookie"]
    assert header.startswith("mcpgw-p-") and "Secure" not in header and "HttpOnly" in header


def test_each_pending_authorization_has_its_own_cookie() -> None:
    assert cookies.cookie_name("p1", "https://x") != cookies.cookie_name("p2", "https://x")


def test_holds_pending_requires_the_matching_signed_cookie() -> None:
    base = "https://gw.example.com"
    name = cookies.cookie_name("p1", base)
    jar = {name: cookies.sign(name, "p1", SECRET)}
    assert cookies.holds_pending(jar, "p1", base, SECRET)
    assert not cookies.holds_pending(jar, "p2", base, SECRET)
    swapped = {cookies.cookie_name("p2", base): jar[name]}  # a valid cookie moved under another pending's name
    assert not cookies.holds_pending(swapped, "p2", base, SECRET)
    assert not cookies.holds_pending({}, "p1", base, SECRET)
