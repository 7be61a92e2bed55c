"""Who a user id names: a person signed in at the workspace's identity provider, or a non-human principal.

Every grant, API key, upstream credential and audit event names its principal by one string, the *user id*. A
person's user id is the identity provider's claim (``user_id_claim``, ``sub`` by default) or the dev login's id. A
non-human principal's user id starts with :data:`SERVICE_PREFIX`: a service identity bound to a confidential client
(``client_credentials``, ``service_identity: service:nightly-ci`` in the configuration) or the owner of an API key
that is a service (``create-key --user service:backup-job``). The prefix is reserved: a sign-in whose user id
starts with it (or with ``#``, the reserved subjects of upstream credentials) is refused, and the dev login's
users may not take it, so no person can ever act as, or be mistaken for, a service (issue "Fail closed", item 9).
"""

from __future__ import annotations

SERVICE_PREFIX = "service:"
RESERVED_PREFIXES = (SERVICE_PREFIX, "#")


def is_service(user_id: str) -> bool:
    """Whether ``user_id`` names a non-human principal."""
    return user_id.startswith(SERVICE_PREFIX)


def person_id_problem(user_id: str) -> str | None:
    """Why ``user_id`` cannot be a person's (it takes a reserved form), or None when it can."""
    if not user_id:
        return "the user id is empty"
    for prefix in RESERVED_PREFIXES:
        if user_id.startswith(prefix):
            return f"user ids starting with {prefix!r} are reserved for the gateway's non-human principals"
    return None
