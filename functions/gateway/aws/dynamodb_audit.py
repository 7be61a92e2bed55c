"""DynamoDB adapters of the audit trail and the usage rollups, both in the ``audit`` table (``docs/storage.md``,
"Audit trail" and "Usage rollups").

An audit event is one item in its workspace's day partition, sorted by its position (time, then id), and appears in
up to two of the table's sparse indexes, whose sort key is the same ``sk``: ``by_user`` (every event that names a
user), ``by_client`` (every event that names a client; ``tool.called`` events in a partition of their own, so the few
sign-in and token events of a client are read without its calls) and ``by_kind`` (per workspace, kind and day; every
kind but ``tool.called``, which makes up most of a day's partition anyway). A read picks the most selective of them
for its filters and applies the others as a filter expression: never a scan.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gateway.aws.dynamodb_table import DynamoTable, deserialize, from_item, to_item
from gateway.storage.ports import StorageError
from gateway.storage.records import AuditEvent, CallerRollup, ToolCall, ToolRollup

DAY_SECONDS = 86400
HOUR_SECONDS = 3600
MAX_RETENTION_DAYS = 3660
MAX_PAGE = 1000  # items read per query page, at most
TOOL_CALLED = "tool.called"
CALLS_SUFFIX = "#calls"

Partition = tuple[str | None, str, str]
"""(index name or None for the table, key attribute, key value)."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def _audit_partition(workspace: str, day: int) -> str:
    """One partition per workspace and UTC day: writes spread over days, and a time range is a few queries."""
    return f"AUDIT#{workspace}#{day}"


def _client_key(workspace: str, client_id: str, kind: str) -> str:
    return f"{workspace}#{client_id}" + (CALLS_SUFFIX if kind == TOOL_CALLED else "")


def _kind_key(workspace: str, kind: str, day: int) -> str:
    return f"{workspace}#{kind}#{day}"


def audit_item(event: AuditEvent) -> dict[str, Any]:
    """The event as stored: its day partition, its position, and the keys of the indexes it belongs in."""
    day = event.at // DAY_SECONDS
    item = to_item(event, pk=_audit_partition(event.workspace, day))
    item["sk"] = _s(event.position)
    if event.user_id:
        item["user_key"] = _s(f"{event.workspace}#{event.user_id}")
    if event.client_id:
        item["client_key"] = _s(_client_key(event.workspace, event.client_id, event.kind))
    if event.kind != TOOL_CALLED:
        item["kind_key"] = _s(_kind_key(event.workspace, event.kind, day))
    return item


