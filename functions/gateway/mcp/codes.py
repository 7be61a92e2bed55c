"""JSON-RPC error codes the gateway answers or recognises, each defined once.

JSON-RPC 2.0 §5.1 reserves -32768..-32000; -32700..-32600 are the protocol's own, -32099..-32000 are for
implementation-defined server errors. MCP allocates some of those (its "Error Codes" sections, per revision).
"""

from __future__ import annotations

# JSON-RPC 2.0 §5.1
PARSE_ERROR = -32700  # invalid JSON was received (with HTTP 400): the gateway forwards nothing it cannot parse
INVALID_REQUEST = -32600  # the JSON is not a valid request object (or batch where the revision has none)
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602  # MCP servers answer an unknown tool or prompt with it too
INTERNAL_ERROR = -32603  # the gateway could not complete the call upstream (with HTTP 502/503/504)

# Implementation-defined server errors (JSON-RPC 2.0 §5.1), the gateway's own
RATE_LIMITED = -32000  # with HTTP 429
SESSION_NOT_FOUND = -32001  # the session id is unknown (with HTTP 404, MCP §Session Management)

# MCP
RESOURCE_NOT_FOUND = -32002  # MCP §Resources "Error Handling"
HEADER_MISMATCH = -32020  # MCP 2026-07-28 §Streamable HTTP "Server Validation" (HTTP 400)
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021  # MCP 2026-07-28 (HTTP 400)
UNSUPPORTED_PROTOCOL_VERSION = -32022  # MCP 2026-07-28 §Streamable HTTP "Protocol Version Header" (HTTP 400)
URL_ELICITATION_REQUIRED = -32042  # MCP 2025-11-25 §Elicitation, URLElicitationRequiredError
