"""Proxy function: the MCP endpoint ``/{workspace}/{server}/mcp`` of every route."""

from __future__ import annotations

from mangum import Mangum

from gateway.runtime import Runtime
from gateway.web.proxy_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
app = create_app(runtime)
handler = Mangum(app, lifespan="off")
