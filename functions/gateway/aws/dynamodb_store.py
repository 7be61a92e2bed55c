"""DynamoDB adapters of the storage ports (low-level client; one table per port, keys ``pk``/``sk``).

Item layouts are documented in docs/storage.md. Every short-lived item carries the TTL attribute ``expires_at`` and
is also checked for expiry on read. Conditional writes and one transaction give the single-use and
compare-and-swap guarantees the ports promise.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from gateway.storage.ports import AlreadyExists, CodeNotRedeemable, StorageError, listing_position
from gateway.storage.records import (
    ApiKey,
    AuthorizationCode,
    Consent,
    Grant,
    PendingAuthorization,
    RegisteredClient,
    UpstreamToken,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

R = TypeVar("R")

CODE_RETENTION_SECONDS = 86400  # redeemed codes are kept a day past expiry to recognise replays
GRANT_RETENTION_SECONDS = 7 * 86400


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


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoTable:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"DynamoDB read failed: {type(error).__name__}") from error
        return response.get("Item")

    def _conditional(self, operation: Callable[..., Any], kwargs: dict[str, Any]) -> bool:
        """Run a write; False when its condition failed, StorageError when DynamoDB did."""
        try:
            operation(**kwargs)
        except ClientError as error:
            if _is_condition_failure(error):
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
            "Key": {"pk": _s(pk), "sk": _s(sk)},
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
            "ExpressionAttributeValues": {":key": _s(key), **({":before": _s(before)} if before else {})},
            "ScanIndexForward": False,
        }
        if wanted:
            kwargs["FilterExpression"] = " AND ".join(f"#f_{name} = :f_{name}" for name in wanted)
            kwargs["ExpressionAttributeNames"].update({f"#f_{name}": name for name in wanted})
            kwargs["ExpressionAttributeValues"].update({f":f_{name}": _s(value) for name, value in wanted.items()})
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
        kwargs: dict[str, Any] = {"TableName": self._table, "Key": {"pk": _s(pk), "sk": _s(sk)}}
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ExpressionAttributeValues"] = values or {}
        self._conditional(self._client.delete_item, kwargs)  # a failed condition means there is nothing to delete


# --- clients ------------------------------------------------------------------------------------------------------


def _client_key(client_id: str) -> tuple[str, str]:
    return f"CLIENT#{client_id}", "CLIENT"


def _workspace_of(route_key: str) -> str:
    return route_key.split("/", 1)[0]


class DynamoClientStore(DynamoTable):
    """Registrations by id; the ``by_workspace`` index lists a workspace's, newest first (``docs/storage.md``)."""

    def create(self, client: RegisteredClient) -> None:
        pk, sk = _client_key(client.client_id)
        item = to_item(
            client, pk=pk, sk=sk, gsi1pk=f"CLIENTS#{_workspace_of(client.route_key)}",
            gsi1sk=listing_position(client.created_at, client.client_id),
        )  # fmt: skip
        if not self._put(item, "attribute_not_exists(pk)"):
            raise AlreadyExists(client.client_id)

    def get(self, client_id: str, now: int) -> RegisteredClient | None:
        item = self._get(*_client_key(client_id))
        if item is None:
            return None
        client = from_item(RegisteredClient, item)
        if client.expires_at is not None and client.expires_at <= now:
            return None
        return client

    def touch(self, client_id: str, last_used_at: int, expires_at: int | None) -> None:
        pk, sk = _client_key(client_id)
        if expires_at is None:
            update, values = "SET last_used_at = :used REMOVE expires_at", {":used": _n(last_used_at)}
        else:
            update = "SET last_used_at = :used, expires_at = :exp"
            values = {":used": _n(last_used_at), ":exp": _n(expires_at)}
        self._update(pk, sk, update, "attribute_exists(pk)", values)

    def clients_of_workspace(
        self, workspace: str, now: int, *, limit: int = 100, before: str | None = None
    ) -> list[RegisteredClient]:
        items = self.index_page("by_workspace", "gsi1pk", f"CLIENTS#{workspace}", "gsi1sk", limit=limit, before=before)
        clients = (from_item(RegisteredClient, item) for item in items)
        return [client for client in clients if client.expires_at is None or client.expires_at > now]


# --- grants, codes, pending authorizations, consent -------------------------------------------------------------


def _pending_key(pending_id: str) -> tuple[str, str]:
    return f"PENDING#{pending_id}", "PENDING"


def _code_key(code_hash: str) -> tuple[str, str]:
    return f"CODE#{code_hash}", "CODE"


def _grant_key(grant_id: str) -> tuple[str, str]:
    return f"GRANT#{grant_id}", "GRANT"


