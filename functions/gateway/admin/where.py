"""Where the gateway the admin CLI acts on keeps its state, as the environment its functions would have.

``--local`` reads the running ``make dev``'s ``.dev/state.json``; ``--stack NAME`` reads the deployed stack's outputs
(``--region``, ``--profile``); otherwise the ``GATEWAY_*_TABLE`` and ``AWS_*`` variables of the environment, as the
functions read them. The CLI then builds its stores from that environment with the functions' own settings model
and composition root (``gateway.state_runtime.StateRuntime``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

STATE_FILE = Path(".dev/state.json")
OUTPUTS = {
    "GATEWAY_CLIENTS_TABLE": "ClientsTableName",
    "GATEWAY_GRANTS_TABLE": "GrantsTableName",
    "GATEWAY_UPSTREAM_TOKENS_TABLE": "UpstreamTokensTableName",
    "GATEWAY_AUDIT_TABLE": "AuditTableName",
}


class WhereError(Exception):
    """The CLI cannot tell where the gateway is; the message says how to say it."""


def local_environment(state_file: Path) -> dict[str, str]:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        env = state["env"]
    except (OSError, ValueError, KeyError, TypeError):
        raise WhereError(
            f"no running 'make dev' found ({state_file} is missing or unreadable): start it first"
        ) from None
    return {str(key): str(value) for key, value in env.items()}


def stack_environment(stack: str, region: str | None, profile: str | None) -> dict[str, str]:
    """The table names from the stack's outputs, and the region and profile to reach them."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        described = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as problem:
        raise WhereError(f"cannot read stack {stack!r}: {problem}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    missing = [output for output in OUTPUTS.values() if output not in outputs]
    if missing:
        raise WhereError(f"stack {stack!r} has no output {', '.join(missing)}: deploy the current template.yaml")
    env = {variable: outputs[output] for variable, output in OUTPUTS.items()}
    env["AWS_REGION"] = session.region_name or ""
    if profile:
        env["AWS_PROFILE"] = profile
    return env


def gateway_environment(
    *, local: bool, stack: str | None, region: str | None, profile: str | None, environ: Mapping[str, str]
) -> dict[str, str]:
    """The environment of the gateway to act on; raises :class:`WhereError` when it names no tables."""
    if local:
        env = local_environment(Path(environ.get("DEV_STATE_FILE") or STATE_FILE))
    elif stack:
        env = stack_environment(stack, region, profile)
    else:
        env = dict(environ)
    missing = [variable for variable in OUTPUTS if not env.get(variable)]
    if missing:
        raise WhereError(f"say where the gateway is: --local, --stack NAME, or set {', '.join(missing)}")
    return env
