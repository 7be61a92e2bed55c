"""The local stack's building blocks, shared by ``make dev``, ``make invoke``, ``make bench`` and the tests: the
local AWS stand-in provisioned from template.yaml, the demo upstream, and the functions' environment for a
configuration (:func:`start_stack`, :func:`gateway_environment`). Each server runs in a process of its own
(docs/architecture.md, "The local stack").
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.demo_upstream import DemoUpstream, start_demo_upstream
from infra.devserver import REPO_ROOT, function_environment
from infra.local_aws import LocalAws, local_environment, provision, start_local_aws

log = logging.getLogger("infra.dev")

TEMPLATE_PATH = REPO_ROOT / "template.yaml"
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "gateway.yaml"
HOST = "127.0.0.1"
DEFAULT_DEV_PORT = 9000
DEFAULT_UPSTREAM_PORT = 9001
# The upstream URL examples/gateway.yaml gives the demo route; rewritten when the demo upstream runs elsewhere.
DEMO_UPSTREAM_URL = f"http://{HOST}:{DEFAULT_UPSTREAM_PORT}/mcp"


def gateway_environment(
    template: dict[str, Any],
    *,
    endpoint_url: str,
    refs: dict[str, str],
    public_base_url: str,
    config_path: Path = EXAMPLE_CONFIG,
    parameters: Mapping[str, str] | None = None,
    compiled: bool = False,
) -> dict[str, str]:
    """The environment every function gets locally: what the template gives it with ``parameters`` (with the
    provisioned table, key and secret ids), the SDK pointed at the stand-in, and the local stage, config and base
    URL. The config's validated form is written beside it (:func:`compile_config`, unless ``compiled``), so the
    functions load it as they do deployed."""
    if not compiled:
        compile_config(config_path)
    env = function_environment(template, refs=refs, parameters=parameters)
    env.update(local_environment(endpoint_url))
    env.update(
        GATEWAY_STAGE="local",
        GATEWAY_CONFIG=str(config_path),
        GATEWAY_PUBLIC_BASE_URL=public_base_url,
        GATEWAY_METRICS="false",  # no EMF document per request in the dev server's terminal (CloudWatch reads them)
        GATEWAY_LOG_FORMAT="text",  # the dev server's readable lines, not a JSON line per record as well
    )
    return env


def compile_config(config_path: Path) -> None:
    """Validate the configuration and write its validated form beside it, as ``make build`` does for the deployed
    one (the same command, on this checkout's functions/). A file that cannot be validated (or a directory that
    cannot be written) is left as it is: the functions then validate the file themselves and report what is wrong
    with it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "functions")}
    command = [sys.executable, "-m", "gateway.config", "compile", str(config_path)]
    completed = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        log.debug("no validated form of %s: %s", config_path, completed.stderr.strip())


def config_for_upstream(upstream_url: str, directory: Path, config_path: Path = EXAMPLE_CONFIG) -> Path:
    """``config_path`` itself if the demo upstream runs where it says, else a copy in ``directory`` pointing at
    ``upstream_url``."""
    if upstream_url == DEMO_UPSTREAM_URL:
        return config_path
    text = config_path.read_text(encoding="utf-8").replace(DEMO_UPSTREAM_URL, upstream_url)
    copy = directory / config_path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def served_config(config_path: Path, directory: Path, upstream_url: str | None) -> Path:
    """The copy of ``config_path`` the functions read, in ``directory`` (its validated form goes beside it, not
    beside the user's file): examples/gateway.yaml pointed at the demo upstream's actual address, any other
    configuration as written."""
    directory.mkdir(parents=True, exist_ok=True)
    text = config_path.read_text(encoding="utf-8")
    if is_example(config_path) and upstream_url is not None:
        text = text.replace(DEMO_UPSTREAM_URL, upstream_url)
    copy = directory / config_path.name
    copy.write_text(text, encoding="utf-8")
    return copy


def is_example(config_path: Path) -> bool:
    return config_path.resolve() == EXAMPLE_CONFIG.resolve()


@dataclass
class Stack:
    """The local AWS stand-in with the template's resources, the demo upstream, and the functions' environment;
    each server in a process of its own (:mod:`infra.child_process`)."""

    aws: LocalAws
    refs: dict[str, str]
    upstream: DemoUpstream | None
    env: dict[str, str]
    _workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    config_source: Path = EXAMPLE_CONFIG  # the configuration asked for; ``config_path`` is the one served
    aws_state: Path | None = None  # where the stand-in keeps its state across restarts, if it does

    @property
    def endpoint_url(self) -> str:
        return self.aws.endpoint_url

    @property
    def config_path(self) -> Path:
        """The configuration the functions read (``GATEWAY_CONFIG``)."""
        return Path(self.env["GATEWAY_CONFIG"])

    def stop(self) -> None:
        """Stop the demo upstream, then the stand-in (which saves its state last). Idempotent."""
        if self.upstream is not None:
            self.upstream.stop()
        self.aws.stop()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_stack(
    template: dict[str, Any],
    *,
    public_base_url: str,
    upstream_port: int | None = 0,
    aws_port: int = 0,
    config_path: Path = EXAMPLE_CONFIG,
    parameters: Mapping[str, str] | None = None,
    config_dir: Path | None = None,
    aws_state: Path | None = None,
) -> Stack:
    """Start moto, provision the template, start the demo upstream (``upstream_port`` None: none) and compute
    the functions' environment for a copy of ``config_path`` (:func:`served_config`) in ``config_dir`` (default: a
    temporary directory, removed at stop); ``parameters`` are template parameters (``ProxyResponseMode``);
    ``aws_state``: the file the stand-in keeps its state in across restarts. Raises ``OSError`` when a port is
    taken."""
    # The two servers start side by side, and the configuration is validated meanwhile.
    upstream = start_demo_upstream(upstream_port, wait=False) if upstream_port is not None else None
    try:
        aws = start_local_aws(aws_port, state=aws_state, wait=False)
    except BaseException:
        if upstream is not None:
            upstream.stop()
        raise
    workdir = None
    try:
        if config_dir is None:
            workdir = tempfile.TemporaryDirectory(prefix="mcp-gateway-dev-")
            config_dir = Path(workdir.name)
        served = served_config(config_path, config_dir, upstream.url if upstream is not None else None)
        compile_config(served)
        aws.wait_ready()
        refs = provision(aws.endpoint_url, template)
        env = gateway_environment(
            template,
            endpoint_url=aws.endpoint_url,
            refs=refs,
            public_base_url=public_base_url,
            config_path=served,
            parameters=parameters,
            compiled=True,
        )
        if upstream is not None:
            upstream.wait_ready()
    except BaseException:
        aws.stop()
        if upstream is not None:
            upstream.stop()
        if workdir is not None:
            workdir.cleanup()
        raise
    return Stack(aws, refs, upstream, env, workdir, config_path, aws_state)
