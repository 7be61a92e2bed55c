"""The test tree has no packages (pytest imports each test module by its file name): two test files with one name
in different directories stop the whole run at collection, which a run of one directory does not show."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_name_of_its_own() -> None:
    # Given every test module of the suite
    names = Counter(path.name for path in TESTS.rglob("test_*.py") if "node_modules" not in path.parts)

    # Then no two share a file name
    assert not [name for name, count in names.items() if count > 1]
