"""Shared core of the MCP gateway: configuration, OAuth, tokens, storage ports and the proxy.

Domain modules import neither boto3 nor an HTTP framework; adapters (``gateway.aws``) and the web layer
(``gateway.web``) do, and only the Lambda entry points under ``functions/<name>/app.py`` wire them together.
"""

import os as _os

# Pydantic looks for plugins through importlib.metadata entry points when the first model is built, which scans
# every installed distribution (tens of milliseconds of every cold start). The gateway uses no pydantic plugin.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
