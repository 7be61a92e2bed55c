"""Proxy function: the MCP endpoint ``/{workspace}/{server}/mcp`` of every route."""

from __future__ import annotations

from mangum import Mangum

from gateway.observability import ObserveRequests, configure_logging
from gateway.runtime import Runtime
from gateway.web.proxy_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
configure_logging("proxy", runtime.settings.log_level)
app = create_app(runtime)
handler = Mangum(ObserveRequests(app, "proxy", sink=print if runtime.settings.metrics else None), lifespan="off")