def _consent_key(route_key: str, client_id: str, user_id: str) -> tuple[str, str]:
    return f"CONSENT#{route_key}#{user_id}", f"CLIENT#{client_id}"


def _user_index_key(workspace: str, user_id: str) -> str:
    return f"USER#{workspace}#{user_id}"


_CODE_RENAMES = {"valid_until": "expires_at"}


class DynamoGrantStore(DynamoTable):
    def put_pending(self, pending: PendingAuthorization) -> None:
        pk, sk = _pending_key(pending.pending_id)
        self._put(to_item(pending, pk=pk, sk=sk))

    def get_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        item = self._get(*_pending_key(pending_id))
        if item is None:
            return None
        pending = from_item(PendingAuthorization, item)
        return pending if pending.expires_at > now else None

    def delete_pending(self, pending_id: str) -> None:
        self._delete(*_pending_key(pending_id))

    def take_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        pk, sk = _pending_key(pending_id)
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key={"pk": _s(pk), "sk": _s(sk)},
                ConditionExpression="attribute_exists(pk) AND expires_at > :now",
                ExpressionAttributeValues={":now": _n(now)},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None  # taken by another request, expired, or never there
            raise StorageError(f"DynamoDB write failed: {error.response['Error']['Code']}") from error
        except BotoCoreError as error:
            raise StorageError(f"DynamoDB write failed: {type(error).__name__}") from error
        item = response.get("Attributes")
        return from_item(PendingAuthorization, item) if item else None

    def _code_item(self, code: AuthorizationCode) -> dict[str, Any]:
        pk, sk = _code_key(code.code_hash)
        item = to_item(code, pk=pk, sk=sk)
        item["valid_until"] = item.pop("expires_at")
        item["expires_at"] = _n(code.expires_at + CODE_RETENTION_SECONDS)
        return item

    def put_code(self, code: AuthorizationCode) -> None:
        self._put(self._code_item(code))

    def get_code(self, code_hash: str, now: int) -> AuthorizationCode | None:
        item = self._get(*_code_key(code_hash))
        if item is None:
            return None
        item = dict(item)
        item.pop("expires_at", None)
        return from_item(AuthorizationCode, item, _CODE_RENAMES)

    def _grant_item(self, grant: Grant) -> dict[str, Any]:
        pk, sk = _grant_key(grant.grant_id)
        return to_item(
            grant,
            pk=pk,
            sk=sk,
            gsi1pk=_user_index_key(grant.workspace, grant.user_id),
            gsi1sk=f"GRANT#{grant.created_at:012d}#{grant.grant_id}",
            gsi2pk=f"GRANTS#{grant.workspace}",
            gsi2sk=listing_position(grant.created_at, grant.grant_id),
            expires_at=grant.absolute_expires_at + GRANT_RETENTION_SECONDS,
        )

    def redeem_code(self, code_hash: str, grant: Grant, consent: Consent | None, now: int) -> None:
        code_pk, code_sk = _code_key(code_hash)
        items: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self._table,
                    "Key": {"pk": _s(code_pk), "sk": _s(code_sk)},
                    "UpdateExpression": "SET redeemed_at = :now",
                    "ConditionExpression": (
                        "attribute_exists(pk) AND attribute_not_exists(redeemed_at) AND valid_until > :now"
                    ),
                    "ExpressionAttributeValues": {":now": _n(now)},
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._grant_item(grant),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if consent is not None:
            pk, sk = _consent_key(consent.route_key, consent.client_id, consent.user_id)
            items.append({"Put": {"TableName": self._table, "Item": to_item(consent, pk=pk, sk=sk)}})
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise StorageError(f"DynamoDB transaction failed: {error.response['Error']['Code']}") from error
            cancellations: list[dict[str, Any]] = error.response.get("CancellationReasons", [])  # type: ignore[assignment]
            reasons = [r.get("Code") for r in cancellations]
            if reasons and reasons[0] not in ("ConditionalCheckFailed", "TransactionConflict"):
                raise StorageError(f"DynamoDB transaction cancelled: {reasons}") from error
            code = self.get_code(code_hash, now)
            raise CodeNotRedeemable(code if code is not None and code.redeemed_at is not None else None) from None
        except BotoCoreError as error:
            raise StorageError(f"DynamoDB transaction failed: {type(error).__name__}") from error

    def get_grant(self, grant_id: str) -> Grant | None:
        item = self._get(*_grant_key(grant_id))
        return None if item is None else from_item(Grant, item)

    def create_grant(self, grant: Grant) -> None:
        if not self._put(self._grant_item(grant), "attribute_not_exists(pk)"):
            raise AlreadyExists(grant.grant_id)

    def advance_refresh(self, grant_id: str, from_generation: int, rotated_at: int, idle_expires_at: int) -> bool:
        pk, sk = _grant_key(grant_id)
        return self._update(
            pk,
            sk,
            "SET refresh_generation = :next, rotated_at = :at, idle_expires_at = :idle",
            "#status = :active AND refresh_generation = :from",
            {
                ":next": _n(from_generation + 1),
                ":from": _n(from_generation),
                ":at": _n(rotated_at),
                ":idle": _n(idle_expires_at),
                ":active": _s("active"),
            },
            {"#status": "status"},
        )

    def revoke_grant(self, grant_id: str, now: int, reason: str) -> None:
        pk, sk = _grant_key(grant_id)
        self._update(
            pk,
            sk,
            "SET #status = :revoked, revoked_at = :now, revoked_reason = :reason",
            "#status = :active",
            {":revoked": _s("revoked"), ":active": _s("active"), ":now": _n(now), ":reason": _s(reason)},
            {"#status": "status"},
        )
        grant = self.get_grant(grant_id)
        if grant is not None:
            self._delete(
                *_consent_key(grant.route_key, grant.client_id, grant.user_id),
                condition="grant_id = :gid",
                values={":gid": _s(grant_id)},
            )

    def grants_of_user(self, workspace: str, user_id: str) -> list[Grant]:
        items = self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "IndexName": "by_user",
                "KeyConditionExpression": "gsi1pk = :user",
                "ExpressionAttributeValues": {":user": _s(_user_index_key(workspace, user_id))},
            },
        )
        return [from_item(Grant, item) for item in items]

    def grants_of_client(self, client_id: str) -> list[Grant]:
        items = self._every_item(
            self._client.scan,
            {
                "TableName": self._table,
                "FilterExpression": "begins_with(pk, :grant) AND client_id = :client",
                "ExpressionAttributeValues": {":grant": _s("GRANT#"), ":client": _s(client_id)},
                "ConsistentRead": True,
            },
        )
        return [from_item(Grant, item) for item in items]

    def grants_of_workspace(
        self,
        workspace: str,
        *,
        limit: int = 100,
        before: str | None = None,
        client_id: str | None = None,
        route_key: str | None = None,
    ) -> list[Grant]:
        items = self.index_page(
            "by_workspace", "gsi2pk", f"GRANTS#{workspace}", "gsi2sk", limit=limit, before=before,
            filters={"client_id": client_id, "route_key": route_key},
        )  # fmt: skip
        return [from_item(Grant, item) for item in items]

    def get_consent(self, route_key: str, client_id: str, user_id: str) -> Consent | None:
        item = self._get(*_consent_key(route_key, client_id, user_id))
        return None if item is None else from_item(Consent, item)


