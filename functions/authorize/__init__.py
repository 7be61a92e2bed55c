"""Authorize function: /authorize, sign-in at the workspace's identity provider, consent."""
