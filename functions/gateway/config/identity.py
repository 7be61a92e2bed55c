"""A workspace's identity provider: the local development sign-in or an OpenID Connect provider."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from gateway.config.fields import DEV_SWITCH, ConfigModel, HttpUrl, SecretRef
from gateway.principals import person_id_problem


class DevUser(ConfigModel):
    id: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1)
    name: str | None = None
    email: str | None = None
    groups: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _a_person(cls, user_id: str) -> str:
        problem = person_id_problem(user_id)  # gateway.principals: no person may look like a service
        if problem is not None:
            raise ValueError(problem)
        return user_id


class DevLoginProvider(ConfigModel):
    """Built-in username/password sign-in for local development. Refused in a deployed stage unless enabled."""

    type: Literal["dev"]
    users: list[DevUser] = Field(min_length=1)
    allow_in_deployed_stage: bool = Field(
        default=False,
        description="Let the dev login sign users in outside the local stage (a test deployment only).",
        json_schema_extra={DEV_SWITCH: "explicit opt-in outside the local stage"},
    )


class OidcProvider(ConfigModel):
    """Any OpenID Connect provider (Cognito, Auth0, Okta, Entra ID, Google, Keycloak, ...)."""

    type: Literal["oidc"]
    issuer: HttpUrl
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    user_id_claim: str = "sub"
    name_claim: str = "name"
    groups_claim: str = "groups"
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)

    @field_validator("scopes")
    @classmethod
    def _requires_openid(cls, scopes: list[str]) -> list[str]:
        if "openid" not in scopes:
            raise ValueError("must include 'openid'")
        return scopes


IdentityProvider = Annotated[DevLoginProvider | OidcProvider, Field(discriminator="type")]
