"""The local AWS stand-in's own process: moto's WSGI app on 127.0.0.1, one AWS request at a time, over connections
that stay open (:mod:`infra.keepalive_wsgi`), with its state optionally kept in a file across restarts.

Started by :func:`infra.local_aws.start_local_aws` (see :mod:`infra.child_process` for ``--fd``/``--ready-fd``):

    python -m infra.local_aws_server --fd N --ready-fd M [--state FILE]

**One request at a time.** moto's condition checks are not atomic: two parallel conditional writes to one item can
both succeed, which DynamoDB never allows (the storage contract tests redeem one code from 8 threads). Connections
are still accepted in parallel; only the work is serialized, which costs nothing noticeable at local request rates.

**State across restarts** (``--state FILE``, what ``make dev`` uses, under ``.dev/``): moto keeps everything in
memory and makes new KMS key material at every start, so tokens signed and upstream tokens encrypted before a
restart would no longer verify or decrypt. With ``--state``, the services' backends (tables and items, keys with
their key material, aliases, secrets, parameters) are restored from FILE at start, and written back to it whenever
something changed (at most every :data:`SAVE_EVERY_SECONDS`) and at stop. FILE is a pickle: it is this user's own
file, written by this module with mode 0600, and read only from the path ``make dev`` gives; a file another moto
version wrote is ignored (a clean start) with a message saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.child_process import child_parser, inherited_socket, serve_until_stopped

log = logging.getLogger("infra.local_aws")

# The services the template's resources live in; only their state is kept.
SERVICES = ("dynamodb", "kms", "secretsmanager", "ssm")
SAVE_EVERY_SECONDS = 2.0
SNAPSHOT_FORMAT = 1
CALLS_PATH = "/_local-aws/calls"


# --- the state file -------------------------------------------------------------------------------------------


def _private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    return load_der_private_key(der, password=None)


class _SnapshotPickler(pickle.Pickler):
    """Pickles moto's backends; KMS private keys (``cryptography`` objects, not picklable) as PKCS #8 DER."""

    def reducer_override(self, obj: Any) -> Any:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if isinstance(obj, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            der = obj.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return _private_key, (der,)
        return NotImplemented


def _version() -> str:
    import moto

    return f"moto {moto.__version__}, Python {sys.version_info.major}.{sys.version_info.minor}"


def save_state(path: Path) -> None:
    """Write the services' backends to ``path`` (atomically, mode 0600). Call with requests held off."""
    import moto.backends

    backends = {
        service: {account: dict(regions) for account, regions in moto.backends.get_backend(service).items()}  # type: ignore[call-overload]
        for service in SERVICES
    }
    buffer = io.BytesIO()
    _SnapshotPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {"format": SNAPSHOT_FORMAT, "version": _version(), "backends": backends}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(buffer.getvalue())
    temporary.replace(path)


def load_state(path: Path) -> str:
    """Restore the services' backends from ``path``; returns what happened, in words, for the log."""
    import moto.backends

    try:
        with path.open("rb") as file:
            document = pickle.load(file)  # noqa: S301 - this user's own file, see the module docstring
    except FileNotFoundError:
        return "no saved state: a clean start"
    except Exception as error:  # a damaged file must not keep the stack from starting
        return f"the saved state in {path} cannot be read ({type(error).__name__}): a clean start"
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        return f"the saved state in {path} has another format: a clean start"
    if document.get("version") != _version():
        return f"the saved state in {path} was written by {document.get('version')}, not {_version()}: a clean start"
    for service, accounts in document["backends"].items():
        live = moto.backends.get_backend(service)
        for account, regions in accounts.items():
            for region, backend in regions.items():
                live[account][region] = backend
    return f"state restored from {path}"


# --- the server -----------------------------------------------------------------------------------------------


class SerializedMoto:
    """moto's WSGI app behind one lock (see the module docstring); notes whether anything was asked since the
    last save, and counts the calls by operation (``GET`` :data:`CALLS_PATH`: a JSON object such as
    ``{"DynamoDB_20120810.GetItem": 3}``, what a benchmark reads to count a handler's store calls from outside)."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from infra.moto_queries import install

        install()  # queries read their partition, not the whole table (infra/moto_queries.py)
        self._app = DomainDispatcherApplication(create_backend_app)
        self.lock = threading.Lock()
        self.changed = False
        self.calls: Counter[str] = Counter()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") == CALLS_PATH:
            with self.lock:
                body = json.dumps(dict(self.calls)).encode()
            start_response("200 OK", [("content-type", "application/json"), ("content-length", str(len(body)))])
            return [body]
        operation = environ.get("HTTP_X_AMZ_TARGET")
        with self.lock:
            if operation:
                self.calls[operation] += 1
            self.changed = True  # reads too: telling them apart would mean parsing every service's protocol
            result = self._app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()


class StateKeeper:
    """Saves the state every :data:`SAVE_EVERY_SECONDS` while something changes, and once more at :meth:`stop`."""

    def __init__(self, app: SerializedMoto, path: Path) -> None:
        self._app = app
        self._path = path
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-aws-state", daemon=True)
        self._thread.start()

    def save(self) -> None:
        with self._app.lock:
            if not self._app.changed:
                return
            try:
                save_state(self._path)
            except Exception:  # a full disk must not stop the stand-in serving
                log.exception("cannot save the local AWS state to %s", self._path)
                return
            self._app.changed = False

    def _run(self) -> None:
        while not self._stopped.wait(SAVE_EVERY_SECONDS):
            self.save()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self.save()


def main(argv: list[str] | None = None) -> None:
    parser = child_parser("The local AWS stand-in (moto) in a process of its own.")
    parser.add_argument("--state", type=Path, help="keep the state in this file across restarts")
    arguments = parser.parse_args(argv)
    state: Path | None = arguments.state
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    from infra.keepalive_wsgi import KeepAliveWsgiServer

    app = SerializedMoto()
    keeper = None
    if state is not None:
        outcome = load_state(state)
        log.log(logging.DEBUG if outcome.startswith(("no saved", "state restored")) else logging.WARNING, "%s", outcome)
        app.changed = False
        keeper = StateKeeper(app, state)
    server = KeepAliveWsgiServer(inherited_socket(arguments.fd), app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        if keeper is not None:
            keeper.stop()
        with contextlib.suppress(OSError):
            server.server_close()

    serve_until_stopped(arguments.ready_fd, stop)


if __name__ == "__main__":
    main()
