"""Authorize function: /authorize, the workspace's sign-in (dev login or OpenID Connect callback) and consent.

Bare Starlette + Jinja2 (cold start); the OpenID Connect relying party (httpx, PyJWT) is imported on first use, so
a dev-login workspace never loads it.
"""

from __future__ import annotations

from mangum import Mangum

from gateway.web.authorize_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
