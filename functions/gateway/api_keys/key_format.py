"""What a gateway API key looks like: ``mcpgw_<key id>_<secret>``.

The fixed prefix lets secret scanners (GitHub push protection, trufflehog, gitleaks) recognise a leaked key with a
pattern such as ``mcpgw_[0-9A-Za-z]{16}_[0-9A-Za-z]{43}``. The key id (16 base62 characters, ≈ 95 bits) finds the
record with one read; the secret (43 base62 characters, ≈ 256 bits) is stored only as its SHA-256 and compared in
constant time. Base62 keeps ``_`` a separator and the whole key selectable with a double click.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from gateway.crypto.hashing import hash_secret, matches_hash

PREFIX = "mcpgw_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 16
SECRET_LENGTH = 43
PATTERN = re.compile(rf"^{PREFIX}([0-9A-Za-z]{{{KEY_ID_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$")


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly drawn key: ``value`` is shown once to its creator and never stored."""

    key_id: str
    value: str
    secret_hash: str


def new_key() -> NewKey:
    key_id, secret = _random(KEY_ID_LENGTH), _random(SECRET_LENGTH)
    return NewKey(key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret))


def looks_like_key(value: str) -> bool:
    """True for anything with the key prefix (a malformed key is then refused as a key, not tried as a JWT)."""
    return value.startswith(PREFIX)


def parse_key(value: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = PATTERN.match(value)
    return None if match is None else (match[1], match[2])


def secret_matches(secret: str, stored_hash: str) -> bool:
    return matches_hash(secret, stored_hash)
