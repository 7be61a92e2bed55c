"""Register function (gateway/web/register/): Dynamic Client Registration (RFC 7591) for each route's authorization
server."""

from gateway.entry import build_function
from gateway.web.register.app import create_app

function = build_function("register", create_app)
handler = function.handler
