"""Metadata function: Protected Resource Metadata, authorization-server metadata at every discovery URL, JWKS.

PRM and AS metadata are served without importing the AWS SDK; only the JWKS reads the signing keys from KMS.
"""

from __future__ import annotations

from mangum import Mangum

from gateway.runtime import Runtime
from gateway.web.metadata_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
app = create_app(runtime)
handler = Mangum(app, lifespan="off")
