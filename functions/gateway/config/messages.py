"""Configuration errors that point at the fix (issue "The first hour", item 3).

pydantic's own messages say what is wrong in its terms ("Extra inputs are not permitted", "Value error, ..."), at a
location that includes the tags of discriminated unions (``identity_provider.dev.users``), which are no keys of the
file. :func:`describe` turns each error into a line an operator can act on: the location as it is written in the
YAML, an unknown key with the closest key that the model knows (and whether that one is set), and the gateway's own
validation messages without pydantic's prefix.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

_PREFIXES = ("Value error, ", "Assertion failed, ")


@dataclass(frozen=True, slots=True)
class _Place:
    """Where an error is: its location as written in the file, the model holding its last key, and the part of the
    file (the mapping) that holds it."""

    location: str
    model: type[BaseModel] | None
    holder: object


def describe(error: ValidationError, root: type[BaseModel], data: object) -> list[str]:
    """One line per error of validating ``data`` as ``root``: ``location: what to do``. Where an unknown key kept
    a model's own checks from running, the model's ``missing_keys(data)`` (if it has one) says what is missing."""
    lines = [_line(item, root, data) for item in error.errors()]
    for item in error.errors():
        if item["type"] != "extra_forbidden" or not item["loc"]:
            continue
        place = _place(root, item["loc"], data)
        missing = getattr(place.model, "missing_keys", None)
        if callable(missing) and isinstance(place.holder, Mapping):
            where = place.location.rpartition(".")[0] or "(top level)"
            hint = missing(place.holder)
            if hint and f"  {where}: {hint}" not in lines:
                lines.append(f"  {where}: {hint}")
    return lines


def _line(item: ErrorDetails, root: type[BaseModel], data: object) -> str:
    place = _place(root, item["loc"], data)
    if item["type"] == "extra_forbidden" and item["loc"]:
        message = _unknown_key(str(item["loc"][-1]), place)
    else:
        message = item["msg"]
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
    return f"  {place.location}: {message}"


def _unknown_key(key: str, place: _Place) -> str:
    message = f"unknown key {key!r}"
    if place.model is None:
        return message
    known = [name for name in place.model.model_fields if not name.startswith("_")]
    closest = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not closest:
        return f"{message}; the keys here are {', '.join(known)}"
    message += f": did you mean {closest[0]!r}?"
    if isinstance(place.holder, Mapping) and closest[0] not in place.holder:
        message += f" ({closest[0]!r} is not set)"
    return message


def _place(root: type[BaseModel], loc: Sequence[int | str], data: object) -> _Place:
    """Walk the models and the data along ``loc``, leaving out the tags of discriminated unions."""
    annotation: Any = root
    shown: list[str] = []
    model: type[BaseModel] | None = None
    holder: object = None
    node: object = data
    for part in loc:
        annotation = _unwrapped(annotation)
        member = _tagged_member(annotation, part)
        if member is not None:  # a discriminated union's tag: not a key of the file
            annotation = member
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif get_origin(annotation) is dict:
            model, annotation = None, get_args(annotation)[1]
        elif get_origin(annotation) is list:
            model, annotation = None, get_args(annotation)[0]
        else:
            model, annotation = None, None
        holder, node = node, _child(node, part)
        shown.append(str(part))
    return _Place(".".join(shown) or "(top level)", model, holder)


def _unwrapped(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` and without ``None`` in an optional."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [member for member in get_args(annotation) if member is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _tagged_member(annotation: Any, part: int | str) -> type[BaseModel] | None:
    """The member of a union of models whose ``type`` is ``part``, if ``annotation`` is such a union."""
    if get_origin(annotation) is not Union and get_origin(annotation) is not types.UnionType:
        return None
    for member in get_args(annotation):
        member = _unwrapped(member)
        if isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields:
            tags = get_args(_unwrapped(member.model_fields["type"].annotation))
            if get_origin(_unwrapped(member.model_fields["type"].annotation)) is Literal and part in tags:
                return member
    return None


def _child(node: object, part: int | str) -> object:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None
