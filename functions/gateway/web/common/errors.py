"""Exception handlers shared by every app: JSON errors, never an HTML page or a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.web.common.responses import error_response

logger = logging.getLogger("gateway")

Handler = Callable[[Request, Any], Awaitable[Response]]


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no endpoint at {request.url.path}")
    if exc.status_code == 405:
        return error_response(405, "method_not_allowed", f"{request.method} is not allowed here")
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The exception is logged with its type and traceback but no request data (which may hold secrets).
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "server_error", "the gateway hit an unexpected error; it has been logged")


def exception_handlers() -> Mapping[Any, Handler]:
    return {HTTPException: _http_exception, Exception: _unexpected}
