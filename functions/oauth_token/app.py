"""Token function (gateway/web/token/): /{workspace}/{server}/token and /revoke of every route. (This package is
oauth_token: a package named token would shadow the standard library.)"""

from gateway.entry import build_function
from gateway.web.token.app import create_app

function = build_function("token", create_app)
handler = function.handler
