"""Text from outside the gateway (a client's name, an identity provider's display name) made safe to show a person.

Unicode format characters (category ``Cf``) are invisible yet change what a reader sees: bidirectional controls
(U+202A to U+202E, U+2066 to U+2069, U+200E/U+200F, U+061C) reorder the text around them ("Trojan Source",
CVE-2021-42574), so a client named ``Evil\u202eedoC edualC`` is displayed as "EvilClaude Code"; zero-width
characters (U+200B to U+200D, U+2060, U+FEFF) make two different names look identical. Control characters (``Cc``)
have no business in a name either. :func:`visible_text` removes all of them; a page renders every value through it
(``gateway.web.common.pages``), and registration stores names already cleaned.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc"})
_KEPT = frozenset("\t\n\r")  # ordinary whitespace: harmless in HTML, and part of multi-line text


def visible_text(text: str) -> str:
    """``text`` without format and control characters (tabs and newlines kept)."""
    if text.isascii() and text.isprintable():  # the common case, at C speed
        return text
    return "".join(char for char in text if char in _KEPT or unicodedata.category(char) not in _INVISIBLE_CATEGORIES)
