"""The README and docs/ describe the stack ``template.yaml`` actually creates: the counts of functions, tables and KMS
keys, the resources table and the outputs of docs/deploy.md, the tables kept when the stack is deleted.

Every expected number and name is derived from the template, so adding a function or a table (issue 26 adds a sixth
function) fails here until the docs say so. Also: the README's configuration is examples/gateway.yaml as it is, and
the commands the docs show run as written from a fresh clone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from infra.template import load_template

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEPLOY = ROOT / "docs" / "deploy.md"
STORAGE = ROOT / "docs" / "storage.md"
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == kind}


def number_before(text: str, noun: str) -> int:
    """The number written (as a word or digits) just before ``noun``, e.g. "five small Lambda functions"."""
    match = re.search(rf"\b([A-Za-z]+|\d+) {noun}", text)
    assert match, f"no count before {noun!r}"
    word = match.group(1).lower()
    return int(word) if word.isdigit() else NUMBER_WORDS.index(word)


def section(text: str, heading: str) -> str:
    """The Markdown section under ``heading`` (up to the next heading of the same or a higher level, outside code)."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    start = lines.index(heading)
    fenced = False
    for end in range(start + 1, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def commands_shown(text: str) -> list[str]:
    """What the text tells a reader to type: the lines of ``sh`` code blocks and the commands in the first cell of a
    table row (prose that mentions a command by name is not a command to run)."""
    shown, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = line.strip() in ("```sh", "```console")
            continue
        if fenced:
            shown.append(line.removeprefix("$ "))
        elif line.startswith("| `"):
            shown += re.findall(r"`([^`]+)`", line.split("|")[1])
    return shown


def test_the_readme_counts_the_functions_tables_and_keys_of_the_template(template: dict[str, Any]) -> None:
    readme = README.read_text(encoding="utf-8")
    assert number_before(readme, "small Lambda functions") == len(
        resources_of_type(template, "AWS::Serverless::Function")
    )
    assert number_before(readme, "DynamoDB tables") == len(resources_of_type(template, "AWS::DynamoDB::Table"))
    assert number_before(readme, "KMS keys") == len(resources_of_type(template, "AWS::KMS::Key"))


def test_docs_storage_counts_and_names_every_table(template: dict[str, Any]) -> None:
    storage = STORAGE.read_text(encoding="utf-8")
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    assert number_before(storage, "DynamoDB tables") == len(tables)
    first_paragraph = storage.split("\n\n")[1]
    for logical_id in tables:  # ClientsTable -> `clients`, UpstreamTokensTable -> `upstream_tokens`
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix("Table")).lower()
        assert f"`{snake}`" in first_paragraph, logical_id


def test_docs_deploy_lists_every_function_and_table_the_template_creates(template: dict[str, Any]) -> None:
    created = section(DEPLOY.read_text(encoding="utf-8"), "## What gets created")
    for kind in ("AWS::Serverless::Function", "AWS::DynamoDB::Table", "AWS::KMS::Key"):
        for logical_id in resources_of_type(template, kind):
            assert f"`{logical_id}`" in created, f"{logical_id} is missing from 'What gets created'"


def test_docs_deploy_lists_every_output_of_the_template(template: dict[str, Any]) -> None:
    outputs = section(DEPLOY.read_text(encoding="utf-8"), "## 5. Outputs and the route URLs")
    table = "\n".join(line for line in outputs.splitlines() if line.startswith("|"))
    documented = set(re.findall(r"`([A-Za-z]+)`", table)) - {"output", "value"}
    assert set(template["Outputs"]) <= documented, set(template["Outputs"]) - documented


def test_docs_deploy_lists_every_parameter_of_the_template_with_its_default(template: dict[str, Any]) -> None:
    deploy = section(DEPLOY.read_text(encoding="utf-8"), "## 4. Deploy")
    rows = [line.split("|") for line in deploy.splitlines() if line.startswith("| `")]
    documented = {name: row[2].strip() for row in rows for name in re.findall(r"`([A-Za-z]+)`", row[1])}
    for name, spec in template["Parameters"].items():
        assert name in documented, f"parameter {name} is missing from docs/deploy.md"
        default = str(spec.get("Default", ""))
        shown = documented[name]
        assert (f"`{default}`" in shown) if default else shown == "empty", f"{name}: template {default!r}, docs {shown}"


def test_docs_deploy_counts_the_tables_kept_when_the_stack_is_deleted(template: dict[str, Any]) -> None:
    removing = section(DEPLOY.read_text(encoding="utf-8"), "## Removing the stack")
    tables = resources_of_type(template, "AWS::DynamoDB::Table")
    kept = [name for name, spec in tables.items() if spec.get("DeletionPolicy") == "Retain"]
    assert number_before(removing, r"other tables \([^)]*\) are \*\*kept\*\*") == len(kept)
    assert len(tables) - len(kept) == 1 and "the rate-limits table" in removing  # the one deleted with the stack


def test_the_readme_shows_examples_gateway_yaml_as_it_is() -> None:
    readme = README.read_text(encoding="utf-8")
    example = (ROOT / "examples" / "gateway.yaml").read_text(encoding="utf-8")
    configuration = section(readme, "## Configuration")
    blocks = re.findall(r"```yaml\n(.*?)```", configuration, re.DOTALL)
    assert example in blocks


@pytest.mark.parametrize("path", [README, *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_commands_in_the_docs_run_as_written_from_a_fresh_clone(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    # The gateway package is installed in .venv only: a bare `python -m gateway...` finds no module.
    assert not re.search(r"(?<![/\w])python3? -m gateway\.", text), "use .venv/bin/python -m gateway..."
    # `make deploy` needs CONFIG= (it refuses to run without one).
    for command in commands_shown(text):
        if command.startswith("make deploy"):
            assert "CONFIG=" in command, f"{command!r} in {path.name}"
