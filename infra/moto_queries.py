"""Queries the local store answers in time proportional to what they read, as DynamoDB does.

moto answers every ``Query`` by sorting *all* items of the table, testing each against the key condition, and only
then applying the ``Limit``; an index query tests every item of the table. Fine for the few items of a test, but
with the 100,000 audit events of ``make bench`` (or a ``.dev/`` state that grew over weeks of ``make dev``) a single
query costs a second and the admin console cannot be measured or used. The local store process
(:mod:`infra.local_aws_server`) installs :func:`install`, which, during a ``Query`` only, hands moto's own query the
few items it would keep:

- a table query: the items of its partition (its hash key) whose sort key meets the key condition (a bisection of the
  partition's sorted keys), after the ``ExclusiveStartKey``, and no more than ``Limit`` + 1 of them from the end the
  query reads from (the one more tells moto there is a next page);
- an index query: the items of the index partition (a map per index from key to items, sorted by the index's sort
  key) whose index sort key meets the key condition; moto orders and pages them itself.

What moto returns is unchanged: the same items, in the same order, with the same paging and ``LastEvaluatedKey``
(moto still applies the key condition, the start key, the ``Limit``, the filter and the projection to what it is
handed); only the items it looks at are fewer. The sorted keys and the index maps are kept per table and rebuilt
when a request that may write reaches that table (any action not in :data:`READS`).

Second, moto's generic response serializer walks every attribute value through the ``AttributeValue`` shape (tens
of µs each; a usage rollup item has ~100 values): a scalar value (``S``, ``N``, ``BOOL``, ``NULL``) is written as
it is, which is what that walk produces for it.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Callable
from typing import Any

READS = frozenset(
    {
        "Query", "Scan", "GetItem", "BatchGetItem", "TransactGetItems", "DescribeTable", "ListTables",
        "DescribeTimeToLive", "ListTagsOfResource", "DescribeContinuousBackups", "DescribeLimits",
        "DescribeEndpoints", "DescribeKinesisStreamingDestination", "DescribeContributorInsights",
    }
)  # fmt: skip
"""DynamoDB actions that change no item: every other one invalidates what this module keeps of its tables."""

SCALARS = frozenset({"S", "N", "BOOL", "NULL"})
QUERY_ARGS = (
    "range_comparison", "range_objs", "limit", "exclusive_start_key", "scan_index_forward",
    "projection_expressions", "index_name",
)  # fmt: skip

_state = threading.local()
_versions: dict[str, int] = {}  # table name -> writes seen; "*" counts writes to tables not named
# table -> (versions seen, what is kept); weak: a table reset or deleted takes what is kept of it along
_cache: weakref.WeakKeyDictionary[Any, tuple[tuple[int, int], dict[Any, Any]]] = weakref.WeakKeyDictionary()


def install() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_gateway_fast_queries", False):
        return
    _install_queries(Table)
    _install_write_tracking()
    _install_scalar_serializer()
    setattr(Table, "_gateway_fast_queries", True)  # noqa: B010 - marking moto's class is the point


# --- queries ------------------------------------------------------------------------------------------------------


def _install_queries(table_class: Any) -> None:
    original_query = table_class.query
    original_all_items = table_class.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        asked = dict(zip(QUERY_ARGS, args, strict=False))
        asked.update({name: value for name, value in kwargs.items() if name in QUERY_ARGS})
        asked["hash_key"] = hash_key
        asked["filter_kwargs"] = {name for name in kwargs if name not in QUERY_ARGS} - {
            "consistent_read", "filter_expression", "hash_key_conditions", "range_key_conditions",
        }  # fmt: skip
        asked["hash_key_conditions"] = kwargs.get("hash_key_conditions") or []
        asked["range_key_conditions"] = kwargs.get("range_key_conditions") or []
        _state.asked = (self, asked)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _state.asked = None

    def all_items(self: Any) -> Any:
        current = getattr(_state, "asked", None)
        if current is None or current[0] is not self:
            return original_all_items(self)
        _state.asked = None  # once per query
        asked = current[1]
        found = _index_candidates(self, asked) if asked.get("index_name") else _table_candidates(self, asked)
        if found is None:  # a query this module does not narrow: every item, unsorted (moto sorts its matches)
            return [item for bucket in self.items.values() for item in _values(bucket, self.range_key_attr)]
        return found

    setattr(table_class, "query", query)  # noqa: B010 - replacing moto's method is the point
    setattr(table_class, "all_items", all_items)  # noqa: B010


def _values(bucket: Any, has_range: Any) -> list[Any]:
    return list(bucket.values()) if has_range else [bucket]


def _native(value: Any) -> Any:
    """A key value as Python compares it the way moto does (``DynamoType.cast_value``); None for a type not bisected."""
    if value is None:
        return None
    if value.type == "S":
        return value.value
    if value.type == "N":
        return value.cast_value
    return None


def _kept(table: Any) -> dict[Any, Any]:
    seen = (_versions.get(table.name, 0), _versions.get("*", 0))
    cached = _cache.get(table)
    if cached is None or cached[0] != seen:
        cached = (seen, {})
        _cache[table] = cached
    return cached[1]


def _bounds(keys: list[Any], comparison: str | None, objects: list[Any]) -> tuple[int, int] | None:
    """The slice of ``keys`` (sorted natives) a key condition keeps; None when it cannot tell."""
    if not comparison:
        return 0, len(keys)
    values = [_native(obj) for obj in objects]
    if any(value is None for value in values) or not values:
        return None
    try:
        if comparison in ("EQ", "="):
            return bisect.bisect_left(keys, values[0]), bisect.bisect_right(keys, values[0])
        if comparison in ("LT", "<"):
            return 0, bisect.bisect_left(keys, values[0])
        if comparison in ("LE", "<="):
            return 0, bisect.bisect_right(keys, values[0])
        if comparison in ("GT", ">"):
            return bisect.bisect_right(keys, values[0]), len(keys)
        if comparison in ("GE", ">="):
            return bisect.bisect_left(keys, values[0]), len(keys)
        if comparison == "BETWEEN" and len(values) == 2:
            low = bisect.bisect_left(keys, values[0])
            return low, max(low, bisect.bisect_right(keys, values[1]))
        if comparison == "BEGINS_WITH" and isinstance(values[0], str):
            low = high = bisect.bisect_left(keys, values[0])
            while high < len(keys) and isinstance(keys[high], str) and keys[high].startswith(values[0]):
                high += 1
            return low, high
    except TypeError:  # keys of mixed types: let moto decide
        return None
    return None


def _table_candidates(table: Any, asked: dict[str, Any]) -> list[Any] | None:
    hash_key = asked["hash_key"]
    if hash_key is None or not table.range_key_attr or asked["filter_kwargs"] or len(asked["range_key_conditions"]) > 1:
        return None
    bucket = table.items.get(hash_key)
    if not bucket:
        return []
    kept = _kept(table)
    partitions = kept.setdefault("partitions", {})
    order = partitions.get(hash_key)
    if order is None or len(order[1]) != len(bucket):
        ranges = list(bucket)
        natives = [_native(key) for key in ranges]
        if any(native is None for native in natives):
            return None
        try:
            pairs = sorted(zip(natives, range(len(ranges)), strict=True))
        except TypeError:
            return None
        order = ([native for native, _ in pairs], [ranges[n] for _, n in pairs])
        partitions[hash_key] = order
    natives, ranges = order
    span = _bounds(natives, asked.get("range_comparison"), asked.get("range_objs") or [])
    if span is None:
        return None
    low, high = span
    forward = asked.get("scan_index_forward") is not False
    start = asked.get("exclusive_start_key")
    if start is not None:
        after = start.get(table.range_key_attr)
        if not isinstance(after, dict):
            return None
        from moto.dynamodb.models.dynamo_type import DynamoType

        position = _native(DynamoType(after))
        if position is None:
            return None
        if forward:
            low = max(low, bisect.bisect_right(natives, position, low, high))
        else:
            high = min(high, bisect.bisect_left(natives, position, low, high))
    limit = asked.get("limit")
    if isinstance(limit, int) and limit >= 0 and high - low > limit + 1:
        if forward:
            high = low + limit + 1
        else:
            low = high - limit - 1
    return [bucket[key] for key in _with_next(ranges, low, high, forward)]


def _with_next(ordered: list[Any], low: int, high: int, forward: bool) -> list[Any]:
    """``ordered[low:high]`` and the entry that follows them in the direction read, if any: moto gives a
    ``LastEvaluatedKey`` when its ``Limit``-th match is followed by any item of the partition, in the key condition
    or not, and so must it here."""
    if forward:
        return ordered[low : high + 1]
    return ordered[max(low - 1, 0) : high]


def _index_candidates(table: Any, asked: dict[str, Any]) -> list[Any] | None:
    conditions = asked["hash_key_conditions"]
    if len(conditions) != 1 or len(asked["range_key_conditions"]) > 1 or asked["filter_kwargs"]:
        return None
    index = next((i for i in table.all_indexes() if i.name == asked["index_name"]), None)
    if index is None:
        return None  # moto answers with its own error
    hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    sorts = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(sorts) > 1 or conditions[0][0] != hashes[0]:
        return None
    maps = _kept(table).setdefault("indexes", {})
    partitions = maps.get(index.name)
    if partitions is None:
        partitions = _index_map(table, hashes[0], sorts[0] if sorts else None)
        if partitions is None:
            return None
        maps[index.name] = partitions
    found = partitions.get(_native(conditions[0][1]))
    if found is None:
        return []
    natives, items = found
    if not sorts:
        return list(items)
    span = _bounds(natives, asked.get("range_comparison"), asked.get("range_objs") or [])
    if span is None:
        return list(items)
    return _with_next(items, span[0], span[1], asked.get("scan_index_forward") is not False)


def _index_map(table: Any, hash_name: str, sort_name: str | None) -> dict[Any, tuple[list[Any], list[Any]]] | None:
    """Index key -> (sorted index sort keys, the items in that order) for the items the index holds."""
    grouped: dict[Any, list[tuple[Any, int, Any]]] = {}
    for n, item in enumerate(i for bucket in table.items.values() for i in _values(bucket, table.range_key_attr)):
        key = item.attrs.get(hash_name)
        if key is None:
            continue
        native = _native(key)
        if native is None:
            return None
        sort: Any = 0
        if sort_name is not None:
            value = item.attrs.get(sort_name)
            if value is None:
                continue  # not in the index: a sparse index holds items with all its keys
            sort = _native(value)
            if sort is None:
                return None
        grouped.setdefault(native, []).append((sort, n, item))
    partitions = {}
    for key, entries in grouped.items():
        try:
            entries.sort(key=lambda entry: (entry[0], entry[1]))
        except TypeError:
            return None
        partitions[key] = ([entry[0] for entry in entries], [entry[2] for entry in entries])
    return partitions


# --- writes: what is kept of a table is rebuilt after any request that may change it -------------------------------


def _install_write_tracking() -> None:
    from moto.dynamodb.responses import DynamoHandler

    original_call_action: Callable[..., Any] = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        action = self.get_endpoint_name(self.headers) if getattr(self, "headers", None) is not None else None
        if action not in READS:
            for name in _written_tables(getattr(self, "params", None) or {}):
                _versions[name] = _versions.get(name, 0) + 1
        try:
            return original_call_action(self)
        finally:
            if action not in READS:  # the write is done: whatever was kept before or during it is stale
                for name in _written_tables(getattr(self, "params", None) or {}):
                    _versions[name] = _versions.get(name, 0) + 1

    setattr(DynamoHandler, "call_action", call_action)  # noqa: B010


def _written_tables(params: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    if isinstance(params.get("TableName"), str):
        names.add(params["TableName"])
    if isinstance(params.get("RequestItems"), dict):
        names.update(str(name) for name in params["RequestItems"])
    for entry in params.get("TransactItems") or []:
        for part in entry.values() if isinstance(entry, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("TableName"), str):
                names.add(part["TableName"])
    return names or {"*"}


# --- responses ----------------------------------------------------------------------------------------------------


def _install_scalar_serializer() -> None:
    from moto.core.serialize import BaseJSONSerializer

    original: Callable[..., Any] = BaseJSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if (
            shape.name == "AttributeValue"
            and isinstance(value, dict)
            and len(value) == 1
            and next(iter(value)) in SCALARS
            and isinstance(next(iter(value.values())), str | bool)
        ):
            serialized[shape.serialization.get("name", key)] = dict(value)
            return
        original(self, serialized, value, shape, key)

    setattr(BaseJSONSerializer, "_serialize_type_structure", serialize_structure)  # noqa: B010
