"""Gateway API keys: non-interactive callers acting as a user (or a service identity) on some routes."""
