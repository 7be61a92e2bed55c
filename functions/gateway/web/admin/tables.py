"""How the console's pages show things: tables of cells and row actions, readable times, page links."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from gateway.web.admin.access import Admin, console_url


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str
    danger: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    cells: Sequence[Any]
    actions: Sequence[Link] = ()


@dataclass(frozen=True, slots=True)
class Table:
    title: str
    columns: Sequence[str]
    rows: Sequence[Row]
    empty: str = "Nothing yet."
    next_url: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FilterField:
    name: str
    label: str
    value: str = ""
    options: Sequence[tuple[str, str]] = field(default=())
    """(value, label) pairs for a choice; empty for free text."""


def when(unix: int | None) -> str:
    if unix is None:
        return "—"
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def ms(value: float | None) -> str:
    return "—" if value is None else (f"{value:.1f}" if value < 100 else f"{value:.0f}")


def page_url(admin: Admin, page: str, query: Mapping[str, str | None], **changes: str | None) -> str:
    """This page's URL with the same filters and ``changes`` (None removes a parameter)."""
    merged = {name: value for name, value in {**query, **changes}.items() if value}
    base = console_url(admin.services.base_url, admin.workspace, page)
    return f"{base}?{urlencode(merged)}" if merged else base


def confirm_url(admin: Admin, action: str, **fields: str) -> str:
    return console_url(admin.services.base_url, admin.workspace, "confirm", action=action, **fields)
