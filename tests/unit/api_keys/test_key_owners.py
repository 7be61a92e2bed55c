"""Who may own a gateway API key: a person of the workspace's identity provider, or a service (the reserved
``service:`` prefix of gateway.principals), never one of the gateway's own reserved subjects."""

from __future__ import annotations

import pytest

from gateway.api_keys.issuing import KeyRefused, KeyRequest, create_key
from tests.support.runtime import memory_runtime


@pytest.mark.parametrize("owner", ["alice", "service:backup-job"])
def test_a_person_or_a_service_may_own_a_key(owner: str) -> None:
    runtime = memory_runtime()
    request = KeyRequest(workspace="demo", user_id=owner, name="ci", servers=("echo",))
    key, _ = create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
    assert key.user_id == owner


@pytest.mark.parametrize("owner", ["", "#oauth-client"])
def test_a_reserved_subject_may_not_own_a_key(owner: str) -> None:
    runtime = memory_runtime()
    request = KeyRequest(workspace="demo", user_id=owner, name="ci", servers=("echo",))
    with pytest.raises(KeyRefused, match="service:name"):
        create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
