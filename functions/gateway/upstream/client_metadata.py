"""The gateway's own identity as an OAuth client of upstream authorization servers: its redirect URI and the Client
ID Metadata Document it publishes (draft-ietf-oauth-client-id-metadata-document; MCP 2025-11-25 "Client ID Metadata
Documents"). Kept free of heavy imports: the metadata function serves the document.
"""

from __future__ import annotations

from urllib.parse import urlencode

from gateway.routes import Route

CLIENT_NAME = "MCP Gateway"


def connect_callback_url(route: Route) -> str:
    """The gateway's redirect URI at the authorization server of ``route``'s upstream: one per upstream
    (``{issuer}/connect/callback``, with ``?upstream=`` naming one upstream of a virtual route).

    RFC 9700 §4.4.2.2: a client that talks to several authorization servers uses a distinct redirect URI for each,
    and refuses an answer that arrives at the redirect URI of another than the one its flow was started with. That
    defeats a mix-up attack even at a server that does not send ``iss`` (RFC 9207): a code the honest server issued
    cannot be delivered to the flow of a malicious one (gateway.web.authorize.upstream_connect).
    """
    url = route.endpoint("connect/callback")
    return f"{url}?{urlencode({'upstream': route.member})}" if route.member is not None else url


def oauth_upstreams(route: Route) -> list[Route]:
    """The upstreams of ``route`` (itself, or each of a virtual route's) whose account is connected with OAuth."""
    return [upstream for upstream in (route.members() or [route]) if upstream.server.auth.type == "oauth"]


def client_metadata_url(route: Route) -> str:
    """Where the gateway publishes its client metadata document for ``route`` (its CIMD ``client_id``)."""
    return route.endpoint("oauth-client.json")


def client_metadata_document(route: Route) -> dict[str, object]:
    """The gateway's Client ID Metadata Document for ``route`` (draft-ietf-oauth-client-id-metadata-document):
    ``client_id`` equals the document's URL; a public client (no secret can be published), PKCE protects the code.
    A virtual route's document serves each of its upstreams, so it lists each one's redirect URI."""
    return {
        "client_id": client_metadata_url(route),
        "client_name": f"{CLIENT_NAME} ({route.workspace.title or route.workspace_name})",
        "client_uri": route.base_url,
        "redirect_uris": [connect_callback_url(upstream) for upstream in oauth_upstreams(route)],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    }
