"""The local store's narrowed queries (``infra/moto_queries.py``) answer exactly what moto itself answers.

The same random workload (puts, in-place updates that move items between index partitions, deletes, and table and
index queries with every key condition, both directions, ``Limit``, filters and paging) runs against the local
stand-in (moto's server in a process of its own, which installs the narrowing) and against moto in this process,
which does not; every page, ``LastEvaluatedKey``, ``Count`` and ``ScannedCount`` must be the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import boto3
from moto import mock_aws

from infra.local_aws import local_environment, start_local_aws

TABLE = "narrowed"
INDEXES = {"table": "pk", "by_user": "user", "by_number": "group", "by_group": "group"}


def _create(client: Any) -> None:
    def index(name: str, hash_key: str, range_key: str | None, projection: str) -> dict[str, Any]:
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": projection}}

    client.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in (("pk", "S"), ("sk", "S"), ("user", "S"), ("number", "N"), ("group", "S"))
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            index("by_user", "user", "sk", "ALL"),
            index("by_number", "group", "number", "KEYS_ONLY"),
            index("by_group", "group", None, "ALL"),
        ],
    )


def _workload(client: Any, seed: int, steps: int) -> list[Any]:
    pick = random.Random(seed)
    answers: list[Any] = []

    def put() -> None:
        item = {"pk": {"S": f"p{pick.randrange(3)}"}, "sk": {"S": f"{pick.randrange(200):04d}#{pick.choice('ab')}"}}
        item["x"] = {"N": str(pick.randrange(5))}
        for name, value, chance in (
            ("user", {"S": f"u{pick.randrange(3)}"}, 0.7),
            ("number", {"N": str(pick.randrange(20))}, 0.6),
            ("group", {"S": f"g{pick.randrange(2)}"}, 0.8),
        ):
            if pick.random() < chance:
                item[name] = value
        client.put_item(TableName=TABLE, Item=item)

    def key(suffix: str) -> dict[str, Any]:
        return {"pk": {"S": f"p{pick.randrange(3)}"}, "sk": {"S": f"{pick.randrange(200):04d}#{suffix}"}}

    for _ in range(200):
        put()
    for _ in range(steps):
        roll = pick.random()
        if roll < 0.1:
            put()
        elif roll < 0.15:
            client.update_item(
                TableName=TABLE, Key=key("a"), UpdateExpression="SET #u = :u, #n = :n",
                ExpressionAttributeNames={"#u": "user", "#n": "number"},
                ExpressionAttributeValues={":u": {"S": f"u{pick.randrange(3)}"}, ":n": {"N": str(pick.randrange(20))}},
            )  # fmt: skip
        elif roll < 0.18:
            client.delete_item(TableName=TABLE, Key=key("b"))
        else:
            answers.append(_pages(client, _query(pick)))
    return answers


def _query(pick: random.Random) -> dict[str, Any]:
    which = pick.choice(list(INDEXES))
    partitions = {"table": f"p{pick.randrange(3)}", "by_user": f"u{pick.randrange(3)}"}
    partition = partitions.get(which, f"g{pick.randrange(2)}")
    names = {"#h": INDEXES[which]}
    values: dict[str, Any] = {":h": {"S": partition}}
    condition = "#h = :h"
    make: Callable[[], dict[str, str]]
    if which == "by_number":
        names["#r"] = "number"
        make = lambda: {"N": str(pick.randrange(22))}  # noqa: E731
    else:
        names["#r"] = "sk"
        make = lambda: {"S": f"{pick.randrange(210):04d}"}  # noqa: E731
    operator = "none" if which == "by_group" else pick.choice(["none", "between", "begins", "lt", "ge", "eq"])
    if operator == "between":
        low, high = sorted([make(), make()], key=lambda v: float(v["N"]) if "N" in v else v["S"])
        condition += " AND #r BETWEEN :a AND :b"
        values.update({":a": low, ":b": high})
    elif operator == "begins" and which != "by_number":
        condition += " AND begins_with(#r, :a)"
        values[":a"] = {"S": f"{pick.randrange(20):03d}"}
    elif operator in ("lt", "ge", "eq"):
        condition += {"lt": " AND #r < :a", "ge": " AND #r >= :a", "eq": " AND #r = :a"}[operator]
        values[":a"] = make()
    if "#r" not in condition:
        del names["#r"]
    query: dict[str, Any] = {
        "TableName": TABLE, "KeyConditionExpression": condition, "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values, "ScanIndexForward": pick.random() < 0.5,
    }  # fmt: skip
    if which != "table":
        query["IndexName"] = which
    if pick.random() < 0.7:
        query["Limit"] = pick.randrange(1, 30)
    if pick.random() < 0.3:
        query["FilterExpression"] = "x < :x"
        values[":x"] = {"N": "3"}
    return query


def _pages(client: Any, query: dict[str, Any]) -> list[Any]:
    pages = []
    while True:
        page = client.query(**query)
        pages.append((page["Items"], page.get("LastEvaluatedKey"), page["Count"], page["ScannedCount"]))
        if "LastEvaluatedKey" not in page:
            return pages
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_the_local_store_answers_queries_as_moto_does() -> None:
    with start_local_aws() as aws:
        env = local_environment(aws.endpoint_url)
        stand_in = boto3.session.Session().client(
            "dynamodb", endpoint_url=aws.endpoint_url, region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        _create(stand_in)
        narrowed = _workload(stand_in, seed=5, steps=160)
    with mock_aws():
        plain = boto3.session.Session().client("dynamodb", region_name=env["AWS_REGION"])
        _create(plain)
        expected = _workload(plain, seed=5, steps=160)
    assert sum(len(pages) for pages in expected) > len(expected)  # some queries paged
    assert narrowed == expected
