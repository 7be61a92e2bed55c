"""Proxy function (gateway/web/proxy/): the MCP endpoint /{workspace}/{server}/mcp of every route."""

from gateway.entry import build_function
from gateway.web.proxy.app import create_app

function = build_function("proxy", create_app)
handler = function.handler  # the buffered deployment: one API Gateway event, one whole answer
asgi_app = function.asgi_app
"""What the streaming deployment serves (proxy/serve.py under the Lambda Web Adapter, the dev server)."""
