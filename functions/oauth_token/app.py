"""Token function: ``/{workspace}/{server}/token`` and ``/{workspace}/{server}/revoke`` of every route."""

from __future__ import annotations

from mangum import Mangum

from gateway.web.token_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
