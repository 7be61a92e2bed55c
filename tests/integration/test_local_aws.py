"""The local AWS stand-in, provisioned from template.yaml and used over real HTTP with boto3."""

from __future__ import annotations

import http.client
import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from infra.local_aws import local_environment, provision, start_local_aws
from infra.ports import tcp_sockets
from infra.template import functions, load_template, resolve_environment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


@dataclass(frozen=True)
class Stack:
    endpoint_url: str
    template: dict[str, Any]
    refs: dict[str, str]

    def session(self) -> boto3.session.Session:
        env = local_environment(self.endpoint_url)
        return boto3.session.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def dynamodb(self) -> DynamoDBClient:
        return self.session().client("dynamodb", endpoint_url=self.endpoint_url)

    def kms(self) -> KMSClient:
        return self.session().client("kms", endpoint_url=self.endpoint_url)

    def secretsmanager(self) -> SecretsManagerClient:
        return self.session().client("secretsmanager", endpoint_url=self.endpoint_url)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    template = load_template(TEMPLATE_PATH)
    with start_local_aws() as local:
        refs = provision(local.endpoint_url, template)
        yield Stack(local.endpoint_url, template, refs)


def test_stand_in_listens_on_loopback_only(stack: Stack) -> None:
    # Given a started stand-in
    # Then its endpoint is on 127.0.0.1, and the environment points the SDK at it with dummy credentials
    assert stack.endpoint_url.startswith("http://127.0.0.1:")
    env = local_environment(stack.endpoint_url)
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_refs_cover_every_stateful_resource(stack: Stack) -> None:
    # Given the refs provision returned
    # Then every table, key, alias and secret of the template has the value Ref gives in CloudFormation
    assert stack.refs["ClientsTable"] == "mcp-gateway-local-ClientsTable"
    assert stack.refs["SigningKeyAlias"] == "alias/mcp-gateway-local-signing"
    assert stack.refs["UpstreamTokenKeyAlias"] == "alias/mcp-gateway-local-upstream-tokens"
    assert stack.refs["SharedSecret"].startswith("arn:aws:secretsmanager:us-east-1:")
    assert set(stack.refs) == {
        "ClientsTable",
        "GrantsTable",
        "UpstreamTokensTable",
        "AuditTable",
        "RateLimitsTable",
        "SigningKey",
        "SigningKeyAlias",
        "UpstreamTokenKey",
        "UpstreamTokenKeyAlias",
        "SharedSecret",
    }


@pytest.mark.parametrize("table_id", ["ClientsTable", "GrantsTable", "UpstreamTokensTable"])
def test_tables_exist_with_ttl_on_expires_at(stack: Stack, table_id: str) -> None:
    # Given a provisioned table
    dynamodb = stack.dynamodb()
    name = stack.refs[table_id]

    # When its description and TTL settings are read
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]

    # Then it has the template's key schema and billing mode, and TTL is on expires_at
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"
    assert ttl.get("TimeToLiveStatus") == "ENABLED"
    assert ttl.get("AttributeName") == "expires_at"


