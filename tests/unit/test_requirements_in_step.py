"""What `sam build` installs names the same packages as pyproject.toml: functions/requirements.txt (every function's
artifact) and each function's own layer (layers/<name>/requirements.txt: FastAPI for the admin function only), and
a package of a function's own layer is imported by that function's modules alone."""

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


def _lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def _requirements_txt() -> list[str]:
    return _lines(ROOT / "functions" / "requirements.txt")


# Each function's own layer (template.yaml: a LayerVersion that only it names) and the modules that may use it.
LAYERS = {"admin-console": ("gateway.web.admin", "admin_console")}


def _layer_requirements() -> dict[str, list[str]]:
    return {name: _lines(ROOT / "layers" / name / "requirements.txt") for name in LAYERS}


def test_runtime_requirements_match_project_dependencies() -> None:
    # Given the project's declared runtime dependencies and the Lambda build's requirements
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    build = _requirements_txt() + [line for lines in _layer_requirements().values() for line in lines]

    # When both are reduced to package names with their extras
    # Then they name the same packages, once each
    assert _names(build) == _names(project)
    assert len(build) == len(_names(build))


def test_a_functions_own_layer_is_imported_by_that_function_alone() -> None:
    import ast

    # Given the packages of each function's own layer
    for layer, owners in LAYERS.items():
        imports = {IMPORT_NAMES[name] for name in _names(_layer_requirements()[layer])}
        # Then no module outside the function's own imports them (the other artifacts do not ship them)
        for path in (ROOT / "functions").rglob("*.py"):
            module = ".".join(path.relative_to(ROOT / "functions").with_suffix("").parts)
            if module.startswith(owners):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                assert not {name.split(".")[0] for name in names} & imports, f"{module} imports {imports}"


def test_requirements_txt_has_no_pip_options() -> None:
    # Given the build's requirements
    # Then each line is a plain requirement (sam build passes the file to pip; options would change the index)
    for line in _requirements_txt():
        assert not line.startswith("-"), line


# The module each runtime distribution is imported as.
IMPORT_NAMES = {
    "mangum": "mangum",
    "starlette": "starlette",
    "pydantic": "pydantic",
    "pyyaml": "yaml",
    "httpx": "httpx",
    "pyjwt": "jwt",
    "cryptography": "cryptography",
    "boto3": "boto3",
    "aws-lambda-powertools": "aws_lambda_powertools",
    "aws-xray-sdk": "aws_xray_sdk",
    "jinja2": "jinja2",
    "python-multipart": "multipart",
    "sniffio": "sniffio",
    "uvicorn": "uvicorn",
    "fastapi": "fastapi",
}
# Declared for another package that imports it only when a feature is used, so no module of ours names it.
NEEDED_BY_ANOTHER = {
    "aws-xray-sdk": "Powertools' Tracer, when tracing is on (template parameter Tracing)",
    "python-multipart": "Starlette's Request.form(), which the sign-in, consent and token endpoints call",
    "sniffio": "httpcore, which detects the running async library with it (anyio 4 no longer brings it)",
}


def _imported_top_levels() -> set[str]:
    import ast

    found: set[str] = set()
    for path in (ROOT / "functions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_used() -> None:
    # Given what the Lambda build installs into every function's artifact
    declared = set(_names(_requirements_txt() + [line for lines in _layer_requirements().values() for line in lines]))
    assert declared <= set(IMPORT_NAMES), f"name the import of {declared - set(IMPORT_NAMES)} here"

    # Then each is imported by the functions' code, or needed by a package that is (and says which)
    imported = _imported_top_levels()
    unused = sorted(name for name in declared if IMPORT_NAMES[name] not in imported and name not in NEEDED_BY_ANOTHER)
    assert unused == [], f"declared for the functions but imported by none of them: {unused}"
