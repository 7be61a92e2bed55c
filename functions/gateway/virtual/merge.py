"""Merging what the upstreams of a virtual route answered into one answer (pure functions)."""

from __future__ import annotations

from typing import Any

from gateway.virtual.upstream_call import Answer, UpstreamProblem


def result_of(answer: Answer | UpstreamProblem) -> dict[str, Any] | None:
    if isinstance(answer, UpstreamProblem) or answer.message is None:
        return None
    result = answer.message.get("result")
    return result if isinstance(result, dict) else None


def cause_of(answer: Answer | UpstreamProblem) -> str:
    if isinstance(answer, UpstreamProblem):
        return answer.cause
    error = (answer.message or {}).get("error")
    return f"answered an error: {error.get('message') if isinstance(error, dict) else error}"


def cache_directives(
    results: list[dict[str, Any]], *, private: bool = False, complete: bool = True, max_ttl_ms: int | None = None
) -> dict[str, Any]:
    """MCP 2026-07-28 §Server "Caching" for a merged result: the shortest ``ttlMs`` of its parts (at most
    ``max_ttl_ms``, the gateway's own cache; 0 when a part is missing, so the client asks again once it is back),
    and ``public`` only if every part is and the route's lists do not depend on the caller (``private``)."""
    ttls = [result["ttlMs"] for result in results if isinstance(result.get("ttlMs"), int) and result["ttlMs"] >= 0]
    ttl = min(ttls, default=0) if complete else 0
    if max_ttl_ms is not None:
        ttl = min(ttl, max_ttl_ms)
    public = bool(results) and not private and all(result.get("cacheScope") == "public" for result in results)
    return {"resultType": "complete", "ttlMs": ttl, "cacheScope": "public" if public else "private"}


def merge_capabilities(merged: dict[str, Any], capabilities: object) -> None:
    """The union of what the upstreams offer. ``listChanged`` is not promised: a buffered route cannot push it.
    Extensions (``io.modelcontextprotocol/ui`` for MCP Apps, ``io.modelcontextprotocol/tasks``...) are merged by
    identifier: a route offers an extension when one of its upstreams does."""
    if not isinstance(capabilities, dict):
        return
    extensions = capabilities.get("extensions")
    if isinstance(extensions, dict):
        for identifier, settings in extensions.items():
            merged.setdefault("extensions", {}).setdefault(identifier, settings if isinstance(settings, dict) else {})
    for name in ("tools", "prompts", "resources", "logging", "completions"):
        offered = capabilities.get(name)
        if not isinstance(offered, dict):
            continue
        entry = merged.setdefault(name, {})
        if name == "resources" and offered.get("subscribe") is True:
            entry["subscribe"] = True
