"""The JWS algorithms the gateway accepts in JWTs that others sign (client assertions, ID-JAGs, DPoP proofs): the
asymmetric ones of RFC 7518 §3.1 (RS*, PS*, ES*) and RFC 8037 §3.1 (EdDSA). Never ``none``, never an HMAC algorithm,
whose "public" key would be a shared secret (RFC 8725 §3.1). A module of its own, importing nothing, so that the
metadata function advertises them without importing a JOSE library."""

ASYMMETRIC_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
