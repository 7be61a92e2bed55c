"""The user a sign-in produced, as the gateway sees them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """``id`` is stable per user within a workspace (the configured user-id claim, or the dev login's id)."""

    id: str
    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return self.name or self.id
