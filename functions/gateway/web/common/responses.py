"""Small response helpers shared by the functions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_response(
    body: Mapping[str, Any] | list[Any], status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status_code, headers=dict(headers or {}), media_type="application/json")


def error_response(
    status_code: int, error: str, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An OAuth-style JSON error (RFC 6749 §5.2 shape) that says what is wrong."""
    return json_response({"error": error, "error_description": description}, status_code, headers)
