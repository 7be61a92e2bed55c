"""Admin function (gateway/web/admin/): the admin console /{workspace}/admin and its JSON API
/{workspace}/admin/api/... FastAPI, which only this function's artifact ships (its own dependency layer in
template.yaml): its cold start is on no MCP client's path."""

from gateway.entry import build_function
from gateway.web.admin.app import create_app

function = build_function("admin", create_app)
handler = function.handler
