"""What ``make dev`` shows a user: the banner it prints, and the local start page the dev server answers at its own
address (``/``, ``/{workspace}``), both from the configuration the functions are given.

The start page is local only: the dev server answers it for requests no route of the template serves
(:class:`infra.devserver.DevServer` ``local_pages``); the deployed API has no such page. A browser that asks for
another path no route serves (``/demo/connections/``) gets a 404 with the same page and a pointer to what it may
have meant; any other client keeps API Gateway's ``{"message":"Not Found"}``.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from infra.lambda_event import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

ADMIN_CLI = ".venv/bin/mcp-gateway admin --local"
# What the issue of the admin console (26) serves per workspace, linked here once the template routes it.
ADMIN_CONSOLE_PATH = "/{workspace}/admin"


@dataclass(frozen=True)
class RouteView:
    key: str  # workspace/server
    title: str
    url: str  # the MCP endpoint
    prm_url: str
    upstream: str  # where it proxies to, in words
    claude_name: str  # the name in its `claude mcp add` line

    @property
    def claude_line(self) -> str:
        return f"claude mcp add --transport http {self.claude_name} {self.url}"


@dataclass(frozen=True)
class WorkspaceView:
    name: str
    title: str
    connections_url: str
    dev_logins: tuple[tuple[str, str], ...]  # (user id, password) of a dev-login workspace
    admin_url: str | None  # the admin console, once the template serves one


@dataclass(frozen=True)
class Overview:
    """Everything the banner and the start page say, computed once at start."""

    server_url: str
    config_source: str  # the configuration asked for, as the user named it
    routes: tuple[RouteView, ...]
    workspaces: tuple[WorkspaceView, ...]
    notes: tuple[str, ...] = field(default=())  # e.g. which route to point at the demo upstream, and how
    served_as: str = ""  # how the served copy differs from the file, if it does


def upstream_notes(config: GatewayConfig, source: str, upstream_url: str | None, default_url: str) -> list[str]:
    """What to say about the demo upstream when no route uses it: which routes still point at its default address
    (a copy of the example served with another ``UPSTREAM_PORT``) and how to change them; else that it is unused."""
    if upstream_url is None:
        return []
    stale: list[str] = []
    used = False
    for workspace_name, workspace in config.workspaces.items():
        for server_name, server in workspace.servers.items():
            targets = [(f"workspaces.{workspace_name}.servers.{server_name}.upstream", server.upstream)]
            for member, upstream in (server.upstreams or {}).items():
                targets.append(
                    (f"workspaces.{workspace_name}.servers.{server_name}.upstreams.{member}.url", upstream.url)
                )
            for key, url in targets:
                used = used or url == upstream_url
                if url == default_url and upstream_url != default_url:
                    stale.append(f"route {workspace_name}/{server_name} ({key})")
    if used:
        return []
    if not stale:
        return [f"no route of {source} uses the demo upstream"]
    return [
        f"{', '.join(stale)} points at {default_url}, where nothing of make dev runs: the demo upstream runs on "
        f"{upstream_url} (UPSTREAM_PORT). To use it, set that key to {upstream_url} in {source}, "
        "or start make dev without UPSTREAM_PORT."
    ]


def build_overview(
    config: GatewayConfig,
    server_url: str,
    *,
    config_source: str,
    upstream_url: str | None,
    default_upstream_url: str,
    serves: Callable[[str, str], bool],
    served_as: str = "",
) -> Overview:
    """``serves(method, path)``: whether the template routes that request (for the admin console's link)."""
    from gateway.config import DevLoginProvider
    from gateway.routes import RouteTable

    routes = RouteTable(config, server_url).all()
    names = [route.server_name for route in routes]
    views = []
    for route in routes:
        upstream = (
            str(route.server.upstream)
            if route.server.upstream
            else ", ".join(f"{member.member}: {member.server.upstream}" for member in route.members())
        )
        name = (
            route.server_name if names.count(route.server_name) == 1 else f"{route.workspace_name}-{route.server_name}"
        )
        views.append(RouteView(route.key, route.title, route.resource, route.resource_metadata_url, upstream, name))
    workspaces = []
    for workspace_name, workspace in config.workspaces.items():
        provider = workspace.identity_provider
        logins = (
            tuple((user.id, user.password) for user in provider.users) if isinstance(provider, DevLoginProvider) else ()
        )
        admin_path = ADMIN_CONSOLE_PATH.format(workspace=workspace_name)
        workspaces.append(
            WorkspaceView(
                workspace_name,
                workspace.title or workspace_name,
                f"{server_url}/{workspace_name}/connections",
                logins,
                f"{server_url}{admin_path}" if serves("GET", admin_path) else None,
            )
        )
    notes = upstream_notes(config, config_source, upstream_url, default_upstream_url)
    return Overview(server_url, config_source, tuple(views), tuple(workspaces), tuple(notes), served_as)


# --- the banner -------------------------------------------------------------------------------------------------


def banner_sections(overview: Overview) -> list[str]:
    """The banner's lines from the routes on (the caller prints where each part runs first)."""
    lines = ["", f"Routes ({overview.config_source}{overview.served_as}):"]
    for route in overview.routes:
        lines += [f"  {route.key:<20} {route.url}  ->  {route.upstream}", f"  {'':<20} PRM: {route.prm_url}"]
    lines += ["", "Add a route to Claude Code:"]
    lines += [f"  {route.claude_line}" for route in overview.routes]
    lines += ["", f"Start page: {overview.server_url}/"]
    for workspace in overview.workspaces:
        lines.append(f"My connections ({workspace.name}): {workspace.connections_url}")
        if workspace.admin_url:
            lines.append(f"Admin console ({workspace.name}): {workspace.admin_url}")
    for workspace in overview.workspaces:
        if workspace.dev_logins:
            logins = ", ".join(f"{user} / {password}" for user, password in workspace.dev_logins)
            lines.append(f"\nDev login for workspace {workspace.name}: {logins}")
    for note in overview.notes:
        lines.append(f"\nNote: {note}")
    lines.append("")
    return lines


# --- the start page ---------------------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1b1f}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:1.8rem}
.lede{color:#555;margin-top:0} table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:.35rem .5rem;
border-bottom:1px solid #e3e3e8;vertical-align:top} code{font:13px/1.4 ui-monospace,monospace;background:#f3f3f6;
padding:.1rem .3rem;border-radius:3px;overflow-wrap:anywhere} .missing{background:#fff4e5;border:1px solid #f0c36d;
padding:.6rem .8rem;border-radius:4px} .note{color:#8a4b00}
"""


def _code(text: str) -> str:
    return f"<code>{html.escape(text)}</code>"


def _link(url: str, text: str | None = None) -> str:
    return f'<a href="{html.escape(url)}">{html.escape(text or url)}</a>'


def start_page(overview: Overview, *, missing_path: str | None = None, hints: Sequence[str] = ()) -> str:
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>MCP gateway (make dev)</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>MCP gateway, running locally</h1>",
        "<p class=lede>Served by <code>make dev</code> only: a deployed gateway has no page at its root.</p>",
    ]
    if missing_path is not None:
        parts.append(f"<p class=missing>Nothing is served at {_code(missing_path)}.")
        parts += [f" Did you mean {_link(hint)}?" for hint in hints]
        parts.append("</p>")
    parts.append("<h2>Routes</h2><table><tr><th>route</th><th>MCP URL</th><th>upstream</th></tr>")
    for route in overview.routes:
        parts.append(
            f"<tr><td>{html.escape(route.key)}<br><small>{html.escape(route.title)}</small></td>"
            f"<td>{_code(route.url)}</td><td>{_code(route.upstream)}</td></tr>"
        )
    parts.append("</table><h2>Add a route to Claude Code</h2>")
    parts += [f"<p>{_code(route.claude_line)}</p>" for route in overview.routes]
    parts.append("<h2>Workspaces</h2><table><tr><th>workspace</th><th>pages</th><th>sign-in</th></tr>")
    for workspace in overview.workspaces:
        pages = f"My connections: {_link(workspace.connections_url)}"
        if workspace.admin_url:
            pages += f"<br>Admin console: {_link(workspace.admin_url)}"
        logins = ", ".join(f"{_code(user)} / {_code(password)}" for user, password in workspace.dev_logins)
        parts.append(
            f"<tr id='{html.escape(workspace.name)}'><td>{html.escape(workspace.name)}<br>"
            f"<small>{html.escape(workspace.title)}</small></td><td>{pages}</td>"
            f"<td>{logins or 'at the workspace&#39;s identity provider'}</td></tr>"
        )
    first = overview.workspaces[0].name if overview.workspaces else "WORKSPACE"
    parts += [
        "</table><h2>The admin CLI</h2>",
        f"<p>{_code(f'{ADMIN_CLI} routes')} lists the routes; "
        f"{_code(f'{ADMIN_CLI} audit --workspace {first} --since 1h')} shows what just happened "
        "(sign-ins, tokens, tool calls); <code>--help</code> lists the rest (grants, clients, keys, revoke).</p>",
    ]
    parts += [f"<p class=note>Note: {html.escape(note)}</p>" for note in overview.notes]
    parts.append("</body></html>")
    return "".join(parts)


def local_pages(overview: Overview) -> Callable[[HttpRequest], HttpResponse | None]:
    """The dev server's answer for requests no template route serves (see the module docstring)."""
    workspaces = {workspace.name for workspace in overview.workspaces}
    headers = [
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "no-store"),
        ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
        ("x-content-type-options", "nosniff"),
    ]

    def answer(request: HttpRequest) -> HttpResponse | None:
        if request.method not in ("GET", "HEAD"):
            return None
        path = request.raw_path
        segments = [segment for segment in path.split("/") if segment]
        if not segments or (len(segments) == 1 and segments[0] in workspaces):
            return HttpResponse(200, list(headers), start_page(overview).encode())
        accept = next((value for name, value in request.headers if name.lower() == "accept"), "")
        if "text/html" not in accept:
            return None
        hints = [
            candidate
            for candidate in (f"{overview.server_url}/{'/'.join(segments)}", *_near(overview, segments))
            if candidate != f"{overview.server_url}{path}" and _known(overview, candidate)
        ]
        page = start_page(overview, missing_path=path, hints=list(dict.fromkeys(hints)))
        return HttpResponse(404, list(headers), page.encode())

    return answer


def _near(overview: Overview, segments: list[str]) -> list[str]:
    """Pages a mistyped path may have meant: the workspace's My connections."""
    return [workspace.connections_url for workspace in overview.workspaces if segments[0] == workspace.name]


def _known(overview: Overview, url: str) -> bool:
    pages = {workspace.connections_url for workspace in overview.workspaces}
    pages |= {workspace.admin_url for workspace in overview.workspaces if workspace.admin_url}
    pages |= {route.url for route in overview.routes}
    return url in pages


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
