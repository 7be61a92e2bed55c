"""functions/requirements.txt (what `sam build` installs) names the same packages as pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _names(requirements: list[str]) -> dict[str, frozenset[str]]:
    """Canonical package name -> its extras (so `PyJWT[crypto]` and `pyjwt` differ)."""
    parsed = [Requirement(line) for line in requirements]
    return {canonicalize_name(req.name): frozenset(req.extras) for req in parsed}


def _requirements_txt() -> list[str]:
    lines = (ROOT / "functions" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def test_runtime_requirements_match_project_dependencies() -> None:
    # Given the project's declared runtime dependencies and the Lambda build's requirements
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    build = _requirements_txt()

    # When both are reduced to package names with their extras
    # Then they name the same packages, once each
    assert _names(build) == _names(project)
    assert len(build) == len(_names(build))


def test_requirements_txt_has_no_pip_options() -> None:
    # Given the build's requirements
    # Then each line is a plain requirement (sam build passes the file to pip; options would change the index)
    for line in _requirements_txt():
        assert not line.startswith("-"), line
