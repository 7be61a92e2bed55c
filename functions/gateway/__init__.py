"""Shared core of the MCP gateway: configuration, OAuth, tokens, storage ports and the proxy.

Domain modules import neither boto3 nor an HTTP framework; adapters (``gateway.aws``) and the web layer
(``gateway.web``) do, and only the Lambda entry points under ``functions/<name>/app.py`` wire them together.
"""
