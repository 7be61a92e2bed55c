"""One function of the template and its pool of simulated Lambda containers.

A container runs one invocation at a time; a function gets a new container when all of its containers are busy, up
to a limit, as Lambda scales. Each container imports the handler on its first invocation (a cold start: the entry
point builds its own runtime from the environment), so containers share nothing but what they would share on AWS:
the tables, keys and secrets. Two kinds:

- ``isolation="process"`` (the dev server): each container is a process of its own
  (:class:`infra.lambda_container.ContainerProcess`), with the function's environment, as Lambda runs one execution
  environment per process. A container that outlives its timeout is killed and replaced on the next invocation.
- ``isolation="thread"`` (``make invoke``, and tests that inspect a container's runtime): each container is a
  daemon thread of this process with its own asyncio event loop (Mangum drives the app with
  ``run_until_complete``) and a fresh instance of the handler's module; the shared core is loaded once per
  process, like a layer. A thread cannot be killed: one that outlives its timeout stays busy until the handler
  returns.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import itertools
import logging
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from infra.child_process import REPO_ROOT
from infra.lambda_container import INIT_SECONDS, ContainerProcess, FunctionFailed, FunctionTimedOut, LambdaContext
from infra.lambda_event import request_id_of
from infra.template import FunctionSpec

log = logging.getLogger("infra.devserver")

DEFAULT_MAX_CONTAINERS = 8

Handler = Callable[[dict[str, Any], Any], Any]
Isolation = Literal["process", "thread"]
Forker = Callable[[FunctionSpec, Path, str, int], ContainerProcess]


@dataclass
class _Job:
    event: dict[str, Any]
    timeout: float
    future: concurrent.futures.Future[Any]


class LambdaFunction:
    """One function of the template and its pool of simulated containers (see the module docstring)."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        root: Path = REPO_ROOT,
        max_containers: int = DEFAULT_MAX_CONTAINERS,
        isolation: Isolation = "thread",
    ) -> None:
        self.spec = spec
        self.root = root
        self.max_containers = max_containers
        self.isolation: Isolation = isolation
        self.environment: dict[str, str] = {}
        """The containers' environment, for process containers (thread containers share ``os.environ``)."""
        self.log_level = logging.INFO
        self.forker: Forker | None = None
        """Starts a container process from a fork server (:mod:`infra.lambda_zygote`) instead of a new interpreter."""
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._modules: list[ModuleType] = []
        self._containers: list[threading.Thread] = []
        self._processes: set[ContainerProcess] = set()
        self._idle = 0
        self._pending = 0
        self._closed = False

    @property
    def code_dir(self) -> Path:
        return (self.root / self.spec.code_uri).resolve()

    @property
    def containers(self) -> int:
        """How many containers have been started (a measure of concurrency)."""
        with self._lock:
            return len(self._containers)

    @property
    def process_ids(self) -> list[int]:
        """The process ids of its running container processes (none for thread containers)."""
        with self._lock:
            return [container.pid for container in self._processes if container.running]

    @property
    def modules(self) -> list[ModuleType]:
        """The handler module each thread container loaded, oldest first (tests inspect a container's runtime)."""
        with self._lock:
            return list(self._modules)

    def invoke(self, event: dict[str, Any], *, integration_timeout: float | None = None) -> Any:
        """Run the handler on ``event`` in a free container and return its result.

        Raises :class:`FunctionTimedOut` after the function's timeout (or ``integration_timeout`` if shorter) and
        :class:`FunctionFailed` when the handler cannot be imported or raises.
        """
        timeout = float(self.spec.timeout)
        if self.isolation == "process":
            # The container enforces the function's timeout from the invocation on (not its init phase, as on
            # Lambda); the integration's timeout counts everything, a cold start included.
            timeout = integration_timeout if integration_timeout is not None else INIT_SECONDS + timeout
        elif integration_timeout is not None:
            timeout = min(timeout, integration_timeout)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job(event, float(self.spec.timeout), future))
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            # The container stays busy until the function's own timeout (a process is killed then); new requests
            # go to other containers meanwhile.
            raise FunctionTimedOut(f"{self.spec.logical_id} did not answer within {timeout:g} s") from None

    def close(self) -> None:
        """Stop the containers: idle ones at once, busy thread containers when their invocation returns (daemon
        threads), busy container processes at once (killed after a grace period). Idempotent."""
        with self._lock:
            self._closed = True
            count = len(self._containers)
            processes = list(self._processes)
        for _ in range(count):
            self._jobs.put(None)
        for process in processes:
            process.stop()

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise FunctionFailed(f"{self.spec.logical_id} is shut down")
            self._pending += 1
            if self._pending > self._idle and len(self._containers) < self.max_containers:
                self._start_container()
        self._jobs.put(job)

    def _start_container(self) -> None:
        """Called with the lock held. A new container counts as idle: it is about to take a job."""
        number = len(self._containers) + 1
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{secrets.token_hex(16)}"
        target = self._process_container_main if self.isolation == "process" else self._thread_container_main
        thread = threading.Thread(
            target=target, args=(stream,), name=f"{self.spec.logical_id}-container-{number}", daemon=True
        )
        self._containers.append(thread)
        self._idle += 1
        thread.start()

    def _next_job(self) -> _Job | None:
        job = self._jobs.get()
        if job is not None:
            with self._lock:
                self._idle -= 1
                self._pending -= 1
        return job

    def _job_done(self) -> None:
        with self._lock:
            self._idle += 1
            self._settled.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no invocation of this function is queued or running, the work its requests left for after the
        answer included (tests that read what a request recorded after its answer); False on timeout."""
        with self._lock:
            return self._settled.wait_for(lambda: self._pending == 0 and self._idle == len(self._containers), timeout)

    # --- a container in a process of its own ------------------------------------------------------------------

    def _process_container_main(self, log_stream_name: str) -> None:
        """Relays this container's jobs to its process, started on the first job (and again after it died)."""
        container: ContainerProcess | None = None
        try:
            while (job := self._next_job()) is not None:
                try:
                    if not job.future.set_running_or_notify_cancel():
                        continue
                    try:
                        if container is None or not container.running:
                            container = self._new_process(log_stream_name)
                        request_id = request_id_of(job.event) or secrets.token_hex(16)
                        job.future.set_result(container.invoke(job.event, request_id=request_id, timeout=job.timeout))
                    except BaseException as error:
                        job.future.set_exception(error)
                    if container is not None and container.running:
                        # The answer is on its way; the container stays busy until the work the request left for
                        # after the answer is done, as a Lambda execution environment does while an extension runs.
                        container.await_settled(job.timeout)
                finally:
                    self._job_done()
        finally:
            if container is not None:
                container.stop()
                with self._lock:
                    self._processes.discard(container)

    def _new_process(self, log_stream_name: str) -> ContainerProcess:
        with self._lock:
            if self._closed:
                raise FunctionFailed(f"{self.spec.logical_id} is shut down")
            container = None
            if self.forker is not None:
                try:
                    container = self.forker(self.spec, self.code_dir, log_stream_name, self.log_level)
                except FunctionFailed as problem:
                    log.warning("%s; new interpreters from now on", problem)
                    self.forker = None
            if container is None:
                container = ContainerProcess.spawn(
                    self.spec,
                    code_dir=self.code_dir,
                    env=self.environment,
                    log_stream_name=log_stream_name,
                    log_level=self.log_level,
                )
            self._processes.add(container)
            return container

    # --- a container in a thread of this process --------------------------------------------------------------

    def _thread_container_main(self, log_stream_name: str) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        handler: list[Handler] = []  # loaded by the first invocation of this container
        try:
            while (job := self._next_job()) is not None:
                try:
                    if job.future.set_running_or_notify_cancel():
                        self._run(job, log_stream_name, handler)
                finally:
                    self._job_done()
        finally:
            loop.close()

    def _run(self, job: _Job, log_stream_name: str, handler: list[Handler]) -> None:
        try:
            if not handler:
                handler.append(self._load_handler())
            context = LambdaContext(
                self.spec.logical_id,
                memory_size=self.spec.memory_size,
                request_id=request_id_of(job.event) or secrets.token_hex(16),
                log_stream_name=log_stream_name,
                timeout=job.timeout,
            )
            job.future.set_result(handler[0](job.event, context))
        except BaseException as error:  # a Lambda runtime reports any failure
            job.future.set_exception(error)

    def _load_handler(self) -> Handler:
        """A fresh instance of the handler's module (``proxy.app`` of ``proxy.app.handler``), as a new container's
        init phase runs it; the shared core it imports is loaded once per process, like a layer."""
        handler = self.load(self.spec.handler)
        if not callable(handler):
            raise FunctionFailed(f"{self.spec.handler} is not callable")
        loaded: Handler = handler
        return loaded

    def load(self, dotted: str) -> Any:
        """``module.attribute`` from a fresh instance of the module in the function's code directory."""
        module_name, _, attribute = dotted.rpartition(".")
        code_dir = self.code_dir
        if str(code_dir) not in sys.path:
            sys.path.insert(0, str(code_dir))
        path = code_dir.joinpath(*module_name.split(".")).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(f"{module_name}.container{next(_container_numbers)}", path)
        if spec is None or spec.loader is None:
            raise FunctionFailed(f"{self.spec.logical_id}: no module {module_name} in {code_dir}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        value = getattr(module, attribute, None)
        if value is None:
            raise FunctionFailed(f"{module_name} has no {attribute!r}")
        with self._lock:
            self._modules.append(module)
        return value


_container_numbers = itertools.count(1)
