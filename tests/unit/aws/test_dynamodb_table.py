"""The stores' attribute-value codec (gateway.aws.dynamodb_table): what a record stores is what it reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from gateway.aws.dynamodb_table import deserialize, from_item, serialize, to_item


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("1767225600", 1767225600),
        ("0", 0),
        ("-3", -3),
        ("2.50", 2.5),
        ("1E+2", 100),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_numbers_read_as_the_python_numbers_they_were(stored: str, read: int | float) -> None:
    value = deserialize({"N": stored})
    assert value == read
    assert type(value) is type(read)


@dataclass(frozen=True)
class _Record:
    name: str
    scopes: tuple[str, ...]
    expires_at: int | None
    note: str = "none"
    tags: list[str] = field(default_factory=list)


def test_a_record_round_trips_and_absent_required_fields_read_as_none() -> None:
    record = _Record("a", ("read", "write"), None, tags=["x"])
    item = to_item(record, pk="record#a")
    assert "expires_at" not in item  # None is not stored
    assert from_item(_Record, item) == record  # the key attribute is not a field: ignored
    assert from_item(_Record, {"name": serialize("b"), "scopes": serialize([]), "extra": serialize(Decimal(1))}) == (
        _Record("b", (), None)
    )
