"""The gateway's own identity as an OAuth client of upstream authorization servers: its redirect URI and the Client
ID Metadata Document it publishes (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25 "Client ID Metadata
Documents"). Kept free of heavy imports: the metadata function serves the document.
"""

from __future__ import annotations

from gateway.routes import Route

CLIENT_NAME = "MCP Gateway"


def connect_callback_url(base_url: str, workspace_name: str) -> str:
    """The one redirect URI of the gateway at every upstream authorization server of a workspace."""
    return f"{base_url}/{workspace_name}/connect/callback"


def client_metadata_url(route: Route) -> str:
    """Where the gateway publishes its client metadata document for ``route`` (its CIMD ``client_id``)."""
    return route.endpoint("oauth-client.json")


def client_metadata_document(route: Route) -> dict[str, object]:
    """The gateway's Client ID Metadata Document for ``route`` (draft-ietf-oauth-client-id-metadata-document):
    ``client_id`` equals the document's URL; a public client (no secret can be published), PKCE protects the code."""
    return {
        "client_id": client_metadata_url(route),
        "client_name": f"{CLIENT_NAME} ({route.workspace.title or route.workspace_name})",
        "client_uri": route.base_url,
        "redirect_uris": [connect_callback_url(route.base_url, route.workspace_name)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }
