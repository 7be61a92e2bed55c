"""Work that need not delay a request's answer: recorded after the client has it, where the deployment allows.

A handler hands such work (the proxy's ``tool.called`` audit event; any record of what a request did that its
client does not wait for) to :meth:`AfterAnswer.defer`. What happens then depends on who runs the container:

- **Deferred** (:attr:`AfterAnswer.deferring`): the work waits in the queue until the container's runner calls
  :meth:`AfterAnswer.run` once the answer has left. On Lambda's buffered deployment that runner is an internal
  extension (:mod:`gateway.lambda_extension`): Lambda returns the function's response to the client as soon as the
  runtime posts it, "even if extensions are still running", and the invocation (billed, within the function's
  timeout) ends only when the extension signals it is done (AWS Lambda Extensions API, "Invoke phase"). The local
  stack's containers do the same (``infra/lambda_container.py``).
- **Inline** (everywhere else): :meth:`AfterAnswer.defer` runs the work at once, before the answer. A thread left
  running after a handler returns is no way out: Lambda freezes the execution environment once the runtime and
  every extension asked for the next event, and such a thread resumes only in a later invocation, if any (Lambda
  execution environment, "Invoke phase"). The streaming deployment answers through the Lambda Web Adapter, whose
  invocation ends with the response's last byte, so its work stays inline, before that byte.

Work never fails the request nor the runner: an exception is logged and counted (:attr:`failures`), as the audit
trail's own writes are.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("gateway.after_answer")

Work = Callable[[], None]


class AfterAnswer:
    """The container's queue of work for after the answer (one invocation at a time, as Lambda runs a container)."""

    def __init__(self) -> None:
        self._pending: list[Work] = []
        self._lock = threading.Lock()
        self.deferring = False
        """True once a runner will call :meth:`run` after each answer; until then :meth:`defer` runs work at once."""
        self.failures = 0

    def defer(self, work: Work) -> None:
        """Run ``work`` after the answer has left (or now, when nothing would run it later)."""
        if not self.deferring:
            self._run_one(work)
            return
        with self._lock:
            self._pending.append(work)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def run(self) -> int:
        """Run every piece of work deferred so far, in order (the runner calls this after the answer left); returns
        how many ran."""
        with self._lock:
            work, self._pending = self._pending, []
        for piece in work:
            self._run_one(piece)
        return len(work)

    def _run_one(self, work: Work) -> None:
        try:
            work()
        except Exception:  # work after the answer must never fail the request, nor stop its runner
            self.failures += 1
            logger.exception("work after the answer failed")
