"""Merged lists on a virtual route: ``tools/list``, ``prompts/list``, ``resources/list`` and
``resources/templates/list`` fan out to the upstreams concurrently (the answer takes as long as the slowest, not their
sum) and are merged; tools and prompts are filtered, projected and prefixed (:mod:`gateway.virtual.catalog`); the
cursor carries each upstream's position (:mod:`gateway.virtual.state`).

A merged page may be reused by a warm container for the route's ``list_cache_seconds`` (:class:`ListCache`, bounded:
its keys include the cursor, which a client chooses freely); a page that lacks an upstream (down, or not connected
by this user) is never kept. Every hashed name a list shows is remembered (:class:`gateway.virtual.catalog.Catalog`),
so calling it later needs no list again.

Honest lists (issue 24 item 3): an upstream that needs the user's account is named in the tool list by its connect
tool (:mod:`gateway.proxy.unconnected`), in its place in the configuration's order; the order of a merged page is
the configuration's order of upstreams, each upstream's items in its own order, whatever order the answers arrive
in. For 2026-07-28 clients (§Server "Caching"): ``cacheScope`` is ``private`` whenever the route's lists depend on
the caller (:attr:`gateway.routes.Route.lists_depend_on_caller`), ``ttlMs`` never exceeds what is left of the
gateway's own cache of the page (``list_cache_seconds``; 0 when it keeps none), and a page lacking an upstream has
``ttlMs: 0``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway.mcp.codes import INVALID_PARAMS
from gateway.mcp.jsonrpc import Message, error_response
from gateway.proxy.unconnected import connect_tool
from gateway.routes import Route
from gateway.virtual.catalog import Catalog
from gateway.virtual.merge import cache_directives, cause_of, result_of
from gateway.virtual.state import BadCursor, decode_cursor, encode_cursor
from gateway.virtual.upstream_call import UpstreamProblem
from gateway.virtual.upstream_sessions import UpstreamSessions, VirtualRequest

logger = logging.getLogger("gateway.virtual")

LISTS = {  # method -> the key of the items in its result
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
MAX_PAGES = 20  # of one upstream's list, read to look up a hashed name

CacheKey = tuple[str, str, str, str]  # route, user, method, cursor


class ListCache:
    """Merged pages a warm container reuses until they expire: at most ``max_entries``, the oldest dropped first."""

    def __init__(self, clock: Callable[[], float], max_entries: int = 1024) -> None:
        self._clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> dict[str, Any] | None:
        """The page, with its ``ttlMs`` (if any) lowered by the time it was kept: a client never keeps a page
        longer than the gateway would have."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry[0] - self._clock()
        if left <= 0:
            del self._entries[key]
            return None
        page = entry[1]
        if isinstance(page.get("ttlMs"), int):
            return {**page, "ttlMs": min(page["ttlMs"], int(left * 1000))}
        return page

    def put(self, key: CacheKey, seconds: float, result: dict[str, Any]) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = (self._clock() + seconds, result)


async def merged_list(
    request: VirtualRequest,
    upstreams: UpstreamSessions,
    catalog: Catalog,
    cache: ListCache,
    method: str,
    message: Message,
) -> Message:
    """The answer to a list request: one merged page of every upstream's list (or of those the cursor names)."""
    request_id = message.get("id")
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    assert isinstance(params, dict)
    key = LISTS[method]
    members = request.route.members()
    positions: dict[str, str] | None = None
    if "cursor" in params:
        try:
            positions = decode_cursor(params["cursor"], {member.member or "" for member in members})
        except BadCursor as bad:
            return error_response(request_id, INVALID_PARAMS, str(bad))
        members = [member for member in members if (member.member or "") in positions]
    era = f"{method} stateless" if request.stateless else method  # a 2026-07-28 page carries its caching fields
    cache_key = (request.route.key, request.user_id, era, str(params.get("cursor", "")))
    cached = cache.get(cache_key)
    if cached is not None:
        return {"jsonrpc": "2.0", "id": request_id, "result": cached}
    meta = {"_meta": params["_meta"]} if isinstance(params.get("_meta"), dict) else {}
    answers = await asyncio.gather(
        *(
            upstreams.send(
                request, member,
                {"jsonrpc": "2.0", "id": 0, "method": method,
                 "params": {**meta, "cursor": positions[member.member or ""]} if positions else meta},
            )
            for member in members
        )
    )  # fmt: skip
    items: list[Any] = []
    next_positions: dict[str, str] = {}
    results: list[dict[str, Any]] = []
    missing = False
    for member, answer in zip(members, answers, strict=True):
        name = member.member or ""
        result = result_of(answer)
        if result is None:
            missing = True
            if isinstance(answer, UpstreamProblem) and answer.reconnect is not None:
                if method == "tools/list" and positions is None:  # on the first page, in its upstream's place
                    items.append(connect_tool(name, member.title))
                continue
            logger.warning("virtual route %s: %s left out of %s: %s", request.route.key, name, method, cause_of(answer))
            continue
        results.append(result)
        listed = result.get(key) if isinstance(result.get(key), list) else []
        assert isinstance(listed, list)
        entry = catalog.member(name)
        if entry is None:
            continue
        if method == "tools/list":
            items += catalog.tools(entry, listed)
        elif method == "prompts/list":
            items += catalog.prompts(entry, listed)
        else:
            items += [item for item in listed if isinstance(item, dict)]
        if isinstance(result.get("nextCursor"), str) and result["nextCursor"]:
            next_positions[name] = result["nextCursor"]
    merged: dict[str, Any] = {key: items}
    seconds = request.route.server.list_cache_seconds
    if request.stateless:
        private = request.route.lists_depend_on_caller
        merged.update(cache_directives(results, private=private, complete=not missing, max_ttl_ms=int(seconds * 1000)))
    next_cursor = encode_cursor(next_positions)
    if next_cursor is not None:
        merged["nextCursor"] = next_cursor
    if seconds > 0 and not missing:
        cache.put(cache_key, seconds, merged)
    return {"jsonrpc": "2.0", "id": request_id, "result": merged}


async def learn_names(
    request: VirtualRequest, upstreams: UpstreamSessions, catalog: Catalog, member: Route, method: str
) -> None:
    """Read every page of one upstream's list (``MAX_PAGES`` at most), so that the catalog learns the hashed names it
    shows: done when a hashed name is called that this container has not shown or looked up before."""
    key, cursor = LISTS[method], None
    entry = catalog.member(member.member or "")
    if entry is None:
        return
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
        answer = await upstreams.send(request, member, {"jsonrpc": "2.0", "id": 0, "method": method, "params": params})
        result = result_of(answer)
        if result is None or not isinstance(result.get(key), list):
            return
        if method == "tools/list":
            catalog.tools(entry, result[key])
        else:
            catalog.prompts(entry, result[key])
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            return
