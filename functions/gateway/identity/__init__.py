"""Sign-in at a workspace's identity provider: a generic OpenID Connect relying party (:mod:`.oidc`) and the
built-in development login (:mod:`.dev_login`). Both yield a :class:`~gateway.identity.user.SignedInUser`."""
