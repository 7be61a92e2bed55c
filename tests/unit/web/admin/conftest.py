"""An admin function on an in-memory runtime, and browsers signed in to its workspace as an admin (alice), as a
user who is not one (bob), or not at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.responses import Response
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.identity.user import SignedInUser
from gateway.runtime import Runtime
from gateway.web.admin.app import create_app
from gateway.web.common import session
from tests.support.manual_clock import ManualClock
from tests.support.runtime import example_config_data, memory_runtime

BASE = "https://gw.example.com"
WORKSPACE = "demo"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def console_config() -> dict[str, object]:
    """The example workspace (alice an admin, bob not) with a route whose upstream account each user connects."""
    data = example_config_data()
    data["oauth"] = {"cimd_allow_private_addresses": True}
    data["workspaces"]["demo"]["servers"]["notes"] = {
        "title": "Notes",
        "upstream": "http://127.0.0.1:9/notes/mcp",  # never called
        "auth": {"type": "oauth", "authorization_server": "http://127.0.0.1:9/as", "registration": "preregistered",
                 "client_id": "gateway"},
    }  # fmt: skip
    return data


@pytest.fixture
def runtime(clock: ManualClock) -> Runtime:
    return memory_runtime(parse_config(console_config()), clock=clock)


def browser(runtime: Runtime, user: str | None) -> TestClient:
    """A browser with the workspace's session of ``user`` (None: signed out)."""
    client = TestClient(create_app(runtime), base_url=BASE, follow_redirects=False)
    if user is not None:
        response = Response()
        session.start(
            response, SignedInUser(user, f"{user.title()} Example"), WORKSPACE, base_url=BASE,
            secret=runtime.shared_secret, now=runtime.now(),
        )  # fmt: skip
        name, _, rest = response.headers["set-cookie"].partition("=")
        client.cookies.set(name, rest.split(";", 1)[0])
    return client


@pytest.fixture
def admin(runtime: Runtime) -> Iterator[TestClient]:
    with browser(runtime, "alice") as client:
        yield client


@pytest.fixture
def csrf(admin: TestClient) -> str:
    token: str = admin.get(f"/{WORKSPACE}/admin/api/session").json()["csrf_token"]
    return token
