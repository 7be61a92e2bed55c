"""Queries the local store answers in time proportional to what they read, as DynamoDB does.

moto answers every ``Query`` by sorting *all* items of the table and then keeping those of the partition asked for
(``Table.all_items``): fine for the few items of a test, but with the 100,000 audit events of ``make bench`` (or a
``.dev/`` state that grew over weeks of ``make dev``) a single query costs seconds and the admin console cannot be
measured or used. The local store process (:mod:`infra.local_aws_server`) installs :func:`install`, which, during a
``Query`` only, hands moto's query the items of the one partition a table query names (its hash key), or all items
unsorted for an index query (moto sorts its matches itself). What moto returns is unchanged: the same items, in the
same order, with the same paging; only the items it looks at are fewer.
"""

from __future__ import annotations

import threading
from typing import Any

_state = threading.local()


def install() -> None:
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_gateway_fast_queries", False):
        return
    original_query = Table.query
    original_all_items = Table.all_items

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _state.partition = (self, None if index_name else hash_key, index_name)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            _state.partition = None

    def all_items(self: Any) -> Any:
        asked = getattr(_state, "partition", None)
        if asked is None or asked[0] is not self:
            return original_all_items(self)
        _, hash_key, index_name = asked
        if index_name is not None or hash_key is None or not self.range_key_attr:
            # An index query filters every item and sorts its matches: the table-wide sort is wasted.
            return [item for bucket in self.items.values() for item in _values(bucket, self.range_key_attr)]
        bucket = self.items.get(hash_key)
        return sorted(bucket.values(), key=lambda item: item.range_key) if bucket else []

    setattr(Table, "query", query)  # noqa: B010 - replacing moto's method is the point
    setattr(Table, "all_items", all_items)  # noqa: B010
    setattr(Table, "_gateway_fast_queries", True)  # noqa: B010


def _values(bucket: Any, has_range: Any) -> list[Any]:
    return list(bucket.values()) if has_range else [bucket]