# --- API keys (in the grants table: authorization state, read by the proxy like a grant) -------------------------


def _api_key_key(key_id: str) -> tuple[str, str]:
    return f"APIKEY#{key_id}", "APIKEY"


def _key_owner_index_key(workspace: str, user_id: str) -> str:
    return f"APIKEYS#{workspace}#{user_id}"


class DynamoApiKeyStore(DynamoTable):
    """Keys live in the grants table, beside the grants (``docs/storage.md``); the ``by_user`` index lists a
    user's keys under its own partition (``APIKEYS#...``), apart from their grants."""

    def create_key(self, key: ApiKey) -> None:
        pk, sk = _api_key_key(key.key_id)
        item = to_item(
            key,
            pk=pk,
            sk=sk,
            gsi1pk=_key_owner_index_key(key.workspace, key.user_id),
            gsi1sk=f"APIKEY#{key.created_at:012d}#{key.key_id}",
            gsi2pk=f"APIKEYS#{key.workspace}",
            gsi2sk=listing_position(key.created_at, key.key_id),
        )
        # ``expires_at`` is the table's TTL attribute: an expired key is deleted some time after its expiry, a
        # revoked one is kept (its TTL, if any, still applies); reads check both anyway.
        if not self._put(item, "attribute_not_exists(pk)"):
            raise AlreadyExists(key.key_id)

    def get_key(self, key_id: str) -> ApiKey | None:
        item = self._get(*_api_key_key(key_id))
        return None if item is None else from_item(ApiKey, item)

    def revoke_key(self, key_id: str, now: int) -> None:
        pk, sk = _api_key_key(key_id)
        self._update(
            pk,
            sk,
            "SET #status = :revoked, revoked_at = :now",
            "#status = :active",
            {":revoked": _s("revoked"), ":active": _s("active"), ":now": _n(now)},
            {"#status": "status"},
        )

    def keys_of_user(self, workspace: str, user_id: str) -> list[ApiKey]:
        items = self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "IndexName": "by_user",
                "KeyConditionExpression": "gsi1pk = :owner",
                "ExpressionAttributeValues": {":owner": _s(_key_owner_index_key(workspace, user_id))},
            },
        )
        return [from_item(ApiKey, item) for item in items]

    def keys_of_workspace(self, workspace: str) -> list[ApiKey]:
        # The by_workspace index: a workspace's keys, newest first, without reading the rest of the table.
        items = self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "IndexName": "by_workspace",
                "KeyConditionExpression": "gsi2pk = :ws",
                "ExpressionAttributeValues": {":ws": _s(f"APIKEYS#{workspace}")},
                "ScanIndexForward": False,
            },
        )
        return [from_item(ApiKey, item) for item in items]


