"""A small but real MCP server over Streamable HTTP (sessions, paginated lists, tools, prompts, resources), served on
127.0.0.1 by uvicorn: an upstream for the virtual-route tests whose every request is recorded.

It speaks 2025-06-18/2025-11-25: ``initialize`` gives a session id that every later request must carry (404
otherwise, as the spec says for an unknown session); ``tools/call`` answers over SSE when ``sse_calls`` is set.
Optional behaviours of newer servers: ``list_caching`` adds MCP 2026-07-28 caching fields to list results,
``tool_meta`` gives tools a ``_meta`` (MCP Apps' ``ui.resourceUri``), ``task_tools`` answer a call with a task of the
tasks extension (``resultType: "task"``), which ``tasks/get|update|cancel`` then report on; ``modern`` also serves
MCP 2026-07-28 requests without a session (and ``server/discover``), where ``input_tools`` answer a call with an
``input_required`` result of its own until the retry carries its state and the answer to its question.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.asgi_thread import AsgiThread, listening_socket


@dataclass
class MiniMcp:
    name: str
    tools: list[str]
    prompts: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    page_size: int = 100
    sse_calls: bool = False
    instructions: str | None = None
    refuse_initialize: int = 0  # how many initialize requests to answer 503 (an upstream that is starting)
    list_caching: dict[str, Any] = field(default_factory=dict)
    tool_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_tools: list[str] = field(default_factory=list)
    modern: bool = False
    input_tools: list[str] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    seen: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    _numbers: Any = field(default_factory=itertools.count)

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.seen]

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            if request.method == "DELETE":
                self.sessions.discard(request.headers.get("mcp-session-id", ""))
                self.seen.append(("DELETE", {}, dict(request.headers)))
                return Response(status_code=200)
            message = json.loads(await request.body())
            self.seen.append((message.get("method", ""), message, dict(request.headers)))
            if message.get("method") == "initialize" and self.refuse_initialize > 0:
                self.refuse_initialize -= 1
                return Response("starting", status_code=503)
            if message.get("method") == "initialize":
                session = f"{self.name}-session-{next(self._numbers)}"
                self.sessions.add(session)
                result: dict[str, Any] = {
                    "protocolVersion": message["params"]["protocolVersion"],
                    "capabilities": {"tools": {"listChanged": True}, "prompts": {}, "resources": {"subscribe": True}},
                    "serverInfo": {"name": self.name, "version": "1"},
                }
                if self.instructions:
                    result["instructions"] = self.instructions
                return JSONResponse(
                    {"jsonrpc": "2.0", "id": message["id"], "result": result}, headers={"Mcp-Session-Id": session}
                )
            stateless = self.modern and request.headers.get("mcp-protocol-version") == "2026-07-28"
            if stateless and message.get("method") == "server/discover":
                discovered = {
                    "resultType": "complete",
                    "supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {}},
                }
                return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": discovered})
            if not stateless and request.headers.get("mcp-session-id") not in self.sessions:
                return JSONResponse(
                    {
                        "jsonrpc": "2.0",
                        "id": message.get("id"),
                        "error": {"code": -32001, "message": "Session not found"},
                    },
                    404,
                )
            if "id" not in message:
                return Response(status_code=202)
            return self._answer(message)

        return Starlette(routes=[Route("/mcp", endpoint, methods=["POST", "DELETE"])])

    def _page(self, items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str | None]:
        start = int(params.get("cursor", "0"))
        end = start + self.page_size
        return items[start:end], (str(end) if end < len(items) else None)

    def _answer(self, message: dict[str, Any]) -> Response:
        method, params, request_id = message["method"], message.get("params") or {}, message["id"]
        result: dict[str, Any]
        if method == "tools/list":
            listed = [
                {"name": n, "description": f"{self.name} {n}", "inputSchema": {"type": "object"}}
                | ({"_meta": self.tool_meta[n]} if n in self.tool_meta else {})
                for n in self.tools
            ]
            page, cursor = self._page(listed, params)
            result = {"tools": page, **({"nextCursor": cursor} if cursor else {}), **self.list_caching}
        elif method == "tools/call" and params.get("name") in self.input_tools:
            answered = (params.get("inputResponses") or {}).get("confirm")
            if params.get("requestState") == f"{self.name}-state" and answered is not None:
                result = {"resultType": "complete", "content": [{"type": "text", "text": f"confirmed {answered}"}]}
            else:
                question = {"mode": "form", "message": "Sure?", "requestedSchema": {"type": "object"}}
                asked = {"method": "elicitation/create", "params": question}
                result = {"resultType": "input_required", "inputRequests": {"confirm": asked},
                          "requestState": f"{self.name}-state"}  # fmt: skip
        elif method == "tools/call" and params.get("name") in self.task_tools:
            result = {"resultType": "task", "taskId": f"{self.name}-task-1", "status": "working"}
        elif method in ("tasks/get", "tasks/update", "tasks/cancel"):
            if params.get("taskId") != f"{self.name}-task-1":
                return JSONResponse(
                    {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": "no task"}}
                )
            result = {"resultType": "complete"}
            if method == "tasks/get":
                done = {"content": [{"type": "text", "text": f"{self.name} task done"}]}
                result.update(taskId=params["taskId"], status="completed", result=done)
        elif method == "tools/call" and params.get("name") in self.tools:
            arguments = json.dumps(params.get("arguments", {}), sort_keys=True)
            result = {"content": [{"type": "text", "text": f"{self.name}:{params['name']}:{arguments}"}]}
            if self.sse_calls:
                note = {
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": "info", "data": "working"},
                }
                answer = {"jsonrpc": "2.0", "id": request_id, "result": result}
                body = f"event: message\ndata: {json.dumps(note)}\n\nevent: message\ndata: {json.dumps(answer)}\n\n"
                return Response(body, media_type="text/event-stream")
        elif method == "prompts/list":
            result = {"prompts": [{"name": n} for n in self.prompts], **self.list_caching}
        elif method == "prompts/get" and params.get("name") in self.prompts:
            result = {
                "messages": [
                    {"role": "user", "content": {"type": "text", "text": f"{self.name} prompt {params['name']}"}}
                ]
            }
        elif method == "resources/list":
            result = {"resources": [{"uri": uri, "name": uri} for uri in self.resources], **self.list_caching}
        elif method == "resources/read" and params.get("uri") in self.resources:
            result = {"contents": [{"uri": params["uri"], "text": f"{self.name} has {params['uri']}"}]}
        elif method == "resources/read":
            return JSONResponse(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32002, "message": "Resource not found"}}
            )
        elif method in ("tools/call", "prompts/get"):
            return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": {"code": -32602, "message": "unknown"}})
        else:
            return JSONResponse(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": "Method not found"}}
            )
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})


def serve(server: MiniMcp) -> AsgiThread:
    return AsgiThread(server.app(), listening_socket(), f"mini MCP {server.name}").start()
