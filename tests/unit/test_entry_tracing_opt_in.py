"""X-Ray tracing is an opt-in (template parameter ``Tracing``, ``GATEWAY_TRACING``): off, a function's cold start
loads no X-Ray SDK; on, the Powertools Tracer is built and patches the AWS SDK."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("tracing", "loaded"), [("false", False), ("true", True), (None, False)])
def test_the_x_ray_sdk_is_loaded_only_when_tracing_is_on(tracing: str | None, loaded: bool) -> None:
    setting = f"GATEWAY_TRACING={tracing!r}," if tracing is not None else ""
    script = (
        "import os, sys;"
        f"os.environ.update({setting} GATEWAY_CONFIG='examples/gateway.yaml',"
        " GATEWAY_PUBLIC_BASE_URL='https://gw.example.com', AWS_LAMBDA_FUNCTION_NAME='metadata');"
        "import metadata.app;"
        "print(any(name.split('.')[0] == 'aws_xray_sdk' for name in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT / 'functions'}:{ROOT}"}
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    assert output.stdout.strip() == str(loaded)
