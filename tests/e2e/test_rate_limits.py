"""Rate limits end to end, on a gateway of their own (the session's dev server runs with limits far above what
the suite sends from its one address): a registration flood from one address gets ``429`` with ``Retry-After``
after the limit (the template's default, 20 a minute), and the clients table holds exactly the limit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest

from infra.dev import EXAMPLE_CONFIG, TEMPLATE_PATH, gateway_environment
from infra.devserver import REPO_ROOT, start_dev_server
from infra.local_aws import local_environment, provision, start_local_aws
from infra.template import load_template

pytestmark = [pytest.mark.e2e]

HOST = "127.0.0.1"
REGISTRATION = {"client_name": "flood", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}


def serve(port: str) -> None:
    """Entry point of the gateway subprocess: moto with the template's resources and the dev server on ``port``
    with the template's default limits, until stdin closes. Prints where both are."""
    template = load_template(TEMPLATE_PATH)
    aws = start_local_aws()
    try:
        refs = provision(aws.endpoint_url, template)
        env = gateway_environment(
            template, endpoint_url=aws.endpoint_url, refs=refs, public_base_url=f"http://{HOST}:{port}",
            config_path=EXAMPLE_CONFIG,
        )  # fmt: skip
        server = start_dev_server(template, env, host=HOST, port=int(port))
        try:
            print("ready " + json.dumps({"url": server.url, "aws": aws.endpoint_url, "refs": refs}), flush=True)
            sys.stdin.read()
        finally:
            server.stop()
    finally:
        aws.stop()


@dataclass(frozen=True)
class LimitedGateway:
    url: str
    aws: str
    refs: dict[str, str]


@pytest.fixture(scope="module")
def limited_gateway(free_port: object) -> Iterator[LimitedGateway]:
    port = free_port()  # type: ignore[operator]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "AWS_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "functions"), str(REPO_ROOT)])
    runner = "import sys; from tests.e2e.test_rate_limits import serve; serve(sys.argv[1])"
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", runner, str(port)], cwd=REPO_ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.startswith("ready "):
                errors.seek(0)
                pytest.fail(f"the gateway did not start: {line!r} {errors.read().decode(errors='replace')[-2000:]}")
            started = json.loads(line.removeprefix("ready "))
            yield LimitedGateway(started["url"], started["aws"], started["refs"])
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stored_clients(gateway: LimitedGateway) -> int:
    env = local_environment(gateway.aws)
    dynamodb = boto3.session.Session().client(
        "dynamodb", endpoint_url=gateway.aws, region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )  # fmt: skip
    count: int = dynamodb.scan(TableName=gateway.refs["ClientsTable"], Select="COUNT", ConsistentRead=True)["Count"]
    return count


def test_a_registration_flood_from_one_address_is_refused_after_the_limit_and_stores_nothing_more(
    limited_gateway: LimitedGateway,
) -> None:
    # Given a gateway with the default limit of 20 registrations a minute per address
    url = f"{limited_gateway.url}/demo/echo/register"

    # When one address sends 30 registrations
    with httpx.Client(timeout=30) as http:
        responses = [http.post(url, json=REGISTRATION) for _ in range(30)]

    # Then the first 20 are registered and the rest get 429, an OAuth error and a Retry-After within the minute
    statuses = [response.status_code for response in responses]
    assert statuses[:20] == [201] * 20, statuses
    refused = responses[20:]
    # (a minute boundary within the flood opens a new window: at most one more batch of 201s then)
    assert all(response.status_code in (201, 429) for response in refused)
    assert statuses.count(429) >= 10 - statuses[20:].count(201)
    for response in (r for r in refused if r.status_code == 429):
        assert response.json()["error"] == "temporarily_unavailable"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["cache-control"] == "no-store"

    # And the clients table holds exactly the registrations that were answered 201
    assert stored_clients(limited_gateway) == statuses.count(201)
