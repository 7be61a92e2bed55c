"""Small cryptographic primitives every side of the gateway uses: random secrets and their stored (hashed) form, PKCE
(RFC 7636) S256. Below every feature package: the authorization server, the identity-provider client and the upstream
OAuth client all use them."""
