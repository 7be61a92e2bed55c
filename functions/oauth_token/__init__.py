"""Token function: the token (authorization_code, refresh_token) and revocation endpoints of every route.

Named ``oauth_token`` because a package named ``token`` would shadow the standard library module."""
