"""A credential provider for tests whose user connects the upstream account when the test says so."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired


@dataclass
class Account:
    """The user's upstream account: not connected until ``connect()``; every ``headers`` call is counted."""

    connect_url: str = "https://gw.example.com/demo/echo/connect?for=alice"
    connected: bool = False
    token: str = "upstream-token"
    asked: list[str] = field(default_factory=list)

    def connect(self) -> None:
        self.connected = True

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        self.asked.append(route.key)
        if not self.connected:
            raise ReconnectRequired(upstream=route.key, connect_url=self.connect_url, reason="never connected")
        return {"Authorization": f"Bearer {self.token}"}

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        raise ReconnectRequired(upstream=route.key, connect_url=self.connect_url, reason="refused")
