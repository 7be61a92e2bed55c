"""Proxy function: the MCP endpoint ``/{workspace}/{server}/mcp`` of every route."""

from __future__ import annotations

from mangum import Mangum

from gateway.web.proxy_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
