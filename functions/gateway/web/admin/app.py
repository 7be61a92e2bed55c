"""ASGI app of the admin function: the console (``/{workspace}/admin``, server-rendered pages) and its JSON API
(``/{workspace}/admin/api/...``, OpenAPI at ``/{workspace}/admin/api/openapi.json``). FastAPI: its request
validation and OpenAPI document earn their import time here, and this function's cold start is on no MCP client's
path (docs/operations.md, "The admin console").

Access (:mod:`gateway.web.admin.access`): only a browser signed in to the workspace as one of its ``admins``; a
signed-out browser is sent through the workspace's sign-in (the same flow as consent), anyone else gets 403. Every
page has the gateway pages' headers (strict CSP, no framing, no caching); every change carries the session's CSRF
token and is audited as done by ``console:<admin>``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response

from gateway.operations.queries import NotFound, OperatorError
from gateway.storage.ports import StorageError
from gateway.web.admin import actions, pages
from gateway.web.admin.access import AdminServices, ConsoleRefusal, admin_of, sign_in_url
from gateway.web.admin.api import router
from gateway.web.common import session
from gateway.web.common.pages import PageError, error_page, page, redirect, security_headers
from gateway.web.common.services import LearnBaseUrl

logger = logging.getLogger("gateway.admin_console")

API_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def _is_api(request: Request) -> bool:
    parts = request.url.path.split("/")
    return len(parts) > 3 and parts[2] == "admin" and parts[3] == "api"


def _json_error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=API_HEADERS)


def create_app(services: AdminServices) -> FastAPI:
    app = FastAPI(
        title="MCP gateway admin API",
        version="1",
        description="The admin console's JSON API: every operation is one call into the operator service that the "
        "console and `mcp-gateway admin` share. Sign in at /{workspace}/admin first (the workspace's session "
        "cookie); changes carry the session's CSRF token in X-CSRF-Token (GET /{workspace}/admin/api/session).",
        openapi_url="/{workspace}/admin/api/openapi.json",
        docs_url=None,  # Swagger UI would load scripts the console's CSP does not allow
        redoc_url=None,
        middleware=[Middleware(LearnBaseUrl, state=services)],
    )
    app.state.services = services
    app.include_router(router())

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if _is_api(request):
            for name, value in API_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    # --- the console's pages ---------------------------------------------------------------------------------

    @app.get("/{workspace}/admin", include_in_schema=False)
    @app.get("/{workspace}/admin/{name}", include_in_schema=False)
    def console(workspace: str, request: Request, name: str = "") -> Response:
        admin = admin_of(services, workspace, request.cookies)
        params = {key: value for key, value in request.query_params.items()}
        views = {
            "": pages.overview, "clients": pages.clients, "grants": pages.grants, "issuances": pages.issuances,
            "funnel": pages.funnel, "keys": pages.keys, "users": pages.users, "confirm": actions.confirm,
        }  # fmt: skip
        if name == "audit":
            return pages.audit(admin, params, request.query_params.getlist("kind"))
        view = views.get(name)
        if view is None:
            raise PageError(404, "Not found", f"The console has no page {name!r}.")
        return view(admin, params)

    @app.post("/{workspace}/admin/act", include_in_schema=False)
    async def act(workspace: str, request: Request) -> Response:
        form = await request.form()
        try:
            admin = admin_of(services, workspace, request.cookies)
        except ConsoleRefusal as refusal:
            if refusal.status == 401:  # a form posted without the session (another site's, or an ended session)
                raise PageError(403, "Request refused", "The form was not sent from a signed-in console.") from None
            raise
        if not admin.csrf_matches(form.get("csrf")):
            raise PageError(403, "Request refused", "The form could not be verified (CSRF check failed). Reload.")
        return actions.act(admin, form)

    @app.post("/{workspace}/admin/sign-out", include_in_schema=False)
    async def sign_out(workspace: str, request: Request) -> Response:
        form = await request.form()
        signed_in = session.current(
            request.cookies, workspace, base_url=services.base_url, secret=services.shared_secret, now=services.now()
        )
        if signed_in is not None and not session.csrf_matches(
            signed_in, services.shared_secret, "admin-console", form.get("csrf")
        ):
            raise PageError(403, "Request refused", "The form could not be verified (CSRF check failed). Reload.")
        response = page(
            "admin_signed_out.html", page_title="Signed out", sign_in=sign_in_url(services.base_url, workspace)
        )
        session.end(response, workspace, base_url=services.base_url)
        return response

    _handlers(app, services)
    return app


def _handlers(app: FastAPI, services: AdminServices) -> None:
    @app.exception_handler(ConsoleRefusal)
    async def refused(request: Request, exc: ConsoleRefusal) -> Response:
        if _is_api(request):
            error = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(exc.status, "invalid_request")
            return _json_error(exc.status, error, exc.message)
        if exc.status == 401 and request.method == "GET":
            return redirect(sign_in_url(services.base_url, exc.workspace))
        if exc.status == 403 and exc.signed_in is not None:
            csrf = session.csrf_token(exc.signed_in, services.shared_secret, "admin-console")
            return page(
                "admin_refused.html", 403, page_title="Administrators only", message=exc.message,
                user_name=exc.signed_in.display_name, csrf=csrf,
                sign_out=f"{services.base_url}/{exc.workspace}/admin/sign-out",
            )  # fmt: skip
        titles = {401: "Sign in first", 403: "Request refused", 404: "Not found"}
        return error_page(PageError(exc.status, titles.get(exc.status, "Invalid request"), exc.message))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if _is_api(request):
            return _json_error(404, "not_found", str(exc))
        return error_page(PageError(404, "Not found", str(exc)))

    @app.exception_handler(OperatorError)
    async def refused_action(request: Request, exc: OperatorError) -> Response:
        if _is_api(request):
            return _json_error(400, "invalid_request", str(exc))
        return error_page(PageError(400, "Not done", str(exc)))

    @app.exception_handler(StorageError)
    async def storage(request: Request, exc: StorageError) -> Response:
        logger.error("storage failure on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        if _is_api(request):
            return _json_error(503, "temporarily_unavailable", "the gateway's store cannot be read right now")
        return error_page(PageError(503, "Try again shortly", "The gateway's store cannot be read right now."))

    @app.exception_handler(PageError)
    async def page_error(request: Request, exc: PageError) -> Response:
        if _is_api(request):
            return _json_error(exc.status_code, "invalid_request", exc.message)
        return error_page(exc)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _is_api(request) or request.url.path.endswith("openapi.json"):
            return _json_error(exc.status_code, "not_found" if exc.status_code == 404 else "invalid_request",
                               str(exc.detail))  # fmt: skip
        return error_page(PageError(exc.status_code, "Not found" if exc.status_code == 404 else "Refused",
                                    str(exc.detail)))  # fmt: skip

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        if _is_api(request):
            return JSONResponse({"error": "invalid_request", "message": problems}, status_code=422, headers=API_HEADERS)
        return error_page(PageError(400, "Invalid request", problems))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        if _is_api(request):
            return _json_error(500, "server_error", "the gateway hit an unexpected error; it has been logged")
        return error_page(PageError(500, "Something went wrong", "The gateway hit an unexpected error."))


__all__ = ["create_app", "security_headers"]