class DynamoAuditLog(DynamoTable):
    def append(self, event: AuditEvent) -> None:
        self._put(audit_item(event))

    def events(
        self,
        workspace: str,
        *,
        since: int,
        until: int,
        route_key: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        kinds: tuple[str, ...] = (),
        limit: int = 100,
        before: str | None = None,
    ) -> list[AuditEvent]:
        if limit <= 0 or since >= until:
            return []
        high = f"{until - 1:012d}~"  # "~" sorts after "#": every event of the last second
        if before is not None:
            high = min(high, before)
        low = f"{since:012d}"
        filters: dict[str, str | tuple[str, ...] | None] = {"route_key": route_key, "kind": kinds or None}
        if user_id is not None:
            filters["client_id"] = client_id
            partitions: list[Partition] = [("by_user", "user_key", f"{workspace}#{user_id}")]
            return self._merged(partitions, low, high, before, filters, limit)
        if client_id is not None:
            partitions = []
            if not kinds or any(kind != TOOL_CALLED for kind in kinds):
                partitions.append(("by_client", "client_key", _client_key(workspace, client_id, "")))
            if not kinds or TOOL_CALLED in kinds:
                partitions.append(("by_client", "client_key", _client_key(workspace, client_id, TOOL_CALLED)))
            return self._merged(partitions, low, high, before, filters, limit)
        found: list[AuditEvent] = []
        last_day = (min(until, int(before[:12] or 0) + 1) - 1) // DAY_SECONDS if before else (until - 1) // DAY_SECONDS
        # No event outlives the longest retention the template allows: older days hold nothing to query.
        first_day = max(since, until - MAX_RETENTION_DAYS * DAY_SECONDS) // DAY_SECONDS
        by_kind = bool(kinds) and TOOL_CALLED not in kinds
        for day in range(last_day, first_day - 1, -1):
            if by_kind:
                day_filters = {**filters, "kind": None}
                partitions = [("by_kind", "kind_key", _kind_key(workspace, kind, day)) for kind in kinds]
            else:
                day_filters = filters
                partitions = [(None, "pk", _audit_partition(workspace, day))]
            found += self._merged(partitions, low, high, before, day_filters, limit - len(found))
            if len(found) >= limit:
                break
        return found[:limit]

    def _merged(
        self,
        partitions: list[Partition],
        low: str,
        high: str,
        before: str | None,
        filters: dict[str, str | tuple[str, ...] | None],
        limit: int,
    ) -> list[AuditEvent]:
        """Up to ``limit`` events of the partitions (each read newest first), merged newest first."""
        streams = [self._read(partition, low, high, before, filters, limit) for partition in partitions]
        merged = heapq.merge(*streams, key=lambda item: item["sk"]["S"], reverse=True)
        return [from_item(AuditEvent, item) for item in itertools.islice(merged, limit)]

    def _read(
        self,
        partition: Partition,
        low: str,
        high: str,
        before: str | None,
        filters: dict[str, str | tuple[str, ...] | None],
        want: int,
    ) -> Iterator[dict[str, Any]]:
        """The matching items of one partition with ``low <= sk <= high`` (below ``before``), newest first, read
        one page at a time as the consumer asks; a page reads about what is ``want``ed (DynamoDB's ``Limit`` counts
        the items read, before any filter: a filtered read takes larger pages), never a whole partition at once."""
        index, key_attribute, key = partition
        names = {"#key": key_attribute, "#sk": "sk"}
        values: dict[str, Any] = {":key": _s(key), ":low": _s(low), ":high": _s(high)}
        conditions = []
        for name, wanted in filters.items():
            if wanted is None:
                continue
            names[f"#f_{name}"] = name
            if isinstance(wanted, tuple):
                options = [f":f_{name}{i}" for i in range(len(wanted))]
                values.update({option: _s(value) for option, value in zip(options, wanted, strict=True)})
                conditions.append(f"#f_{name} IN ({', '.join(options)})")
            else:
                values[f":f_{name}"] = _s(wanted)
                conditions.append(f"#f_{name} = :f_{name}")
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "#key = :key AND #sk BETWEEN :low AND :high",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if index is not None:
            kwargs["IndexName"] = index
        if conditions:
            kwargs["FilterExpression"] = " AND ".join(conditions)
        # One more than wanted: the cursor's own event may be among them (BETWEEN includes ``high``).
        kwargs["Limit"] = min(max(want + 1, 1) * (4 if conditions else 1), MAX_PAGE)
        while True:
            try:
                page = self._client.query(**kwargs)
            except (ClientError, BotoCoreError) as error:
                raise StorageError(f"DynamoDB query failed: {type(error).__name__}") from error
            # BETWEEN includes ``high``: the event at the cursor itself was on the previous page.
            yield from (item for item in page.get("Items", []) if before is None or item["sk"]["S"] < before)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- usage rollups ----------------------------------------------------------------------------------------------


def _usage_partition(workspace: str, day: int) -> str:
    return f"USAGE#{workspace}#{day}"


def _caller_sort_key(client_id: str, user_id: str) -> str:
    return f"W#{len(client_id)}#{client_id}#{user_id}"  # length-prefixed: any characters in either id


