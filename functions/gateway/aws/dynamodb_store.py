"""DynamoDB adapters of the storage ports (low-level client; one table per port, keys ``pk``/``sk``): clients, API
keys, rate limits, single-use values and upstream tokens here; the grant store in :mod:`gateway.aws.dynamodb_grants`,
the audit trail and usage rollups in :mod:`gateway.aws.dynamodb_audit`, what they share in
:mod:`gateway.aws.dynamodb_table`.

Item layouts are documented in docs/storage.md. Every short-lived item carries the TTL attribute ``expires_at`` and
is also checked for expiry on read. Conditional writes give the single-use guarantees the ports promise.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from gateway.aws.dynamodb_table import DynamoTable, from_item, n_attr, s_attr, to_item
from gateway.storage.ports import AlreadyExists, listing_position
from gateway.storage.records import (
    ApiKey,
    RegisteredClient,
    UpstreamToken,
)

if TYPE_CHECKING:
    pass


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
            update, values = "SET last_used_at = :used REMOVE expires_at", {":used": n_attr(last_used_at)}
        else:
            update = "SET last_used_at = :used, expires_at = :exp"
            values = {":used": n_attr(last_used_at), ":exp": n_attr(expires_at)}
        self._update(pk, sk, update, "attribute_exists(pk)", values)

    def clients_of_workspace(
        self, workspace: str, now: int, *, limit: int = 100, before: str | None = None
    ) -> list[RegisteredClient]:
        items = self.index_page("by_workspace", "gsi1pk", f"CLIENTS#{workspace}", "gsi1sk", limit=limit, before=before)
        clients = (from_item(RegisteredClient, item) for item in items)
        return [client for client in clients if client.expires_at is None or client.expires_at > now]


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
            {
                ":revoked": s_attr("revoked"),
                ":active": s_attr("active"),
                ":now": n_attr(now),
            },
            {"#status": "status"},
        )

    def keys_of_user(self, workspace: str, user_id: str) -> list[ApiKey]:
        items = self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "IndexName": "by_user",
                "KeyConditionExpression": "gsi1pk = :owner",
                "ExpressionAttributeValues": {":owner": s_attr(_key_owner_index_key(workspace, user_id))},
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
                "ExpressionAttributeValues": {":ws": s_attr(f"APIKEYS#{workspace}")},
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
            {":one": n_attr(1), ":limit": n_attr(limit), ":ends": n_attr(window_ends_at)},
        )


# --- single-use values (jti) -------------------------------------------------------------------------------------


class DynamoSingleUseStore(DynamoTable):
    """One item per used value in the grants table: a conditional ``PutItem`` that succeeds only where no unexpired
    record exists (TTL deletion is lazy, so an expired record still present is overwritten)."""

    def use(self, key: str, expires_at: int, now: int) -> bool:
        item = {
            "pk": s_attr(f"ONCE#{key}"),
            "sk": s_attr("ONCE"),
            "expires_at": n_attr(expires_at),
        }
        return self._put(item, "attribute_not_exists(pk) OR expires_at <= :now", {":now": n_attr(now)})


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
        return self._put(item, "version = :expected", {":expected": n_attr(expected_version)})

    def acquire_lease(self, route_key: str, subject: str, owner: str, now: int, until: int) -> bool:
        pk, sk = _upstream_key(route_key, subject)
        return self._update(
            pk,
            sk,
            "SET lease_owner = :owner, lease_expires_at = :until",
            "attribute_exists(pk) AND (attribute_not_exists(lease_owner) OR lease_owner = :owner "
            "OR lease_expires_at <= :now)",
            {":owner": s_attr(owner), ":until": n_attr(until), ":now": n_attr(now)},
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
                    ":routes": s_attr(f"UPSTREAM#{workspace}/"),
                    ":subject": s_attr(f"SUBJECT#{subject}"),
                },
                "ProjectionExpression": "pk",
                "ConsistentRead": True,
            },
        )
        return sorted(item["pk"]["S"].removeprefix("UPSTREAM#") for item in items)
