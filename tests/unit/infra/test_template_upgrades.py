"""template.yaml can upgrade a stack made before the audit table had its indexes: DynamoDB, so CloudFormation, adds
one global secondary index per table update (docs/deploy.md, "Updating")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.template import load_template, parameter_values, resolve

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


def _audit_table(audit_indexes: str | None) -> dict[str, Any]:
    template = load_template(TEMPLATE)
    overrides = {} if audit_indexes is None else {"AuditIndexes": audit_indexes}
    properties: dict[str, Any] = resolve(
        template["Resources"]["AuditTable"]["Properties"],
        refs={},
        parameters=parameter_values(template, overrides),
        conditions=template["Conditions"],
    )
    return properties


@pytest.mark.parametrize(
    ("audit_indexes", "expected"),
    [("1", ["by_user"]), ("2", ["by_user", "by_client"]), ("3", ["by_user", "by_client", "by_kind"])],
)
def test_each_upgrade_step_adds_one_index_with_exactly_the_attributes_its_keys_use(
    audit_indexes: str, expected: list[str]
) -> None:
    table = _audit_table(audit_indexes)
    indexes = table["GlobalSecondaryIndexes"]
    assert [index["IndexName"] for index in indexes] == expected
    # CloudFormation refuses attribute definitions that no key schema uses, and key attributes not defined
    keys = {
        key["AttributeName"] for schema in [table["KeySchema"], *(i["KeySchema"] for i in indexes)] for key in schema
    }
    assert {attribute["AttributeName"] for attribute in table["AttributeDefinitions"]} == keys


def test_a_new_stack_gets_every_index() -> None:
    assert [index["IndexName"] for index in _audit_table(None)["GlobalSecondaryIndexes"]] == [
        "by_user",
        "by_client",
        "by_kind",
    ]
