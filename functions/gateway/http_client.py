"""One pooled ``httpx.AsyncClient`` per event loop, reused across invocations of a warm container.

On Lambda, Mangum runs every invocation on the same loop, so this is one client per container. The local dev server
runs each simulated container on its own thread and loop, and a client must not cross loops.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import weakref

import httpx

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()

LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=60)

# httpcore asks ``import sniffio`` on every pool operation (several times per request). anyio 4 no longer installs
# sniffio, so each of those is a failed import that searches the whole sys.path. Recording the module as absent
# (``None`` in sys.modules, the import system's documented negative entry) makes them fail at once, as before.
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


def shared_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(limits=LIMITS, follow_redirects=False, trust_env=False)
        _clients[loop] = client
    return client
