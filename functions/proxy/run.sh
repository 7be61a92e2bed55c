#!/bin/sh
# The streaming deployment's handler (template.yaml, ProxyResponseMode=streaming): the Lambda Web Adapter layer runs
# this script once per container and forwards each invocation to the server it starts, streaming the answer back.
exec python -m proxy.serve
