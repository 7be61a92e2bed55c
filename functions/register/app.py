"""Register function: Dynamic Client Registration (RFC 7591) for each route's authorization server."""

from __future__ import annotations

from mangum import Mangum

from gateway.web.register_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