class DynamoUsageLog(DynamoTable):
    """Per workspace and UTC day, one partition: a ``T#{hour}#{route}#{tool}`` item per tool and hour, a
    ``W#...`` item per (client, user) pair of the day; every write an ``ADD`` (``docs/storage.md``)."""

    def add_call(
        self, call: ToolCall, gateway_bucket: int, upstream_bucket: int, origin: str | None, expires_at: int
    ) -> None:
        day, hour = call.at // DAY_SECONDS, call.at // HOUR_SECONDS
        pk = _usage_partition(call.workspace, day)
        gateway_ms = max(call.total_ms - call.upstream_ms, 0.0)
        adds = ["calls :one", "#g :one", "#u :one", "gateway_ms :gms", "upstream_ms :ums"]
        names = {"#g": f"g{gateway_bucket}", "#u": f"u{upstream_bucket}", "#hour": "hour", "#ws": "workspace"}
        values = {
            ":one": _n(1), ":gms": _n(round(gateway_ms, 3)), ":ums": _n(round(call.upstream_ms, 3)),
            ":ws": _s(call.workspace), ":route": _s(call.route_key), ":tool": _s(call.tool), ":hour": _n(hour),
            ":exp": _n(expires_at),
        }  # fmt: skip
        if origin is not None:
            adds.append("#e :one")
            names["#e"] = f"e_{origin}"
        self._update(
            pk,
            f"T#{hour % 24:02d}#{call.route_key}#{call.tool}",
            f"ADD {', '.join(adds)} SET #ws = :ws, route_key = :route, tool = :tool, #hour = :hour, expires_at = :exp",
            None,
            values,
            names,
        )
        caller_adds = ["calls :one", "#h :one"] + (["errors :one", "#x :one"] if origin is not None else [])
        caller_names = {"#h": f"h{hour % 24}", "#ws": "workspace", "#day": "day"}
        if origin is not None:
            caller_names["#x"] = f"x{hour % 24}"
        self._update(
            pk,
            _caller_sort_key(call.client_id, call.user_id),
            f"ADD {', '.join(caller_adds)} SET #ws = :ws, client_id = :client, user_id = :user, #day = :day, "
            "last_at = :at, expires_at = :exp",
            None,
            {
                ":one": _n(1),
                ":ws": _s(call.workspace),
                ":client": _s(call.client_id),
                ":user": _s(call.user_id),
                ":day": _n(day),
                ":at": _n(call.at),
                ":exp": _n(expires_at),
            },
            caller_names,
        )

    def tool_rollups(self, workspace: str, *, since_hour: int, until_hour: int) -> list[ToolRollup]:
        found: list[ToolRollup] = []
        for day in range(since_hour // 24, (until_hour - 1) // 24 + 1):
            first = max(since_hour, day * 24) % 24
            last = min(until_hour - 1, day * 24 + 23) % 24
            items = self._items(
                _usage_partition(workspace, day), "#sk BETWEEN :low AND :high",
                {":low": _s(f"T#{first:02d}#"), ":high": _s(f"T#{last:02d}#~")},
            )  # fmt: skip
            found += [_tool_rollup(item) for item in items]
        return found

    def caller_rollups(self, workspace: str, *, since_day: int, until_day: int) -> list[CallerRollup]:
        found: list[CallerRollup] = []
        for day in range(since_day, until_day):
            items = self._items(_usage_partition(workspace, day), "begins_with(#sk, :prefix)", {":prefix": _s("W#")})
            found += [_caller_rollup(item) for item in items]
        return found

    def rollups(
        self, workspace: str, *, since_hour: int, until_hour: int
    ) -> tuple[list[ToolRollup], list[CallerRollup]]:
        """One query per day: its tool hours from the window's first hour on (``T#..`` sorts before ``W#``), then
        every caller of the day."""
        tools: list[ToolRollup] = []
        callers: list[CallerRollup] = []
        for day in range(since_hour // 24, (until_hour - 1) // 24 + 1):
            first = max(since_hour, day * 24) % 24
            items = self._items(
                _usage_partition(workspace, day), "#sk BETWEEN :low AND :high",
                {":low": _s(f"T#{first:02d}#"), ":high": _s("W#~")},
            )  # fmt: skip
            for item in items:
                if item["sk"]["S"].startswith("W#"):
                    callers.append(_caller_rollup(item))
                elif item["sk"]["S"].startswith("T#"):
                    rollup = _tool_rollup(item)
                    if since_hour <= rollup.hour < until_hour:
                        tools.append(rollup)
        return tools, callers

    def _items(self, pk: str, sort_condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        return self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "KeyConditionExpression": f"pk = :pk AND {sort_condition}",
                "ExpressionAttributeNames": {"#sk": "sk"},
                "ExpressionAttributeValues": {":pk": _s(pk), **values},
            },
        )


def _numbers(item: dict[str, Any], prefix: str) -> Iterable[tuple[int, int]]:
    for name, value in item.items():
        if name.startswith(prefix) and name[len(prefix) :].lstrip("-").isdigit():
            yield int(name[len(prefix) :]), int(deserialize(value))


def _tool_rollup(item: dict[str, Any]) -> ToolRollup:
    data = {name: deserialize(value) for name, value in item.items()}
    return ToolRollup(
        workspace=str(data["workspace"]),
        hour=int(data["hour"]),
        route_key=str(data["route_key"]),
        tool=str(data["tool"]),
        calls=int(data.get("calls", 0)),
        errors={name[2:]: int(value) for name, value in data.items() if name.startswith("e_")},
        gateway_histogram=dict(_numbers(item, "g")),
        upstream_histogram=dict(_numbers(item, "u")),
        gateway_ms=float(data.get("gateway_ms", 0)),
        upstream_ms=float(data.get("upstream_ms", 0)),
    )


def _caller_rollup(item: dict[str, Any]) -> CallerRollup:
    data = {name: deserialize(value) for name, value in item.items()}
    return CallerRollup(
        workspace=str(data["workspace"]),
        day=int(data["day"]),
        client_id=str(data["client_id"]),
        user_id=str(data["user_id"]),
        calls=int(data.get("calls", 0)),
        errors=int(data.get("errors", 0)),
        hours=dict(_numbers(item, "h")),
        last_at=int(data.get("last_at", 0)),
        error_hours=dict(_numbers(item, "x")),
    )
