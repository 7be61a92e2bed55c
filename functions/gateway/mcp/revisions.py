"""MCP protocol revisions the gateway carries, and the rules that differ between them.

- **Session era** (2025-03-26, 2025-06-18, 2025-11-25): ``initialize`` negotiates the revision and may open a session
  (``Mcp-Session-Id``); the client sends ``MCP-Protocol-Version`` on every later request from 2025-06-18 on
  (2025-06-18 §Streamable HTTP "Protocol Version Header": a server without the header SHOULD assume 2025-03-26).
- **JSON-RPC batches** exist only in 2025-03-26 (§Streamable HTTP "Sending Messages"); 2025-06-18 removed them
  (its changelog), and ``initialize`` was never allowed in one (2025-03-26 §Lifecycle).
- **Stateless era** (2026-07-28, SEP-2575): no ``initialize`` and no session; every request carries its revision
  and the client's capabilities in ``params._meta`` and mirrors its method and name into headers
  (:mod:`gateway.mcp.stateless`).
"""

from __future__ import annotations

BATCH_VERSION = "2025-03-26"
SESSION_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST_SESSION_VERSION = SESSION_VERSIONS[-1]
STATELESS_VERSION = "2026-07-28"
STATELESS_VERSIONS = (STATELESS_VERSION,)

# MCP 2026-07-28 §Basic "_meta": what a stateless request carries instead of a session
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"


def is_stateless(protocol_version: str | None) -> bool:
    """Whether a request's ``MCP-Protocol-Version`` names a revision after the session era (2026-07-28, or a later
    one the gateway does not know yet: the era's checks apply to it too)."""
    return protocol_version is not None and protocol_version not in SESSION_VERSIONS


def allows_batches(protocol_version: str | None) -> bool:
    """Whether a JSON-RPC batch may be sent at this revision: only 2025-03-26, which a request without the header
    is taken to speak (2025-06-18 §Streamable HTTP "Protocol Version Header")."""
    return protocol_version is None or protocol_version == BATCH_VERSION
