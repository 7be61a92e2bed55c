"""The building blocks of the configuration's models: the strict base model, slugs, exact http(s) URLs, secret
references, the development-switch marker."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.principals import SERVICE_PREFIX

# Marks a field that is a development switch (json_schema_extra): its value says where it is allowed. A test checks
# that docs/deploy.md lists every marked field.
DEV_SWITCH = "x-dev-switch"

SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, description="Lower-case letters, digits and dashes.")]


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return value


# An http(s) URL kept exactly as written (pydantic's HttpUrl would add a trailing slash to a bare host, which breaks
# exact issuer comparison, and importing it costs every cold start an importlib.metadata scan).
HttpUrl = Annotated[str, AfterValidator(http_url), Field(json_schema_extra={"format": "uri"})]

SERVICE_IDENTITY = re.compile(rf"^{SERVICE_PREFIX}[A-Za-z0-9][A-Za-z0-9._@:-]{{0,127}}$")

SECRET_REF_PATTERN = r"^(env|ssm|secretsmanager|plain):.+$"
SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description=(
            "Where a secret value is read: 'secretsmanager:<name or ARN>', 'ssm:<parameter name>', "
            "'env:<VARIABLE>' (local use) or 'plain:<value>' (local use only)."
        ),
    ),
]


class ConfigModel(BaseModel):
    # defer_build: the validators are built on the first validation (a build, the local stack, a test), not when a
    # cold start imports this module to read an already validated configuration.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
