"""What every DynamoDB store of the gateway shares: the attribute-value codec of its records and
:class:`DynamoTable`, the base of each store (reads, conditional writes, queries by page, and the translation of the
client's errors into :class:`~gateway.storage.ports.StorageError`)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from gateway.storage.ports import StorageError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

R = TypeVar("R")


@cache
def _tuple_fields(cls: type[Any]) -> frozenset[str]:
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items() if typing.get_origin(hint) is tuple)


@cache
def _record_fields(cls: type[Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    """A record's field names, and those that must be present (no default): once per class, not per read."""
    fields = dataclasses.fields(cls)
    required = tuple(
        f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return frozenset(f.name for f in fields), required


# A small attribute-value codec for the types our records use (boto3.dynamodb.types would import all of boto3 at
# cold start for the same job).


def serialize(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, list | tuple):
        return {"L": [serialize(item) for item in value]}
    if isinstance(value, dict):
        return {"M": {str(key): serialize(item) for key, item in value.items() if item is not None}}
    if value is None:
        return {"NULL": True}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def deserialize(attribute: Mapping[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        if value.isascii() and value.isdigit():  # the common case (times, counters): no Decimal needed
            return int(value)
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "BOOL":
        return bool(value)
    if kind == "B":
        return bytes(value)
    if kind == "L":
        return [deserialize(item) for item in value]
    if kind == "M":
        return {key: deserialize(item) for key, item in value.items()}
    if kind == "NULL":
        return None
    if kind == "SS":
        return set(value)
    raise TypeError(f"unexpected DynamoDB attribute type {kind}")


def to_item(record: Any, **keys: Any) -> dict[str, Any]:
    """A record as a DynamoDB item (None fields omitted; tuples as lists)."""
    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(record).items()}
    data.update(keys)
    return {k: serialize(v) for k, v in data.items() if v is not None}


def from_item(cls: type[R], item: Mapping[str, Any], renames: Mapping[str, str] | None = None) -> R:
    data = {k: deserialize(v) for k, v in item.items()}
    for stored, field_name in (renames or {}).items():
        if stored in data:
            data[field_name] = data.pop(stored)
    names, required = _record_fields(cls)  # type: ignore[arg-type]
    tuples = _tuple_fields(cls)  # type: ignore[arg-type]
    values = {k: (tuple(v) if k in tuples else v) for k, v in data.items() if k in names}
    for name in required:  # None values are not stored: absent required fields were None
        if name not in values:
            values[name] = None
    return cls(**values)


def s_attr(value: str) -> dict[str, str]:
    """A string attribute value (``{"S": value}``)."""
    return {"S": value}


def n_attr(value: int) -> dict[str, str]:
    """A number attribute value (``{"N": "123"}``)."""
    return {"N": str(value)}


def is_condition_failure(error: ClientError) -> bool:
    """Whether a write was refused by its condition (the single-use and compare-and-swap outcomes)."""
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTable:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": s_attr(pk), "sk": s_attr(sk)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"DynamoDB read failed: {type(error).__name__}") from error
        return response.get("Item")

    def _conditional(self, operation: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
        """Run a write; False when its condition failed, StorageError when DynamoDB did."""
        try:
            operation(**kwargs)
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise StorageError(f"DynamoDB write failed: {error.response['Error']['Code']}") from error
        except BotoCoreError as error:
            raise StorageError(f"DynamoDB write failed: {type(error).__name__}") from error
        return True

    def _put(self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None) -> bool:
        kwargs: dict[str, Any] = {"TableName": self._table, "Item": item}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = values
        return self._conditional(self._client.put_item, kwargs)

    def _update(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str | None,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": s_attr(pk), "sk": s_attr(sk)},
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        return self._conditional(self._client.update_item, kwargs)

    def _every_item(self, operation: Callable[..., Any], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of a query or scan, page after page."""
        items: list[dict[str, Any]] = []
        try:
            while True:
                page = operation(**kwargs)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"DynamoDB read failed: {type(error).__name__}") from error

    def index_page(
        self,
        index: str,
        key_attribute: str,
        key: str,
        sort_attribute: str,
        *,
        limit: int,
        before: str | None = None,
        filters: Mapping[str, str | None] | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` items of one index partition, newest (highest sort key) first, below ``before`` when
        given, that match every filter given (equality on attributes): page after page until ``limit`` match or
        the partition ends."""
        wanted = {name: value for name, value in (filters or {}).items() if value is not None}
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": "#key = :key" + (" AND #sort < :before" if before is not None else ""),
            "ExpressionAttributeNames": {"#key": key_attribute, **({"#sort": sort_attribute} if before else {})},
            "ExpressionAttributeValues": {
                ":key": s_attr(key),
                **({":before": s_attr(before)} if before else {}),
            },
            "ScanIndexForward": False,
        }
        if wanted:
            kwargs["FilterExpression"] = " AND ".join(f"#f_{name} = :f_{name}" for name in wanted)
            kwargs["ExpressionAttributeNames"].update({f"#f_{name}": name for name in wanted})
            kwargs["ExpressionAttributeValues"].update({f":f_{name}": s_attr(value) for name, value in wanted.items()})
        # DynamoDB's Limit counts the items read, before the filter: a filtered listing reads larger pages.
        kwargs["Limit"] = min(limit * 4, 1000) if wanted else limit
        found: list[dict[str, Any]] = []
        try:
            while len(found) < limit:
                page = self._client.query(**kwargs)
                found.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"DynamoDB query failed: {type(error).__name__}") from error
        return found[:limit]

    def _delete(self, pk: str, sk: str, condition: str | None = None, values: dict[str, Any] | None = None) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": s_attr(pk), "sk": s_attr(sk)},
        }
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ExpressionAttributeValues"] = values or {}
        self._conditional(self._client.delete_item, kwargs)  # a failed condition means there is nothing to delete
