"""Tasks (the ``io.modelcontextprotocol/tasks`` extension, SEP-2663) on a virtual route: a task is known by the
upstream that created it, so its id, as the client sees it, names that upstream.

An upstream may answer a ``tools/call`` with a ``CreateTaskResult`` (``resultType: "task"`` and a ``taskId``); the
client then polls with ``tasks/get`` and may send ``tasks/update`` and ``tasks/cancel``, naming only the task. The
client sees ``{upstream}.{taskId}`` (an upstream's name is a slug, so it holds no dot) and the gateway sends each of
those methods to that upstream with its own id, and shows the id in the answer (``tasks/get`` returns the task)
the same way. The name decides nothing about access: the upstream still sees only the user's own credential.
"""

from __future__ import annotations

from typing import Any

from gateway.mcp.jsonrpc import Message

TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel", "tasks/result"})  # tasks/result: 2025-11-25
SEPARATOR = "."


def owner(exposed: object) -> tuple[str, str] | None:
    """(upstream name, its own task id) of a task id as the client saw it; None for one this route did not show."""
    if not isinstance(exposed, str):
        return None
    member, separator, task_id = exposed.partition(SEPARATOR)
    return (member, task_id) if separator and member and task_id else None


def exposed(response: Message, member: str) -> Message:
    """``response`` with the task id in its result (a ``CreateTaskResult`` or a task) shown as the client sees it."""
    result = response.get("result")
    if not isinstance(result, dict):
        return response
    task = result.get("task")
    if isinstance(task, dict) and isinstance(task.get("taskId"), str):  # MCP 2025-11-25's experimental tasks
        return {**response, "result": {**result, "task": _shown(task, member)}}
    if isinstance(result.get("taskId"), str) and result.get("resultType") in ("task", "complete", None):
        return {**response, "result": _shown(result, member)}
    return response


def _shown(task: dict[str, Any], member: str) -> dict[str, Any]:
    return {**task, "taskId": f"{member}{SEPARATOR}{task['taskId']}"}
