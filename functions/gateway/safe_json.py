"""JSON from outside the gateway (clients, upstream servers, identity providers), parsed so that no input can make
it fail with anything but :class:`JsonInputError`.

:func:`loads` is :func:`json.loads` with these limits, each refused with :class:`JsonInputError`:

- **Nesting depth at most** :data:`MAX_DEPTH` **(64)** arrays and objects, checked before parsing by a scan that does
  not recurse (:func:`too_deep`). MCP messages and OAuth documents nest a handful of levels; 64 leaves room for
  deep tool arguments while staying far below the interpreter's recursion limit, which ``json.loads`` would
  otherwise hit (``RecursionError``, not a ``ValueError``) on a body of a few kilobytes of ``[``. Too deep is
  :class:`JsonTooDeep`, a subclass, for callers that answer it differently.
- **UTF-8 only** (RFC 8259 §8.1) for bytes: no UTF-16/32 guessing, no encoded surrogates; a leading byte order
  mark is ignored, as §8.1 allows.
- **No** ``NaN``, ``Infinity`` or ``-Infinity`` (not JSON, RFC 8259 §6) and no number that overflows a float
  (``1e999999``): each would become a float that breaks arithmetic and cannot be written back as JSON.
- **No integer longer than the interpreter converts** (4300 digits by default, ``sys.get_int_max_str_digits``).
- **No unpaired surrogate escape** (``"\\ud800"``): the string could not be encoded as UTF-8 when it is stored,
  logged or answered.

Sizes are the callers' business: each reads a bounded body before it parses.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64

# Brackets become +1 / -1 as signed bytes; every other byte is dropped.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
# A literal that could overflow a float: a three-digit exponent or more than 308 digits. Rare, and a false match
# (in a string) only costs the slower decoder.
_HUGE_NUMBER = re.compile(r"[eE]\+?\d{3}|\d{309}")


class JsonInputError(ValueError):
    """The input is not JSON the gateway reads. The message says why, in words safe to show whoever sent it."""


class JsonTooDeep(JsonInputError):
    """Arrays and objects nest deeper than the limit."""


def too_deep(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth``, without recursion and in C-speed passes
    (a Python-level loop runs only over the brackets' running sum). Malformed input may give any answer; the parser
    refuses it anyway."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # cannot nest deeper than it has brackets (the common case: one cheap pass)
    outside = _outside_strings(text).encode("utf-8", "surrogatepass").translate(_STEPS, _NOT_BRACKETS)
    if outside.count(1) <= max_depth:
        return False
    return max(accumulate(memoryview(outside).cast("b"))) > max_depth


def _outside_strings(text: str) -> str:
    """``text`` without its JSON strings. Escaped backslashes go first, then escaped quotes (``str.replace`` pairs a
    run of backslashes from the left, as the JSON grammar does); every quote left then opens or closes a string."""
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    return "".join(text.split('"')[::2])


def _refuse_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a JSON value")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise JsonInputError("a number is too large")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The decoded JSON value of ``data``; raises :class:`JsonInputError` (:class:`JsonTooDeep` for depth)."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInputError("the JSON text is not UTF-8") from None
        if text.startswith("\ufeff"):
            text = text[1:]
    else:
        text = data
        if _SURROGATE.search(text):
            raise JsonInputError("the JSON text holds an unpaired surrogate")
    if too_deep(text, max_depth):
        raise JsonTooDeep(f"arrays and objects nest deeper than {max_depth} levels")
    try:
        value = (_STRICT_DECODER if _HUGE_NUMBER.search(text) else _DECODER).decode(text)
    except JsonInputError:
        raise
    except json.JSONDecodeError as error:
        raise JsonInputError(f"not valid JSON ({error.msg} at character {error.pos})") from None
    except ValueError:  # the interpreter's limit on integer digits
        raise JsonInputError("an integer has too many digits") from None
    except RecursionError:  # unreachable after too_deep(); kept so that no input escapes as a 500
        raise JsonTooDeep(f"arrays and objects nest deeper than {max_depth} levels") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) and _holds_surrogate(value):
        raise JsonInputError("a string holds an unpaired surrogate escape")
    return value


def _holds_surrogate(value: Any) -> bool:
    """Whether a string (or key) in ``value`` holds a lone surrogate; the decoder joins valid pairs, so any that
    remains is unpaired. Only run when the text has surrogate escapes (emoji from ASCII-only encoders, mostly)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False
