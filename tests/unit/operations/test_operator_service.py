"""The operator service over in-memory stores: offboarding ends every kind of access a user has (and says what it
ended), goes on past a failing store, keeps connections when asked; views never carry a secret; a key for a user
the development login does not know comes with a warning."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from gateway.api_keys.issuing import KeyRequest
from gateway.operations.queries import NotFound, OperatorError
from gateway.operations.service import OperatorService
from gateway.operations.views import ClientView, ConnectionView, GrantView, KeyView
from gateway.runtime import Runtime
from gateway.storage.ports import StorageError
from gateway.storage.records import UpstreamToken
from infra.memory.stores import MemoryApiKeyStore, MemoryUpstreamTokenStore
from infra.placeholders import create_grant
from tests.support.runtime import memory_runtime

SECRET_FIELDS = {"client_secret_hash", "refresh_salt", "secret_hash", "ciphertext", "lease_owner"}


def _connect(runtime: Runtime, route_key: str, subject: str) -> None:
    token = UpstreamToken(
        route_key=route_key, subject=subject, ciphertext=b"sealed", version=1, access_expires_at=None,
        updated_at=runtime.now(), metadata={"issuer": "https://as"},
    )  # fmt: skip
    assert runtime.upstream_tokens.put(token, None)


def _key(runtime: Runtime, service: OperatorService, user: str, name: str = "ci") -> str:
    created = service.create_key(KeyRequest(workspace="demo", user_id=user, name=name, servers=("echo",)))
    return created.key.key_id


@pytest.fixture
def runtime() -> Runtime:
    return memory_runtime()


@pytest.fixture
def service(runtime: Runtime) -> OperatorService:
    return runtime.operator_service(runtime.config)


def test_offboarding_ends_grants_keys_and_connections_and_says_what_it_ended(
    runtime: Runtime, service: OperatorService
) -> None:
    # Given alice with two grants (one already revoked), a key, two upstream connections; and bob with the same
    echo, toolbox = runtime.routes.get("demo", "echo"), runtime.routes.get("demo", "toolbox")
    assert echo is not None and toolbox is not None
    grants = [create_grant(runtime, route, subject="alice", client_id="c") for route in (echo, toolbox, echo)]
    runtime.grants.revoke_grant(grants[2], runtime.now(), "user")
    key_id = _key(runtime, service, "alice")
    _connect(runtime, "demo/echo", "alice")
    _connect(runtime, "demo/toolbox/demo", "alice")
    bobs = create_grant(runtime, echo, subject="bob", client_id="c")
    bobs_key = _key(runtime, service, "bob")
    _connect(runtime, "demo/echo", "bob")

    # When alice is offboarded
    result = service.offboard_user("demo", "alice", by="admin")

    # Then each of her active grants, her key and her connections are ended, and listed
    assert result.failures == ()
    ended = {(item.kind, item.id) for item in result.offboarding.ended}
    assert ended == {
        ("grant", grants[0]), ("grant", grants[1]), ("api_key", key_id),
        ("connection", "demo/echo"), ("connection", "demo/toolbox/demo"),
    }  # fmt: skip
    assert all(runtime.grants.get_grant(grant_id).status == "revoked" for grant_id in grants)  # type: ignore[union-attr]
    assert runtime.grants.get_grant(grants[0]).revoked_reason == "offboarded"  # type: ignore[union-attr]
    assert runtime.api_keys.get_key(key_id).status == "revoked"  # type: ignore[union-attr]
    assert runtime.upstream_tokens.routes_of_subject("demo", "alice") == []

    # And bob keeps all of his
    assert runtime.grants.get_grant(bobs).status == "active"  # type: ignore[union-attr]
    assert runtime.api_keys.get_key(bobs_key).status == "active"  # type: ignore[union-attr]
    assert runtime.upstream_tokens.get("demo/echo", "bob") is not None

    # And the trail has each change and one summary, as done by the admin
    events = runtime.audit_log.events("demo", since=0, until=runtime.now() + 1, user_id="alice", limit=1000)
    kinds = [event.kind for event in events]
    assert kinds.count("grant.revoked") == 2 and kinds.count("key.revoked") == 1
    assert kinds.count("upstream.disconnected") == 2
    [summary] = [event for event in events if event.kind == "user.offboarded"]
    assert summary.detail == {"by": "admin", "grants": 2, "api_keys": 1, "connections": 2}

    # When it runs again, there is nothing left to end
    assert service.offboard_user("demo", "alice").offboarding.ended == ()


def test_offboarding_can_keep_the_upstream_connections(runtime: Runtime, service: OperatorService) -> None:
    _connect(runtime, "demo/echo", "alice")
    key_id = _key(runtime, service, "alice")

    result = service.offboard_user("demo", "alice", keep_connections=True)

    assert [(item.kind, item.id) for item in result.offboarding.ended] == [("api_key", key_id)]
    assert result.offboarding.kept_connections == ("demo/echo",)
    assert runtime.upstream_tokens.get("demo/echo", "alice") is not None


def test_offboarding_a_user_named_shared_leaves_the_routes_shared_accounts(
    runtime: Runtime, service: OperatorService
) -> None:
    _connect(runtime, "demo/echo", "shared")
    result = service.offboard_user("demo", "shared")
    assert result.offboarding.kept_connections == ("demo/echo",)
    assert runtime.upstream_tokens.get("demo/echo", "shared") is not None


class FailingKeys(MemoryApiKeyStore):
    def revoke_key(self, key_id: str, now: int) -> None:
        raise StorageError("throttled")


class FailingConnections(MemoryUpstreamTokenStore):
    def routes_of_subject(self, workspace: str, subject: str) -> list[str]:
        raise StorageError("unreachable")


def test_offboarding_goes_on_past_a_failing_store_and_reports_what_it_could_not_end(runtime: Runtime) -> None:
    # Given a store that cannot revoke keys and one that cannot list connections
    runtime.__dict__.update(api_keys=FailingKeys(), upstream_tokens=FailingConnections())
    service = runtime.operator_service(runtime.config)
    echo = runtime.routes.get("demo", "echo")
    assert echo is not None
    grant_id = create_grant(runtime, echo, subject="alice", client_id="c")
    key_id = _key(runtime, service, "alice")

    # When alice is offboarded
    result = service.offboard_user("demo", "alice")

    # Then the grant is ended all the same, and the key and the connections are reported as not ended
    assert [(item.kind, item.id) for item in result.offboarding.ended] == [("grant", grant_id)]
    assert result.failures == (
        f"API key {key_id} not ended: throttled",
        "the user's upstream connections could not be read: unreachable",
    )


def test_views_have_no_field_for_a_secret(runtime: Runtime, service: OperatorService) -> None:
    for view in (GrantView, ClientView, KeyView, ConnectionView):
        assert not {item.name for item in dataclasses.fields(view)} & SECRET_FIELDS, view
    echo = runtime.routes.get("demo", "echo")
    assert echo is not None
    grant = service.grant(create_grant(runtime, echo, subject="alice", client_id="c"))
    assert grant.user_id == "alice" and grant.status == "active"
    _connect(runtime, "demo/echo", "alice")
    assert service.connection("demo/echo", "alice").metadata == {"issuer": "https://as"}


def test_unknown_ids_are_not_found_with_the_id_in_the_message(service: OperatorService) -> None:
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: service.grant("-nope"), "no grant '-nope'"),
        (lambda: service.revoke_key("k"), "no key 'k'"),
        (lambda: service.disconnect("demo/echo", "alice"), "no upstream connection of 'alice' at 'demo/echo'"),
        (lambda: service.revoke_client("c"), "no client 'c'"),
    ]
    for call, text in calls:
        with pytest.raises(NotFound, match=text):
            call()


def test_a_key_for_a_user_the_development_login_does_not_know_comes_with_a_warning(service: OperatorService) -> None:
    request = KeyRequest(workspace="demo", user_id="mallory", name="ci", servers=("echo",))
    [warning] = service.create_key(request).warnings
    assert "no user 'mallory'" in warning and "alice" in warning
    assert service.create_key(dataclasses.replace(request, user_id="alice")).warnings == ()


def test_creating_a_key_needs_the_configuration(runtime: Runtime) -> None:
    service = runtime.operator_service()
    with pytest.raises(OperatorError, match="--config FILE"):
        service.create_key(KeyRequest(workspace="demo", user_id="alice", name="ci", servers=("echo",)))
