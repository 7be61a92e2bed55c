"""Access tokens: JWTs (RFC 9068) signed by a key behind the :class:`~gateway.tokens.keys.Signer` port."""