# --- rate limits ----------------------------------------------------------------------------------------------------


class DynamoRateLimiter(DynamoTable):
    """One item per bucket: ``ADD hits :one`` under the condition that the count is below the limit, so the
    check and the count are one atomic ``UpdateItem`` and a full bucket is never written again."""

    def take(self, bucket: str, limit: int, window_ends_at: int) -> bool:
        return self._update(
            f"RATE#{bucket}",
            "RATE",
            "ADD hits :one SET expires_at = if_not_exists(expires_at, :ends)",
            "attribute_not_exists(hits) OR hits < :limit",
            {":one": _n(1), ":limit": _n(limit), ":ends": _n(window_ends_at)},
        )


# --- single-use values (jti) -------------------------------------------------------------------------------------


class DynamoSingleUseStore(DynamoTable):
    """One item per used value in the grants table: a conditional ``PutItem`` that succeeds only where no unexpired
    record exists (TTL deletion is lazy, so an expired record still present is overwritten)."""

    def use(self, key: str, expires_at: int, now: int) -> bool:
        item = {"pk": _s(f"ONCE#{key}"), "sk": _s("ONCE"), "expires_at": _n(expires_at)}
        return self._put(item, "attribute_not_exists(pk) OR expires_at <= :now", {":now": _n(now)})


# --- upstream tokens ------------------------------------------------------------------------------------------------


def _upstream_key(route_key: str, subject: str) -> tuple[str, str]:
    return f"UPSTREAM#{route_key}", f"SUBJECT#{subject}"


class DynamoUpstreamTokenStore(DynamoTable):
    def get(self, route_key: str, subject: str) -> UpstreamToken | None:
        item = self._get(*_upstream_key(route_key, subject))
        return None if item is None else from_item(UpstreamToken, item)

    def put(self, token: UpstreamToken, expected_version: int | None) -> bool:
        pk, sk = _upstream_key(token.route_key, token.subject)
        item = to_item(dataclasses.replace(token, lease_owner=None, lease_expires_at=None), pk=pk, sk=sk)
        if expected_version is None:
            return self._put(item, "attribute_not_exists(pk)")
        return self._put(item, "version = :expected", {":expected": _n(expected_version)})

    def acquire_lease(self, route_key: str, subject: str, owner: str, now: int, until: int) -> bool:
        pk, sk = _upstream_key(route_key, subject)
        return self._update(
            pk,
            sk,
            "SET lease_owner = :owner, lease_expires_at = :until",
            "attribute_exists(pk) AND (attribute_not_exists(lease_owner) OR lease_owner = :owner "
            "OR lease_expires_at <= :now)",
            {":owner": _s(owner), ":until": _n(until), ":now": _n(now)},
        )

    def delete(self, route_key: str, subject: str) -> None:
        self._delete(*_upstream_key(route_key, subject))

    def routes_of_subject(self, workspace: str, subject: str) -> list[str]:
        # A filtered Scan reading only the keys: an operator's rare action (offboarding) on a table of one row per
        # connection; a per-subject index would have to be filled for rows written before it existed.
        items = self._every_item(
            self._client.scan,
            {
                "TableName": self._table,
                "FilterExpression": "begins_with(pk, :routes) AND sk = :subject",
                "ExpressionAttributeValues": {
                    ":routes": _s(f"UPSTREAM#{workspace}/"),
                    ":subject": _s(f"SUBJECT#{subject}"),
                },
                "ProjectionExpression": "pk",
                "ConsistentRead": True,
            },
        )
        return sorted(item["pk"]["S"].removeprefix("UPSTREAM#") for item in items)
