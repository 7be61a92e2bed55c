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

# MCP bodies that official-SDK upstreams accept and the gateway's parser refuses (issue "Fail closed" item 1): a
# body that smuggles a call past the tool scope and the audit trail unless the gateway forwards nothing it did not
# parse. Each is a tools/call whose padding is not JSON the gateway reads.
_CALL = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other_tool","arguments":{"x":%s}}}'
UNREADABLE_VALUES = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "huge exponent": b"1e400",
    "huge negative exponent": b"-2.5E+99999",
    "too many digits": b"1" * 5000,
    "lone high surrogate": b'"\\ud800"',
    "lone low surrogate": b'"x\\udfffy"',
    "invalid UTF-8": b'"\xc3\x28"',
}
UNREADABLE_CALLS: dict[str, bytes] = {name: _CALL % value for name, value in UNREADABLE_VALUES.items()}
# JSON-RPC batches: MCP 2025-03-26 allows them (not with initialize); later revisions have none.
_TOOL = b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{}}}'
BATCHES: dict[str, bytes] = {
    "two calls": b"[" + _TOOL % (1, b"echo") + b"," + _TOOL % (2, b"other_tool") + b"]",
    "a call and a notification": b"[" + _TOOL % (1, b"echo") + b',{"jsonrpc":"2.0","method":"notifications/x"}]',
    "with initialize": b'[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}},' + _TOOL % (2, b"echo") + b"]",
    "empty": b"[]",
    "duplicate ids": b"[" + _TOOL % (1, b"echo") + b"," + _TOOL % (1, b"echo") + b"]",
    "nested": b"[[" + _TOOL % (1, b"echo") + b"]]",
    "a NaN inside": b"[" + _TOOL % (1, b"echo") + b"," + UNREADABLE_CALLS["NaN"] + b"]",
}
MCP_HOSTILE_BODIES: dict[str, bytes] = {**UNREADABLE_CALLS, **{f"batch, {k}": v for k, v in BATCHES.items()}}
