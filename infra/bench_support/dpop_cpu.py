"""``make bench`` part ``dpop``: what a DPoP proof (RFC 9449) adds to the gateway's own work per warm ``tools/call``,
beside a Bearer token on the same route, and the AWS calls it makes (issue "Enterprise-managed authorization and
DPoP": ≤ 0.3 ms CPU over Bearer, still 0 KMS).

The proxy's ASGI app is called directly from a loop in this process, on an in-memory runtime (no AWS SDK: the grant
read is a dictionary lookup), against an upstream in another process (:mod:`infra.bench_support.slow_upstreams`),
the Bearer and DPoP calls interleaved in one run. Each DPoP call carries a fresh proof made before the clock starts
(making a proof is the client's work). The replay memory is the default one (``GATEWAY_DPOP_REPLAY=container``);
the shared one adds one conditional write per call, a store round trip like the grant read beside it.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

BASE_URL = "https://gw.example.com"
ACCEPT = "application/json, text/event-stream"


def _runtime(config: dict[str, Any], directory: Path) -> Any:
    from gateway.config import parse_config
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from gateway.tokens.access_token import AccessTokens
    from infra.memory import stores as memory
    from infra.memory.cipher import LocalTokenCipher
    from infra.memory.keys import LocalRsaKey

    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    runtime = Runtime(Settings(config=str(path), public_base_url=BASE_URL), parse_config(config))
    key = LocalRsaKey()
    runtime.__dict__.update(
        clients=memory.MemoryClientStore(), grants=memory.MemoryGrantStore(),
        upstream_tokens=memory.MemoryUpstreamTokenStore(), audit_log=memory.MemoryAuditLog(),
        usage_log=memory.MemoryUsageLog(),
        api_keys=memory.MemoryApiKeyStore(), rate_limiter=memory.MemoryRateLimiter(),
        single_use=memory.MemorySingleUseStore(), shared_secret=b"bench-shared-secret-0123456789abcdef",
        public_keys=key, access_tokens=AccessTokens(key, key, runtime.settings.access_token_ttl_seconds),
        upstream_token_cipher=LocalTokenCipher(), signing_key=key,
    )  # fmt: skip
    return runtime


def _proof(private_key: Any, public_jwk: dict[str, str], url: str, token: str) -> str:
    import base64
    import hashlib
    import secrets

    import jwt

    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
    claims = {"jti": secrets.token_urlsafe(12), "htm": "POST", "htu": url, "iat": int(time.time()), "ath": ath}
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public_jwk})


def measure_dpop(root: Path, calls: int) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    from gateway.tokens.foreign_jwts import jwk_thumbprint
    from gateway.web.proxy.app import create_app
    from infra.bench_support.virtual_cpu import call_asgi, initialize_body, tools_call_body
    from infra.placeholders import create_grant

    command = [sys.executable, "-m", "infra.bench_support.slow_upstreams", "0"]
    process = subprocess.Popen(command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdin is not None
    try:
        upstream = process.stdout.readline().split()[2]
        with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-dpop-") as directory:
            config = {
                "workspaces": {
                    "bench": {
                        "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "alice-password"}]},
                        "servers": {"plain": {"upstream": upstream}},
                    }
                }
            }
            runtime = _runtime(config, Path(directory))
            app = create_app(runtime)
            route = runtime.routes.get("bench", "plain")
            key = ec.generate_private_key(ec.SECP256R1())
            public = {k: v for k, v in ECAlgorithm.to_jwk(key.public_key(), as_dict=True).items() if k != "alg"}
            tokens = {
                scheme: runtime.access_tokens.issue(
                    route=route, subject="alice", client_id="bench", scopes=["mcp"],
                    grant_id=create_grant(runtime, route, subject="alice", client_id="bench"),
                    jkt=jwk_thumbprint(public) if scheme == "DPoP" else None,
                )
                for scheme in ("Bearer", "DPoP")
            }  # fmt: skip
            signs_before = runtime.signing_key.sign_calls
            path = "/bench/plain/mcp"
            cpu: dict[str, list[float]] = {"Bearer": [], "DPoP": []}
            wall: dict[str, list[float]] = {"Bearer": [], "DPoP": []}  # latency, upstream round trip included

            async def run() -> None:
                base = {"accept": ACCEPT, "content-type": "application/json", "mcp-protocol-version": "2025-11-25"}
                for scheme, token in tokens.items():
                    headers = {**base, "authorization": f"{scheme} {token}"}
                    if scheme == "DPoP":
                        headers["dpop"] = _proof(key, public, route.resource, token)
                    status, _, _ = await call_asgi(app, path, headers, initialize_body())
                    assert status == 200, (scheme, status)
                for round_ in range(calls + 50):  # the first 50 rounds warm up
                    for scheme, token in tokens.items():
                        headers = {**base, "authorization": f"{scheme} {token}"}
                        if scheme == "DPoP":
                            headers["dpop"] = _proof(key, public, route.resource, token)
                        started, began = time.process_time(), time.perf_counter()
                        status, _, body = await call_asgi(app, path, headers, tools_call_body("tool_0"))
                        spent, took = time.process_time() - started, time.perf_counter() - began
                        if status != 200 or b'"result"' not in body:
                            raise RuntimeError(f"{scheme}: HTTP {status} {body[:200]!r}")
                        if round_ >= 50:
                            cpu[scheme].append(spent * 1000)
                            wall[scheme].append(took * 1000)

            asyncio.run(run())
            kms_calls = runtime.signing_key.sign_calls - signs_before
    finally:
        process.stdin.close()
        process.wait(timeout=10)
    mean = {scheme: statistics.fmean(values) for scheme, values in cpu.items()}
    median = {scheme: statistics.median(values) for scheme, values in cpu.items()}
    p50 = {scheme: statistics.median(values) for scheme, values in wall.items()}
    added = mean["DPoP"] - mean["Bearer"]
    return (
        f"Gateway CPU per warm `tools/call` with a Bearer token and with a DPoP-bound token and a fresh ES256 proof "
        f"({calls} calls each, interleaved; the proxy's ASGI app called directly on an in-memory runtime, the upstream "
        "in another process; the proof is made by the client, outside the measurement):\n\n"
        "| token | gateway CPU ms per call (mean) | (median) | p50 ms per call (upstream round trip included) "
        "| KMS calls |\n|---|---|---|---|---|\n"
        f"| Bearer | {mean['Bearer']:.3f} | {median['Bearer']:.3f} | {p50['Bearer']:.3f} | 0 |\n"
        f"| DPoP (`Authorization: DPoP` + proof, replay memory in the container) | {mean['DPoP']:.3f} | "
        f"{median['DPoP']:.3f} | {p50['DPoP']:.3f} | {kms_calls} |\n\n"
        f"Added by DPoP: **{added:+.3f} ms** CPU per call (target ≤ 0.3 ms: {'met' if added <= 0.3 else 'missed'}), "
        f"**{p50['DPoP'] - p50['Bearer']:+.3f} ms** p50; "
        f"KMS calls during the {2 * calls} measured calls: {kms_calls}. AWS calls per DPoP call: the grant read, as "
        "with Bearer; with `GATEWAY_DPOP_REPLAY=shared` one conditional write more."
    )
