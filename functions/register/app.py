"""Register function: Dynamic Client Registration (RFC 7591) for each route's authorization server."""

from __future__ import annotations

import gc

from mangum import Mangum

from gateway.observability import ObserveRequests, configure_logging
from gateway.runtime import Runtime
from gateway.web.register_app import create_app

runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
configure_logging("register", runtime.settings.log_level, json_lines=runtime.settings.log_format == "json")
if runtime.settings.tracing:  # opt-in: the X-Ray SDK's imports cost cold-start time
    from aws_lambda_powertools import Tracer

    Tracer(service="register")  # patches the AWS SDK and httpx; Lambda's active tracing sends the segments
app = create_app(runtime)
handler = Mangum(ObserveRequests(app, "register", sink=print if runtime.settings.metrics else None), lifespan="off")
# What init built lives as long as the container: no later collection needs to examine it again (the first
# event's would have to walk all of it).
gc.freeze()
