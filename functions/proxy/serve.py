"""Streaming deployment entry point: the proxy's ASGI app under uvicorn, on the port the Lambda Web Adapter
forwards each invocation to (``proxy/run.sh`` starts it; the adapter streams what it answers back to API Gateway).

The adapter's own contract sets ``PORT`` (``AWS_LWA_PORT`` wins, as in the adapter); the app itself is built from
the same environment as the buffered handler, by :mod:`proxy.app`.
"""

from __future__ import annotations

import os

import uvicorn

DEFAULT_PORT = 8080  # the adapter's default


def port(environ: dict[str, str] | os._Environ[str]) -> int:
    raw = environ.get("AWS_LWA_PORT") or environ.get("PORT") or str(DEFAULT_PORT)
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"PORT must be a number, not {raw!r}") from None


def main() -> None:
    # One request at a time per container (Lambda's model): no access log (the function logs each request itself),
    # no lifespan (the app builds its runtime at import, as the buffered handler does). Every implementation named
    # rather than "auto", so nothing optional is probed on a cold start (uvloop, httptools, a websockets library),
    # and no proxy headers: the adapter on localhost is the only client, and addresses come from API Gateway.
    uvicorn.run(
        "proxy.app:asgi_app",
        host="127.0.0.1",
        port=port(os.environ),
        loop="asyncio",
        http="h11",
        ws="none",
        interface="asgi3",
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_level="warning",
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
