"""W3C Trace Context on MCP requests: the ``traceparent`` / ``tracestate`` HTTP headers (W3C Trace Context §3.2,
§3.3), or the same two keys in a request's ``params._meta`` (MCP SEP-414, which reserves them for clients that
cannot set headers per request, e.g. on a shared connection; the 2026-07-28 revision's stateless requests carry
them there).

The gateway reads the caller's context (the header wins over ``_meta``), names it in its logs and its X-Ray
segment, and hands it on to the upstream: as headers, and in the forwarded body's ``_meta`` untouched (the body is
the gateway's serialization of the one parse, which keeps ``_meta`` as the client sent it). A value that is not a
valid ``traceparent`` (W3C Trace Context §3.2.2: version 00, 32 and 16 lower-case hex digits, not all zero) is
dropped rather than forwarded, as the recommendation asks of a participant that cannot parse it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_TRACEPARENT = re.compile(r"^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACESTATE_MAX = 512  # W3C Trace Context §3.3.1.1: at least 512 characters must be propagated; more may be cut
_TRACESTATE = re.compile(r"^[\x20-\x7e]*$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    traceparent: str
    tracestate: str | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    @property
    def parent_id(self) -> str:
        return self.traceparent[36:52]

    @property
    def sampled(self) -> bool:
        return int(self.traceparent[53:55], 16) & 1 == 1

    def headers(self) -> dict[str, str]:
        found = {TRACEPARENT: self.traceparent}
        if self.tracestate:
            found[TRACESTATE] = self.tracestate
        return found


def parse(traceparent: Any, tracestate: Any = None) -> TraceContext | None:
    """The context, or None when ``traceparent`` is absent or invalid (then ``tracestate`` is ignored too, §3.3)."""
    if not isinstance(traceparent, str) or not _TRACEPARENT.match(traceparent.strip()):
        return None
    state = tracestate.strip() if isinstance(tracestate, str) else None
    if state is not None and (len(state) > _TRACESTATE_MAX or not _TRACESTATE.match(state)):
        state = None
    return TraceContext(traceparent.strip(), state or None)


def from_meta(message: Mapping[str, Any] | None) -> TraceContext | None:
    """The context in a request's ``params._meta`` (SEP-414), if any."""
    params = message.get("params") if isinstance(message, Mapping) else None
    meta = params.get("_meta") if isinstance(params, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    return parse(meta.get(TRACEPARENT), meta.get(TRACESTATE))


def of_request(headers: Iterable[tuple[str, str]], messages: Iterable[Mapping[str, Any]] = ()) -> TraceContext | None:
    """The caller's context: the headers' when valid, else the first request message's ``_meta``."""
    found = {name.lower(): value for name, value in headers if name.lower() in (TRACEPARENT, TRACESTATE)}
    context = parse(found.get(TRACEPARENT), found.get(TRACESTATE))
    if context is not None:
        return context
    return next((meta for meta in map(from_meta, messages) if meta is not None), None)
