"""PKCE (RFC 7636), S256 only: OAuth 2.1 and MCP 2025-11-25 require it; ``plain`` is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

# RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]; an S256 challenge is 43 base64url characters.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_challenge(challenge: str) -> bool:
    return bool(_S256_CHALLENGE.match(challenge))


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, compared in constant time."""
    if not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
