"""Authorize function (gateway/web/authorize/): /authorize, the workspace's sign-in (dev login or OpenID Connect
callback), consent, connecting upstream accounts, My connections. Bare Starlette + Jinja2 (cold start); the OpenID
Connect relying party (httpx, PyJWT) is imported on first use, so a dev-login workspace never loads it."""

from gateway.entry import build_function
from gateway.web.authorize.app import create_app

function = build_function("authorize", create_app)
handler = function.handler
