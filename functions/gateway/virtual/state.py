"""What a virtual route remembers between a client's requests, carried inside the client's own session id.

A client holds one ``Mcp-Session-Id``; behind it are up to one session per upstream. Their ids and the protocol
version each upstream negotiated travel as compact JSON inside the single-upstream proxy's sealed session id
(:class:`gateway.proxy.session_ids.SessionCodec`: bound to the user and the route, opaque to the client), so no table
is read. List cursors are opaque to the client too: base64url JSON of each upstream's own cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from gateway import safe_json

STATE_VERSION = 1
MAX_CURSOR_LENGTH = 8192


class BadCursor(ValueError):
    """A cursor this route did not issue (or altered); the client gets ``-32602``."""


@dataclass(frozen=True, slots=True)
class UpstreamSession:
    session_id: str | None
    protocol_version: str


@dataclass(frozen=True, slots=True)
class VirtualState:
    """Per upstream (by name): its session, when it was initialized."""

    upstreams: dict[str, UpstreamSession] = field(default_factory=dict)

    def encode(self) -> str:
        members = {name: [s.session_id or "", s.protocol_version] for name, s in sorted(self.upstreams.items())}
        return json.dumps({"v": STATE_VERSION, "m": members}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> VirtualState | None:
        """None for anything that is not a virtual route's state (e.g. a single-upstream session)."""
        try:
            data = safe_json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION or not isinstance(data.get("m"), dict):
            return None
        upstreams: dict[str, UpstreamSession] = {}
        for name, value in data["m"].items():
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
                return None
            upstreams[name] = UpstreamSession(value[0] or None, value[1])
        return cls(upstreams)


def encode_cursor(positions: dict[str, str]) -> str | None:
    """The cursor of a merged page: each upstream that has more, with its own cursor. None when none has."""
    if not positions:
        return None
    raw = json.dumps(positions, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: object, members: set[str]) -> dict[str, str]:
    """Each upstream's cursor in a merged page's cursor; :class:`BadCursor` for anything else."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("the cursor is not one this server issued")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        positions = safe_json.loads(raw)
    except (binascii.Error, ValueError):
        raise BadCursor("the cursor is not one this server issued") from None
    if (
        not isinstance(positions, dict)
        or not positions
        or not set(positions) <= members
        or not all(isinstance(value, str) for value in positions.values())
    ):
        raise BadCursor("the cursor is not one this server issued")
    return positions
