"""Virtual MCP servers: one route in front of several upstreams, whose tools, prompts and resources it merges."""
