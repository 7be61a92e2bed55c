"""JSON that has broken parsers: the bodies every endpoint's tests feed to the parser behind it.

``DEEP_ARRAYS`` is the body from the report (about 200,000 nested arrays, 400 KB: under every size cap), which made
``json.loads`` raise ``RecursionError`` (a 500) instead of a ``ValueError``.
"""

from __future__ import annotations

NESTING = 200_000
DEEP_ARRAYS = b"[" * NESTING + b"]" * NESTING
# 10 KB, under the 64 KB caps of registration bodies and fetched documents, and still far past the interpreter's
# recursion limit.
SMALL_NESTING = 5_000
DEEP_SMALL = b"[" * SMALL_NESTING + b"]" * SMALL_NESTING
DEEP_SMALL_OBJECT = b'{"a":' * SMALL_NESTING + b'"x"' + b"}" * SMALL_NESTING
DEEP_OBJECTS = b'{"a":' * NESTING + b"1" + b"}" * NESTING
# A JSON-RPC request whose params nest too deep: valid-looking at the top, hostile inside.
DEEP_PARAMS = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + DEEP_ARRAYS + b"}"

HOSTILE_BODIES: dict[str, bytes] = {
    "deep arrays": DEEP_ARRAYS,
    "deep objects": DEEP_OBJECTS,
    "deep params": DEEP_PARAMS,
    "deep, 10 KB": DEEP_SMALL,
    "deep object, 10 KB": DEEP_SMALL_OBJECT,
}
