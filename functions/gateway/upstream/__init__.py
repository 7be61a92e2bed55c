"""Upstream MCP servers: the credentials the gateway attaches when it calls them (never the client's token)."""
