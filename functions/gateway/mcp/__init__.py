"""The MCP wire layer: JSON-RPC messages and error codes, protocol revisions and their rules, the one parse of a
client's body, SSE framing, and how an exchange ended. Every other module takes this vocabulary from here."""
