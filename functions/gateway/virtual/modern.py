"""The checks a server makes of a 2026-07-28 (stateless) request before serving it, and the HTTP status of its
errors, for the requests a virtual route answers itself (a plain route relays the upstream's own).

MCP 2026-07-28 (SEP-2575, SEP-2243): every request carries ``params._meta`` with the protocol version and the client's
capabilities; the ``MCP-Protocol-Version``, ``Mcp-Method`` and (for methods that name something) ``Mcp-Name`` headers
must agree with the body; an error's JSON-RPC code decides the HTTP status. The methods of the session era
(``initialize``, ``ping``, ``logging/setLevel``) are unknown there.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

SUPPORTED = ("2026-07-28",)
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
REMOVED_METHODS = frozenset({"initialize", "ping", "logging/setLevel"})
NAMED_BY = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020
UNSUPPORTED_PROTOCOL_VERSION = -32022
HTTP_STATUS = {-32700: 400, -32600: 400, -32602: 400, -32020: 400, -32021: 400, -32022: 400, -32601: 404}
_BASE64_VALUE = re.compile(r"=\?base64\?(?P<payload>[A-Za-z0-9+/=]*)\?=")


def rejection(message: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any] | None:
    """The JSON-RPC error (code, message, data) for a request that fails the checks, else None."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping):
        return {"code": INVALID_PARAMS, "message": "params._meta must carry the protocol version and capabilities"}
    missing = [key for key in (PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META) if key not in meta]
    if missing:
        return {"code": INVALID_PARAMS, "message": f"params._meta lacks {', '.join(missing)}"}
    version = meta[PROTOCOL_VERSION_META]
    if headers.get("mcp-protocol-version") != version:
        return {"code": HEADER_MISMATCH, "message": "MCP-Protocol-Version does not match params._meta"}
    if headers.get("mcp-method") != message.get("method"):
        return {"code": HEADER_MISMATCH, "message": "Mcp-Method does not match the request's method"}
    key = NAMED_BY.get(str(message.get("method")))
    named = params.get(key) if key is not None and isinstance(params, Mapping) else None
    if named is not None and _decoded(headers.get("mcp-name")) != named:
        return {"code": HEADER_MISMATCH, "message": f"Mcp-Name does not match the request's {key!r}"}
    if version not in SUPPORTED:
        return {
            "code": UNSUPPORTED_PROTOCOL_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": list(SUPPORTED), "requested": version},
        }
    return None


def _decoded(value: str | None) -> str | None:
    """A header value, decoded from the ``=?base64?...?=`` form names outside ASCII travel in (None if malformed)."""
    if value is None:
        return None
    match = _BASE64_VALUE.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match["payload"], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def http_status(response: Mapping[str, Any]) -> int:
    """The HTTP status of a single response on the 2026-07-28 wire: by its error code, else 200."""
    error = response.get("error")
    code = error.get("code") if isinstance(error, Mapping) else None
    return HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200