def test_grants_table_has_the_by_user_and_by_workspace_indexes(stack: Stack) -> None:
    # Given the grants table
    table = stack.dynamodb().describe_table(TableName=stack.refs["GrantsTable"])["Table"]

    # Then its GSIs are there: a user's grants and keys, and a workspace's (the admin console's listings)
    indexes = {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])}
    assert indexes == {
        "by_user": [{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
        "by_workspace": [
            {"AttributeName": "gsi2pk", "KeyType": "HASH"},
            {"AttributeName": "gsi2sk", "KeyType": "RANGE"},
        ],
    }


def test_conditional_put_refuses_a_second_write(stack: Stack) -> None:
    # Given an item written only if absent
    dynamodb = stack.dynamodb()
    item: dict[str, Any] = {"pk": {"S": f"code#{uuid.uuid4()}"}, "sk": {"S": "code"}}
    dynamodb.put_item(TableName=stack.refs["GrantsTable"], Item=item, ConditionExpression="attribute_not_exists(pk)")

    # When the same conditional write is tried again
    with pytest.raises(ClientError) as failure:
        dynamodb.put_item(
            TableName=stack.refs["GrantsTable"], Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    # Then it fails the condition
    assert failure.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_parallel_conditional_updates_have_exactly_one_winner(stack: Stack) -> None:
    # Given an item at generation 0, and 8 threads that each try to move it from 0 to 1
    dynamodb = stack.dynamodb()
    table = stack.refs["GrantsTable"]
    key: dict[str, Any] = {"pk": {"S": f"grant#{uuid.uuid4()}"}, "sk": {"S": "grant"}}
    dynamodb.put_item(TableName=table, Item={**key, "generation": {"N": "0"}})

    def advance(_: int) -> str:
        try:
            stack.dynamodb().update_item(
                TableName=table,
                Key=key,
                UpdateExpression="SET generation = :next",
                ConditionExpression="generation = :current",
                ExpressionAttributeValues={":current": {"N": "0"}, ":next": {"N": "1"}},
            )
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    # When they run at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(advance, range(8)))

    # Then exactly one succeeds, as DynamoDB guarantees (moto alone would let several through)
    assert sorted(outcomes) == ["ConditionalCheckFailedException"] * 7 + ["ok"]


def test_signing_key_signs_raw_messages_verifiable_with_its_public_key(stack: Stack) -> None:
    # Given the signing key, addressed by its alias as the settings may do
    kms = stack.kms()
    message = b"header.payload"

    # When a message is signed with RS256 (MessageType RAW) and the public key is fetched
    signature = kms.sign(
        KeyId=stack.refs["SigningKeyAlias"],
        Message=message,
        MessageType="RAW",
        SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
    )["Signature"]
    public_der = kms.get_public_key(KeyId=stack.refs["SigningKey"])["PublicKey"]

    # Then the signature verifies locally (a wrong message does not)
    public_key = serialization.load_der_public_key(public_der)
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == 2048
    public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, b"tampered", padding.PKCS1v15(), hashes.SHA256())


def test_upstream_key_binds_ciphertexts_to_their_encryption_context(stack: Stack) -> None:
    # Given a value encrypted for one user's upstream credential
    kms = stack.kms()
    context = {"workspace": "demo", "server": "echo", "user": "alice"}
    ciphertext = kms.encrypt(
        KeyId=stack.refs["UpstreamTokenKey"], Plaintext=b"upstream-token", EncryptionContext=context
    )["CiphertextBlob"]

    # When it is decrypted with the same context, then with another user's
    plaintext = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)["Plaintext"]
    with pytest.raises(ClientError) as failure:
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={**context, "user": "bob"})

    # Then only the first succeeds
    assert plaintext == b"upstream-token"
    assert failure.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_shared_secret_has_a_generated_value(stack: Stack) -> None:
    # Given the shared secret
    # When its value is read
    value = stack.secretsmanager().get_secret_value(SecretId=stack.refs["SharedSecret"])["SecretString"]

    # Then it follows GenerateSecretString: 64 characters, no punctuation
    assert len(value) == 64
    assert value.isalnum()


def test_provision_is_idempotent(stack: Stack) -> None:
    # Given a provisioned stand-in
    # When the template is provisioned again on the same stand-in
    again = provision(stack.endpoint_url, stack.template)

    # Then the same resources are reused
    assert again == stack.refs


def test_proxy_environment_resolves_to_real_resources(stack: Stack) -> None:
    # Given the proxy function's environment resolved against the stand-in, as the dev server does
    (proxy,) = (spec for spec in functions(stack.template) if spec.logical_id == "ProxyFunction")
    env = resolve_environment(stack.template, proxy, refs=stack.refs, parameters={"Stage": "dev"})

    # Then every name and id is a live resource
    assert env["GATEWAY_STAGE"] == "dev"
    assert env["GATEWAY_GRANTS_TABLE"] == stack.refs["GrantsTable"]
    assert env["GATEWAY_UPSTREAM_TOKENS_TABLE"] == stack.refs["UpstreamTokensTable"]
    for table in (env["GATEWAY_CLIENTS_TABLE"], env["GATEWAY_GRANTS_TABLE"], env["GATEWAY_UPSTREAM_TOKENS_TABLE"]):
        assert stack.dynamodb().describe_table(TableName=table)["Table"].get("TableStatus") == "ACTIVE"
    signing = stack.kms().describe_key(KeyId=env["GATEWAY_SIGNING_KEY_ID"])["KeyMetadata"]
    assert signing.get("KeySpec") == "RSA_2048"
    upstream = stack.kms().describe_key(KeyId=env["GATEWAY_UPSTREAM_TOKEN_KEY_ID"])["KeyMetadata"]
    assert upstream.get("KeyUsage") == "ENCRYPT_DECRYPT"
    assert stack.secretsmanager().get_secret_value(SecretId=env["GATEWAY_SHARED_SECRET_ID"])["SecretString"]


# --- its own process, keep-alive, state across restarts ---------------------------------------------------------------


def list_tables_request(connection: http.client.HTTPConnection) -> http.client.HTTPResponse:
    """DynamoDB ``ListTables`` as the SDK sends it (moto reads the service from the credential scope)."""
    connection.request(
        "POST",
        "/",
        body=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0",
        },
    )
    response = connection.getresponse()
    response.read()
    return response


