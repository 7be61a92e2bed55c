"""Metadata function (gateway/web/metadata/): Protected Resource Metadata, authorization-server metadata at every
discovery URL, JWKS. PRM and AS metadata are served without importing the AWS SDK; only the JWKS reads the signing
keys from KMS."""

from gateway.entry import build_function
from gateway.web.metadata.app import create_app

function = build_function("metadata", create_app)
handler = function.handler
