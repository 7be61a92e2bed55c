"""Metadata function: Protected Resource Metadata, authorization-server metadata at every discovery URL, JWKS.

PRM and AS metadata are served without importing the AWS SDK; only the JWKS reads the signing keys from KMS.
"""

from __future__ import annotations

from mangum import Mangum

from gateway.observability import ObserveRequests, configure_logging
from gateway.runtime import Runtime
from gateway.web.metadata_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
configure_logging("metadata", runtime.settings.log_level)
app = create_app(runtime)
handler = Mangum(ObserveRequests(app, "metadata", sink=print if runtime.settings.metrics else None), lifespan="off")