def test_the_stand_in_runs_in_a_process_of_its_own_and_keeps_connections_open(stack: Stack) -> None:
    # Given the stand-in, and one HTTP/1.1 connection to it
    host, port = stack.endpoint_url.removeprefix("http://").split(":")
    owners = {holder for holder in _listeners(int(port))}
    assert owners and os.getpid() not in owners  # another process listens there
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        # When two AWS requests are sent over it, one after the other
        first = list_tables_request(connection)
        sock = connection.sock
        second = list_tables_request(connection)

        # Then both are answered on the same connection, which stays open (as DynamoDB's endpoint keeps an SDK's)
        assert first.status == second.status == 200
        assert first.getheader("connection") != "close"
        assert not first.will_close
        assert connection.sock is sock
    finally:
        connection.close()


def _listeners(port: int) -> set[int]:
    from infra.ports import port_holders

    return {holder.pid for holder in port_holders(port) or [] if holder.state == "LISTEN"}


def test_a_stand_in_with_a_state_file_keeps_tables_items_keys_and_secrets_across_a_restart(tmp_path: Path) -> None:
    # Given a stand-in that keeps its state in a file, provisioned, with an item written, a message signed and a
    # value encrypted under an encryption context
    template = load_template(TEMPLATE_PATH)
    state = tmp_path / "local-aws.state"
    with start_local_aws(state=state) as first:
        refs = provision(first.endpoint_url, template)
        before = Stack(first.endpoint_url, template, refs)
        item = {"pk": {"S": "client#kept"}, "sk": {"S": "client"}}
        before.dynamodb().put_item(TableName=refs["ClientsTable"], Item=item)
        signature = before.kms().sign(
            KeyId=refs["SigningKey"], Message=b"kept", MessageType="RAW", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256"
        )["Signature"]
        sealed = before.kms().encrypt(KeyId=refs["UpstreamTokenKey"], Plaintext=b"token", EncryptionContext={"u": "a"})
        secret = before.secretsmanager().get_secret_value(SecretId=refs["SharedSecret"])["SecretString"]

    # When it is stopped and another one starts from the same file (on another port) and is provisioned again
    assert state.stat().st_mode & 0o777 == 0o600
    with start_local_aws(state=state) as second:
        again = provision(second.endpoint_url, template)
        after = Stack(second.endpoint_url, template, again)

        # Then the same resources are there: the item, the key (its key material too: the old signature verifies
        # and the old ciphertext decrypts), the secret's value
        assert again == refs
        assert after.dynamodb().get_item(TableName=refs["ClientsTable"], Key=item).get("Item") == item
        assert after.kms().verify(
            KeyId=refs["SigningKey"],
            Message=b"kept",
            MessageType="RAW",
            Signature=signature,
            SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256",
        )["SignatureValid"]
        decrypted = after.kms().decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext={"u": "a"})
        assert decrypted["Plaintext"] == b"token"
        assert after.secretsmanager().get_secret_value(SecretId=refs["SharedSecret"])["SecretString"] == secret


def test_the_stand_in_saves_its_state_when_the_process_group_gets_sigterm(tmp_path: Path) -> None:
    # Given a stand-in keeping its state, with a table made
    state = tmp_path / "local-aws.state"
    local = start_local_aws(state=state)
    try:
        stack = Stack(local.endpoint_url, {}, {})
        stack.dynamodb().create_table(
            TableName="kept",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        port = local.port

        # When it gets SIGTERM (as every process of `make dev`'s group does when the terminal closes)
        os.kill(local.pid, signal.SIGTERM)
        local.stop()
    finally:
        local.stop()

    # Then it saved first, and released its port
    sockets = tcp_sockets(port) or []
    assert not [item for item in sockets if item.state == "LISTEN"]
    with start_local_aws(state=state) as again:
        assert "kept" in Stack(again.endpoint_url, {}, {}).dynamodb().list_tables()["TableNames"]


def test_the_stand_in_counts_the_calls_it_serves_by_operation(stack: Stack) -> None:
    # Given the calls counted so far
    from infra.local_aws import store_calls

    before = store_calls(stack.endpoint_url)

    # When a table is described twice and a key once
    stack.dynamodb().describe_table(TableName=stack.refs["ClientsTable"])
    stack.dynamodb().describe_table(TableName=stack.refs["ClientsTable"])
    stack.kms().describe_key(KeyId=stack.refs["SigningKey"])

    # Then the stand-in counted them, by operation (what a benchmark reads from another process)
    after = store_calls(stack.endpoint_url)
    assert after["DynamoDB_20120810.DescribeTable"] - before.get("DynamoDB_20120810.DescribeTable", 0) == 2
    assert after["TrentService.DescribeKey"] - before.get("TrentService.DescribeKey", 0) == 1
