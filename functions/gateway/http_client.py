"""One pooled ``httpx.AsyncClient`` per event loop, reused across invocations of a warm container.

On Lambda, Mangum runs every invocation on the same loop, so this is one client per container. The local dev server
runs each simulated container on its own thread and loop, and a client must not cross loops.
"""

from __future__ import annotations

import asyncio
import weakref

import httpx

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()

LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=60)


def shared_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(limits=LIMITS, follow_redirects=False, trust_env=False)
        _clients[loop] = client
    return client
