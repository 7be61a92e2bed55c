"""Shared core of the MCP gateway: configuration, OAuth, tokens, storage ports and the proxy.

Below the HTTP layer (``gateway.web``) nothing imports boto3 or an HTTP framework; the adapters (``gateway.aws``) are
plugged in by the composition root (``gateway.runtime``), which only ``gateway.entry`` builds, for the Lambda entry
points under ``functions/<name>/app.py`` (docs/architecture.md, "Dependency direction").
"""

import os as _os

# Pydantic looks for plugins through importlib.metadata entry points when the first model is built, which scans
# every installed distribution (tens of milliseconds of every cold start). The gateway uses no pydantic plugin.
_os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
