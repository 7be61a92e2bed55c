"""Reading the configuration file: validated from YAML, or rebuilt from the validated form ``make build`` ships
beside it (see the package's docstring)."""

from __future__ import annotations

import hashlib
import json
import os
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import ValidationError

from gateway.config.fields import ConfigModel
from gateway.config.workspaces import GatewayConfig


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid; the message says where and why."""


def parse_config(data: object, source: str = "<config>") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as error:
        from gateway.config.messages import describe  # only a bad file pays for it

        lines = "\n".join(describe(error, GatewayConfig, data))
        raise ConfigError(f"invalid gateway configuration {source}:\n{lines}") from None


def load_config(path: str | Path) -> GatewayConfig:
    """The configuration in the YAML file at ``path``: from its validated form (:func:`validated_path`) when that
    was made from this very file by these models, else validated here."""
    path = Path(path)
    text = _read(path)
    return _validated_form(path, _fingerprint(text)) or _validate_yaml(text, path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read gateway configuration {path}: {error.strerror}") from None


def _validate_yaml(text: str, path: Path) -> GatewayConfig:
    import yaml

    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise ConfigError(f"gateway configuration {path} is not valid YAML: {_yaml_problem(error)}") from None
    return parse_config(data, str(path))


def _yaml_problem(error: Exception) -> str:
    """The YAML error with the line and column of the file (PyYAML names a string it parsed "<unicode string>")."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return problem
    context = getattr(error, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    snippet = mark.get_snippet() if hasattr(mark, "get_snippet") else None
    text = f"{where}: {problem}" + (f" ({context})" if context else "")
    return f"{text}\n{snippet}" if snippet else text


# --- the validated form shipped beside the file -------------------------------------------------------------

VALIDATED_SUFFIX = ".validated.json"
# The modules whose source a validated form depends on: a change to any of them invalidates it.
MODEL_MODULES = ("fields", "identity", "servers", "workspaces", "loading")


def validated_path(path: str | Path) -> Path:
    """Where the validated form of the configuration file ``path`` is kept: ``gateway.yaml.validated.json``."""
    path = Path(path)
    return path.with_name(path.name + VALIDATED_SUFFIX)


def _fingerprint(text: str) -> str | None:
    """What a validated form must have been made from: this text and the source of the modules that define the models
    and rebuild them. None when a source cannot be read (then nothing validated earlier is trusted)."""
    package = Path(__file__).parent
    try:
        models = b"\0".join((package / f"{name}.py").read_bytes() for name in MODEL_MODULES)
    except OSError:
        return None
    return hashlib.sha256(models + b"\0" + text.encode()).hexdigest()


def compile_config(path: str | Path) -> Path:
    """Validate the file at ``path`` and write its validated form beside it (:func:`validated_path`, replaced
    atomically); returns where. Raises :class:`ConfigError` for a bad file."""
    path = Path(path)
    text = _read(path)
    config = _validate_yaml(text, path)
    document = {"fingerprint": _fingerprint(text), "config": config.model_dump(mode="json", exclude_unset=True)}
    target = validated_path(path)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    temporary.replace(target)
    return target


def _validated_form(path: Path, fingerprint: str | None) -> GatewayConfig | None:
    if fingerprint is None:
        return None
    try:
        document = json.loads(validated_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("fingerprint") != fingerprint:
        return None
    config: GatewayConfig = _rebuild(GatewayConfig, document["config"])
    return config


def _rebuild(annotation: Any, value: Any) -> Any:
    """``value`` (a part of ``model_dump(mode="json", exclude_unset=True)`` of a valid configuration) as the
    ``annotation`` it was dumped from: the same models with the same fields set, built without validating."""
    if not isinstance(value, (dict, list)) or annotation is Any:
        return value  # a scalar, or free-form JSON (an inline JWK Set) kept as it was dumped
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _rebuild(arguments[0], value)
    if origin is Union or origin is types.UnionType:
        return _rebuild(_member_for(arguments, value), value)
    if origin is list and isinstance(value, list):
        return [_rebuild(arguments[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: _rebuild(arguments[1], item) for key, item in value.items()}
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel) and isinstance(value, dict):
        fields = annotation.model_fields
        values = {name: _rebuild(fields[name].annotation, item) for name, item in value.items()}
        for name, field in fields.items():
            factory = field.default_factory
            if name not in values and isinstance(factory, type) and issubclass(factory, ConfigModel):
                values[name] = _rebuild(factory, {})  # calling the factory would validate (and build a validator)
        return annotation.model_construct(set(value), **values)
    raise TypeError(f"cannot rebuild {annotation!r} from {type(value).__name__}")


def _member_for(members: tuple[Any, ...], value: dict[str, Any] | list[Any]) -> Any:
    """The member of a union that ``value`` was dumped from: the one that is not None, or among models the one
    whose ``type`` (the discriminator of every union of models here) is ``value``'s."""
    options = [member for member in members if member is not type(None)]
    if len(options) == 1:
        return options[0]
    for option in options:
        if isinstance(value, dict) and value.get("type") in get_args(option.model_fields["type"].annotation):
            return option
    raise TypeError(f"no member of {members!r} fits the value")
