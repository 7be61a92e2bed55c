"""The grant store in DynamoDB: pending authorizations, authorization codes, grants, remembered consent and the
per-user index of grants (item layouts in docs/storage.md). Conditional writes and one transaction give the
single-use and compare-and-swap guarantees :class:`~gateway.storage.ports.GrantStore` promises."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from gateway.aws.dynamodb_table import (
    DynamoTable,
    from_item,
    is_condition_failure,
    n_attr,
    s_attr,
    to_item,
)
from gateway.storage.ports import AlreadyExists, CodeNotRedeemable, StorageError, listing_position
from gateway.storage.records import (
    AuthorizationCode,
    Consent,
    Grant,
    PendingAuthorization,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

CODE_RETENTION_SECONDS = 86400  # redeemed codes are kept a day past expiry to recognise replays
GRANT_RETENTION_SECONDS = 7 * 86400


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
                Key={"pk": s_attr(pk), "sk": s_attr(sk)},
                ConditionExpression="attribute_exists(pk) AND expires_at > :now",
                ExpressionAttributeValues={":now": n_attr(now)},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if is_condition_failure(error):
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
        item["expires_at"] = n_attr(code.expires_at + CODE_RETENTION_SECONDS)
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
                    "Key": {"pk": s_attr(code_pk), "sk": s_attr(code_sk)},
                    "UpdateExpression": "SET redeemed_at = :now",
                    "ConditionExpression": (
                        "attribute_exists(pk) AND attribute_not_exists(redeemed_at) AND valid_until > :now"
                    ),
                    "ExpressionAttributeValues": {":now": n_attr(now)},
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
                ":next": n_attr(from_generation + 1),
                ":from": n_attr(from_generation),
                ":at": n_attr(rotated_at),
                ":idle": n_attr(idle_expires_at),
                ":active": s_attr("active"),
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
            {
                ":revoked": s_attr("revoked"),
                ":active": s_attr("active"),
                ":now": n_attr(now),
                ":reason": s_attr(reason),
            },
            {"#status": "status"},
        )
        grant = self.get_grant(grant_id)
        if grant is not None:
            self._delete(
                *_consent_key(grant.route_key, grant.client_id, grant.user_id),
                condition="grant_id = :gid",
                values={":gid": s_attr(grant_id)},
            )

    def grants_of_user(self, workspace: str, user_id: str) -> list[Grant]:
        items = self._every_item(
            self._client.query,
            {
                "TableName": self._table,
                "IndexName": "by_user",
                "KeyConditionExpression": "gsi1pk = :user",
                "ExpressionAttributeValues": {":user": s_attr(_user_index_key(workspace, user_id))},
            },
        )
        return [from_item(Grant, item) for item in items]

    def grants_of_client(self, client_id: str) -> list[Grant]:
        items = self._every_item(
            self._client.scan,
            {
                "TableName": self._table,
                "FilterExpression": "begins_with(pk, :grant) AND client_id = :client",
                "ExpressionAttributeValues": {
                    ":grant": s_attr("GRANT#"),
                    ":client": s_attr(client_id),
                },
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
