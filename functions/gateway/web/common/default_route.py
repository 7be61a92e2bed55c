"""Root aliases of the default route's endpoints: ``/authorize``, ``/token``, ``/register``, ``/revoke``.

Some clients fall back to endpoints at the origin's root when discovery fails or when they only know the server's
origin (claude.ai: anthropics/claude-ai-mcp#82; the Python SDK refreshing a token restored from storage). The
configured ``default_route`` (the one the root well-known URLs describe) answers them; without one they stay 404.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.web.common.services import GatewayState


class DefaultRouteAliases:
    """ASGI middleware rewriting ``/{name}`` to ``/{workspace}/{server}/{name}`` of the default route."""

    def __init__(self, app: ASGIApp, names: frozenset[str], state: GatewayState) -> None:
        self.app = app
        self.names = names
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].strip("/") in self.names:
            route = self.state.routes.default_route
            if route is not None:
                path = f"{route.path}/{scope['path'].strip('/')}"
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)
