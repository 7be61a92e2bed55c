"""How the admin CLI prints: tables a person reads, JSON a script reads.

Tables show the columns that matter for each listing (``--all`` shows every one), times as UTC dates, and every
value whole: an identifier or a secret that is cut cannot be used (a key shown once and cut is lost). Only free
text (a client's or key's name) is shortened, with an ellipsis. JSON carries every field, times as Unix seconds.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any

FREE_TEXT = frozenset({"client_name", "name", "user_name", "title"})
FREE_TEXT_WIDTH = 40
NEVER_WHEN_EMPTY = frozenset({"expires_at"})  # no expiry: it lasts until revoked

# The columns a listing shows by default; --all shows every field.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "audit": ("at", "kind", "route_key", "user_id", "client_id", "detail"),
    "grants": ("grant_id", "route_key", "client_id", "status", "obtained_by", "created_at", "rotated_at", "scopes"),
    "keys": ("key_id", "name", "user_id", "servers", "tools", "status", "expires_at"),
    "ended": ("kind", "id", "route_key", "user_id", "client_id", "name"),
    "routes": ("route", "upstream", "sign_in", "upstream_auth", "scopes"),
}


def when(unix: int) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cell(column: str, value: Any, *, shorten: bool = True) -> str:
    """One value as a table shows it (free text shortened unless ``shorten`` is False)."""
    if value is None or value == "":
        return "never" if column in NEVER_WHEN_EMPTY else ""
    if (column == "at" or column.endswith("_at")) and isinstance(value, int) and not isinstance(value, bool):
        return when(value)
    if isinstance(value, dict):
        return " ".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    text = str(value)
    if shorten and column in FREE_TEXT and len(text) > FREE_TEXT_WIDTH:
        return text[: FREE_TEXT_WIDTH - 1] + "…"
    return text


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """``rows`` as aligned columns: ``columns`` (those present in a row) or every field."""
    if not rows:
        return "(nothing)"
    present = list(dict.fromkeys(key for row in rows for key in row))
    shown = [column for column in columns if column in present] if columns else present
    cells = [[cell(column, row.get(column)) for column in shown] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(shown)]
    lines = [_line(shown, widths)] + [_line(line, widths) for line in cells]
    return "\n".join(lines)


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True)).rstrip()


def record(row: Mapping[str, Any]) -> str:
    """One record, a field per line: every field, whole (a single record has room for them)."""
    width = max(len(name) for name in row)
    lines = (f"{name.ljust(width)}  {cell(name, value, shorten=False)}".rstrip() for name, value in row.items())
    return "\n".join(lines)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
