"""Metadata function: Protected Resource Metadata, authorization-server metadata at every discovery URL, JWKS.

PRM and AS metadata are served without importing the AWS SDK; only the JWKS reads the signing keys from KMS.
"""

from __future__ import annotations

from mangum import Mangum

from gateway.web.metadata_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
