"""The gateway's HTML pages (sign-in, consent, connect, errors): rendering, security headers, the error page.

Every page is HTML with a strict CSP, ``X-Frame-Options: DENY`` (clickjacking, RFC 6749 §10.13), no referrer and
no caching. Images come only from the gateway itself: a client's ``logo_uri`` is never shown, since loading it would
tell the client's server who opens its consent page, and when. Redirects after a form POST use 303, and the CSP's
``form-action`` names the client's redirect origin: browsers (Chromium) apply ``form-action`` to the redirects that
follow a form submission.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import markupsafe
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.display_text import visible_text
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError

logger = logging.getLogger("gateway.pages")

TEMPLATES = Path(__file__).parents[1] / "templates"  # gateway/web/templates, shared by the functions' pages


def _visible(value: Any) -> Any:
    """Every value a template prints, without invisible format characters (bidi overrides, zero-width characters):
    a client's name must look like what it is (gateway.display_text)."""
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(visible_text(value))  # noqa: S704 - already escaped; only characters are removed
    return visible_text(value) if isinstance(value, str) else value


_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    auto_reload=False,
    undefined=jinja2.StrictUndefined,
    finalize=_visible,
)
_INLINE_CODE = re.compile(r"`([^`]+)`")


def inline_code(text: str) -> markupsafe.Markup:
    """Escape ``text`` and show its `backticked` spans as code (route descriptions are written in Markdown)."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(_INLINE_CODE.sub(r"<code>\1</code>", escaped))  # noqa: S704 - escaped above


_templates.filters["inline_code"] = inline_code


class PageError(Exception):
    """Shown as the error page. ``return_url`` (the client's redirect with an error) is offered when known."""

    def __init__(
        self,
        status_code: int,
        heading: str,
        message: str,
        *,
        hint: str | None = None,
        return_url: str | None = None,
        client_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.heading = heading
        self.message = message
        self.hint = hint
        self.return_url = return_url
        self.client_name = client_name


_CSP_SOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(//[A-Za-z0-9.\-\[\]:]+)?$")


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP source expression that allows a redirect to ``redirect_uri`` after a form POST."""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    source = f"{scheme}://{parts.netloc}" if scheme in ("http", "https") else f"{scheme}:"
    return source if _CSP_SOURCE.match(source) else None  # never let a value break out of the header


def security_headers(redirect_uri: str | None = None) -> dict[str, str]:
    form_action = "'self'"
    source = form_action_source(redirect_uri) if redirect_uri else None
    if source:
        form_action += f" {source}"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }


def page(template: str, status_code: int = 200, *, redirect_uri: str | None = None, **context: Any) -> HTMLResponse:
    context.setdefault("workspace_title", None)
    context.setdefault("user_name", None)
    context.setdefault("page_title", "")
    body = _templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=security_headers(redirect_uri))


def redirect(url: str, *, redirect_uri: str | None = None) -> Response:
    """303 See Other: a POST becomes a GET at the target (RFC 9110 §15.4.4)."""
    headers = security_headers(redirect_uri)
    headers.pop("Content-Security-Policy")
    return RedirectResponse(url, status_code=303, headers=headers)


# --- errors ---------------------------------------------------------------------------------------------------


def error_page(error: PageError) -> Response:
    return page(
        "error.html",
        error.status_code,
        page_title=error.heading,
        heading=error.heading,
        message=error.message,
        hint=error.hint,
        return_url=error.return_url,
        client_name=error.client_name or "the application",
    )


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return error_page(exc)


async def _storage_error(request: Request, exc: Exception) -> Response:
    logger.error("storage failure on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_page(PageError(503, "Try again shortly", "The gateway cannot save or read this sign-in right now."))


async def _dependency_unavailable(request: Request, exc: Exception) -> Response:
    logger.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_page(PageError(503, "Try again shortly", "The gateway cannot complete this sign-in right now."))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = PageError(405, "Method not allowed", f"{request.method} is not allowed here.")
    elif exc.status_code == 404:
        error = PageError(404, "Not found", f"There is nothing at {request.url.path}.")
    else:
        error = PageError(exc.status_code, "Request refused", str(exc.detail))
    return error_page(error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Type and traceback only: the request may hold codes, cookies or passwords.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_page(
        PageError(500, "Something went wrong", "The gateway hit an unexpected error; it has been logged.")
    )


def page_exception_handlers() -> Mapping[Any, Any]:
    """Every failure of a page as the error page: never a JSON body or a stack trace in the browser."""
    return {
        PageError: _page_error,
        StorageError: _storage_error,
        SecretUnavailableError: _dependency_unavailable,  # the shared secret (cookies) could not be read
        HTTPException: _http_error,
        Exception: _unexpected,
    }
