"""The direct DynamoDB client (gateway.aws.dynamodb_direct) signs as botocore signs and fails as botocore fails.

Its answers and conditional writes are run against moto over HTTP by the storage contract
(tests/integration/test_storage_contract.py, parameter ``dynamodb-direct``). Here: the SigV4 signature is the one
botocore's own signer computes for the same request (moto does not check signatures; AWS does), and the faults a
local stand-in never gives — throttling, 5xx, a kept connection the server dropped, nothing listening — are played
by a real HTTP server on 127.0.0.1 that answers what each test scripts, and end as the stores' ``StorageError``.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.auth
import botocore.session
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from gateway.aws.dynamodb_direct import MAX_ATTEMPTS, DirectDynamoDB, direct_client, signed_headers
from gateway.aws.dynamodb_grants import DynamoGrantStore
from gateway.settings import Settings, SettingsError
from gateway.storage.ports import StorageError

AMZ_DATE = "20261207T101530Z"


@pytest.mark.parametrize("token", [None, "session-token/with+odd=chars"])
@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:4566", "https://dynamodb.eu-west-1.amazonaws.com"])
def test_the_signature_is_the_one_botocore_computes(
    token: str | None, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a GetItem request and credentials, signed by botocore's SigV4 signer at a fixed time
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = json.dumps({"TableName": "grants", "Key": {"pk": {"S": "grant#g1"}, "sk": {"S": "grant"}}}).encode()
    target = "DynamoDB_20120810.GetItem"
    fixed = datetime.datetime(2026, 12, 7, 10, 15, 30, tzinfo=datetime.UTC).replace(tzinfo=None)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    request = AWSRequest(
        "POST", endpoint + "/", data=body,
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target},
    )  # fmt: skip
    botocore.auth.SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(request)

    # When the direct client signs the same request
    host = endpoint.split("://", 1)[1]
    ours = signed_headers(
        host=host, target=target, body=body, access_key=credentials.access_key, secret_key=credentials.secret_key,
        token=token, region="eu-west-1", amz_date=AMZ_DATE,
    )  # fmt: skip

    # Then the Authorization header (credential scope, signed headers and signature) is botocore's
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"] == AMZ_DATE
    assert ours.get("x-amz-security-token") == request.headers.get("X-Amz-Security-Token")


# --- faults, played by a real HTTP server ---------------------------------------------------------------------


@dataclass
class Script:
    """What the server answers to each request in turn (status, JSON body; or None: drop the connection)."""

    answers: list[tuple[int, dict[str, Any]] | None]
    seen: list[dict[str, str]] = field(default_factory=list)
    connections: set[tuple[str, int]] = field(default_factory=set)
    """The client's end (address, port) of each connection a request came on: a new connection has a new port."""
    close_after_each: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.script.seen.append({name.lower(): value for name, value in self.headers.items()})
        self.script.connections.add(self.client_address)
        answer = self.script.answers.pop(0) if self.script.answers else (200, {})
        if answer is None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, document = answer
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.script.close_after_each:
            self.close_connection = True  # without saying so: the client finds out on its next request

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script) -> str:
        handler = type("Handler", (_Handler,), {"script": script})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def direct(endpoint: str) -> DirectDynamoDB:
    session = botocore.session.get_session()
    client = session.create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    frozen = Credentials("test", "test")
    return DirectDynamoDB(client, credentials=lambda: frozen, sleep=lambda seconds: None)


ERROR_TYPE = "com.amazonaws.dynamodb.v20120810#"
THROTTLED = (400, {"__type": ERROR_TYPE + "ProvisionedThroughputExceededException", "message": "slow"})
GRANT_ITEM = {"Item": {"pk": {"S": "grant#g1"}, "sk": {"S": "grant"}, "status": {"S": "active"}}}


