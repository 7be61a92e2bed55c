"""Authorize function: /authorize, the workspace's sign-in (dev login or OpenID Connect callback) and consent.

Bare Starlette + Jinja2 (cold start); the OpenID Connect relying party (httpx, PyJWT) is imported on first use, so
a dev-login workspace never loads it.
"""

from __future__ import annotations

from mangum import Mangum

from gateway.runtime import Runtime
from gateway.web.authorize_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
app = create_app(runtime)
handler = Mangum(app, lifespan="off")
