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


def cache_directives(results: list[dict[str, Any]]) -> dict[str, Any]:
    """MCP 2026-07-28 result caching for a merged result: the shortest ``ttlMs`` of its parts, and ``public`` only if
    every part is."""
    ttls = [result["ttlMs"] for result in results if isinstance(result.get("ttlMs"), int) and result["ttlMs"] >= 0]
    public = bool(results) and all(result.get("cacheScope") == "public" for result in results)
    return {"resultType": "complete", "ttlMs": min(ttls, default=0), "cacheScope": "public" if public else "private"}


def merge_capabilities(merged: dict[str, Any], capabilities: object) -> None:
    """The union of what the upstreams offer. ``listChanged`` is not promised: a buffered route cannot push it."""
    if not isinstance(capabilities, dict):
        return
    for name in ("tools", "prompts", "resources", "logging", "completions"):
        offered = capabilities.get(name)
        if not isinstance(offered, dict):
            continue
        entry = merged.setdefault(name, {})
        if name == "resources" and offered.get("subscribe") is True:
            entry["subscribe"] = True
