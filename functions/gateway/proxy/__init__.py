"""Proxying MCP over Streamable HTTP to a route's upstream server."""