def test_throttling_is_retried_and_the_answer_returned(scripted: Callable[[Script], str]) -> None:
    # Given DynamoDB throttling the first two attempts
    script = Script([THROTTLED, THROTTLED, (200, GRANT_ITEM)])
    client = direct(scripted(script))

    # When the client reads an item
    answer = client.get_item(TableName="grants", Key={"pk": {"S": "grant#g1"}, "sk": {"S": "grant"}})

    # Then the third attempt's answer comes back, each attempt signed and aimed at GetItem
    assert answer == GRANT_ITEM
    assert len(script.seen) == 3
    assert {seen["x-amz-target"] for seen in script.seen} == {"DynamoDB_20120810.GetItem"}
    assert all(seen["authorization"].startswith("AWS4-HMAC-SHA256 Credential=test/") for seen in script.seen)


def test_a_service_that_keeps_failing_is_a_storage_error(scripted: Callable[[Script], str]) -> None:
    # Given DynamoDB answering 500 to every attempt
    failing = (500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "boom"})
    script = Script([failing] * MAX_ATTEMPTS)
    store = DynamoGrantStore(direct(scripted(script)), "grants")  # type: ignore[arg-type]

    # When the grant store reads a grant, Then it fails with the port's error after the retries
    with pytest.raises(StorageError):
        store.get_grant("g1")
    assert len(script.seen) == MAX_ATTEMPTS


def test_an_error_answer_is_botocores_client_error_with_the_code(scripted: Callable[[Script], str]) -> None:
    # Given DynamoDB refusing a conditional write
    refused = (400, {"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "message": "no"})
    client = direct(scripted(Script([refused])))

    # When the client writes, Then botocore's ClientError names the code, not retried
    with pytest.raises(ClientError) as raised:
        client.put_item(TableName="t", Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert raised.value.operation_name == "PutItem"


def test_a_kept_connection_the_server_dropped_is_replaced_at_once(scripted: Callable[[Script], str]) -> None:
    # Given a server that closes every connection after answering, without saying so
    script = Script([(200, GRANT_ITEM), (200, GRANT_ITEM)], close_after_each=True)
    client = direct(scripted(script))
    key = {"pk": {"S": "grant#g1"}, "sk": {"S": "grant"}}
    assert client.get_item(TableName="grants", Key=key) == GRANT_ITEM

    # When the client reads again on its kept connection
    answer = client.get_item(TableName="grants", Key=key)

    # Then it notices the dropped connection and reads on a new one: two requests served, on two connections
    assert answer == GRANT_ITEM
    assert len(script.seen) == 2 and len(script.connections) == 2


def test_a_connection_dropped_mid_request_is_retried(scripted: Callable[[Script], str]) -> None:
    # Given a server that drops the connection instead of answering the first request
    script = Script([None, (200, GRANT_ITEM)])
    client = direct(scripted(script))

    # When the client reads, Then the retry answers
    assert client.get_item(TableName="grants", Key={"pk": {"S": "grant#g1"}, "sk": {"S": "grant"}}) == GRANT_ITEM


def test_nothing_listening_is_a_storage_error() -> None:
    # Given a port on 127.0.0.1 that nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = DynamoGrantStore(direct(f"http://127.0.0.1:{port}"), "grants")  # type: ignore[arg-type]

    # When the grant store reads, Then it is the port's error
    with pytest.raises(StorageError):
        store.get_grant("g1")


def test_other_operations_go_through_botocore_and_a_proxy_keeps_botocore_for_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = botocore.session.get_session()
    client = session.create_client(
        "dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip
    wrapped = direct_client(client, session)
    assert isinstance(wrapped, DirectDynamoDB)
    assert wrapped.transact_write_items == client.transact_write_items  # type: ignore[attr-defined]  # botocore's
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert direct_client(client, session) is client


def test_the_setting_names_the_client() -> None:
    assert Settings(config="x").dynamodb_client == "direct"
    assert Settings.from_environ({"GATEWAY_CONFIG": "x", "GATEWAY_DYNAMODB_CLIENT": "botocore"}).dynamodb_client == (
        "botocore"
    )
    with pytest.raises(SettingsError, match="GATEWAY_DYNAMODB_CLIENT"):
        Settings(config="x", dynamodb_client="boto")
