"""DynamoDB's JSON API called directly: the hot path's operations as SigV4-signed requests on a kept connection.

botocore spends about 1 ms of CPU on every call (measured in docs/performance.md: event hooks, parameter validation,
endpoint rules, header objects, response parsing), which was most of the proxy's own work per request. The stores
(:mod:`gateway.aws.dynamodb_store`, :mod:`~gateway.aws.dynamodb_grants`, :mod:`~gateway.aws.dynamodb_audit`) make
few kinds of calls with requests they build themselves, so
:class:`DirectDynamoDB` serves those itself — the request is the call's arguments as JSON (DynamoDB's
``application/x-amz-json-1.0`` protocol), signed with AWS Signature Version 4 — and answers exactly as botocore's
low-level client does, errors included (``ClientError`` with the service's error code, ``BotoCoreError`` subclasses
for the connection), so the stores' error translation to ``StorageError`` is the same. Every other operation goes to
the botocore client it wraps, which also supplies the endpoint (``AWS_ENDPOINT_URL``, region, FIPS...), the
credentials (refreshed by botocore when they are temporary) and the CA bundle.

Transport: one kept HTTP/1.1 connection per thread (:mod:`gateway.aws.kept_connection`; a container serves one
request at a time, a virtual route's credential reads run in worker threads), opened again at once when the server
closed it while idle; throttling, 5xx and connection failures are retried with jittered backoff up to
:data:`MAX_ATTEMPTS` attempts, as botocore's standard retry mode does.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from gateway.aws.kept_connection import BadAnswer, ClosedBeforeAnswer, KeptConnection

SERVICE = "dynamodb"
TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
MAX_ATTEMPTS = 3
BACKOFF_BASE_SECONDS = 0.05
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
# The operations served here: what the stores call per request. Transactions, scans and the rest go to botocore.
DIRECT_OPERATIONS = {
    "get_item": "GetItem",
    "put_item": "PutItem",
    "update_item": "UpdateItem",
    "delete_item": "DeleteItem",
    "query": "Query",
}
# Retried like botocore's standard mode: throttling and transient service errors.
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "Throttling",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
_STALE_CONNECTION = (ClosedBeforeAnswer, BrokenPipeError, ConnectionResetError)


class SigningCredentials(Protocol):
    """What signing needs of AWS credentials (botocore's frozen credentials have these attributes)."""

    @property
    def access_key(self) -> str | None: ...

    @property
    def secret_key(self) -> str | None: ...

    @property
    def token(self) -> str | None: ...


def signing_key(secret_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """SigV4's derived key for one day, region and service (AWS General Reference, "Signature Version 4")."""
    key = hmac.new(("AWS4" + secret_key).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signed_headers(
    *,
    host: str,
    target: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    token: str | None,
    region: str,
    amz_date: str,
    key: bytes | None = None,
) -> dict[str, str]:
    """The headers of a signed POST to ``/`` (SigV4 with the signature in ``Authorization``). ``amz_date`` is
    ``YYYYMMDDTHHMMSSZ`` (UTC); ``key`` the day's :func:`signing_key` when the caller keeps it."""
    headers = {"content-type": CONTENT_TYPE, "host": host, "x-amz-date": amz_date, "x-amz-target": target}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    signed = ";".join(names)
    canonical_request = f"POST\n/\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
    date = amz_date[:8]
    scope = f"{date}/{region}/{SERVICE}/aws4_request"
    string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    key = key or signing_key(secret_key, date, region)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def _request_bytes(headers: Mapping[str, str], body: bytes) -> bytes:
    """A POST to ``/`` with ``headers`` (their values are the signer's: no CR or LF) and ``body``."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST / HTTP/1.1\r\n{lines}content-length: {len(body)}\r\n\r\n".encode() + body


def _encode(value: Any) -> Any:
    """Bytes (a ``B`` attribute value) as the protocol sends them: base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot send a {type(value).__name__} to DynamoDB")


def decode_blobs(value: Any) -> Any:
    """The protocol's base64 text back to bytes where it is a binary attribute value (``B``, ``BS``), as botocore
    returns them. Only attribute values have a member named ``B``/``BS`` whose value is text (an item's attribute
    named ``B`` holds an attribute value, a mapping)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name == "B" and isinstance(item, str):
                out[name] = base64.b64decode(item)
            elif name == "BS" and isinstance(item, list) and all(isinstance(part, str) for part in item):
                out[name] = [base64.b64decode(part) for part in item]
            else:
                out[name] = decode_blobs(item)
        return out
    if isinstance(value, list):
        return [decode_blobs(item) for item in value]
    return value


def _error_code(document: Mapping[str, Any]) -> str:
    kind = str(document.get("__type") or "UnknownError")
    return kind.rpartition("#")[2]


class DirectDynamoDB:
    """A drop-in for botocore's DynamoDB client: :data:`DIRECT_OPERATIONS` are served directly, everything else by
    ``client``. ``clock`` gives the signing time (seconds since the epoch)."""

    def __init__(
        self,
        client: Any,
        *,
        credentials: Callable[[], SigningCredentials | None],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._clock = clock
        self._sleep = sleep
        self.meta = client.meta
        self._region: str = client.meta.region_name
        self._endpoint_url: str = client.meta.endpoint_url
        parts = urlsplit(self._endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an HTTP endpoint: {self._endpoint_url!r}")
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        default_port = 443 if self._https else 80
        self._host_header = parts.netloc if parts.port not in (None, default_port) else parts.hostname
        self._ssl_context = ssl_context
        self._local = threading.local()  # one kept connection per thread
        self._keys: dict[tuple[str, str], bytes] = {}
        self._models: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        operation = DIRECT_OPERATIONS.get(name)
        if operation is None:
            return getattr(self._client, name)

        def call(**kwargs: Any) -> dict[str, Any]:
            return self.call(operation, kwargs)

        return call

    # --- one call -----------------------------------------------------------------------------------------------

    def call(self, operation: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """One operation, retried as botocore's standard mode would; its parsed answer, or botocore's exceptions.

        Like botocore's client it first emits ``before-call.dynamodb.<Operation>`` on the client's event system, so
        what watches the client's calls (a test counting them, an operator's hook) sees these too."""
        self.meta.events.emit(
            f"before-call.{SERVICE}.{operation}",
            model=self._operation_model(operation), params={"headers": {}, "body": arguments}, context={},
        )  # fmt: skip
        body = json.dumps(arguments, separators=(",", ":"), default=_encode).encode()
        attempt = 0
        while True:
            attempt += 1
            try:
                status, data = self._send(TARGET_PREFIX + operation, body)
            except (ConnectionClosedError, EndpointConnectionError, ReadTimeoutError):
                if attempt >= MAX_ATTEMPTS:
                    raise
                self._backoff(attempt)
                continue
            document = json.loads(data) if data else {}
            if status == 200:
                # Only a binary attribute value has a member "B" or "BS" (in JSON an unescaped quote follows it)
                answer: dict[str, Any] = decode_blobs(document) if b'"B' in data else document
                return answer
            code = _error_code(document)
            if attempt < MAX_ATTEMPTS and (code in RETRYABLE_CODES or status >= 500):
                self._backoff(attempt)
                continue
            message = str(document.get("message") or document.get("Message") or "")
            error = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
            extra = {name: decode_blobs(value) for name, value in document.items() if name[:1].isupper()}
            error.update({name: value for name, value in extra.items() if name != "Message"})
            raise ClientError(error, operation)  # type: ignore[arg-type]

    def _operation_model(self, operation: str) -> Any:
        model = self._models.get(operation)
        if model is None:
            model = self._models[operation] = self.meta.service_model.operation_model(operation)
        return model

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not a secret

    def _send(self, target: str, body: bytes) -> tuple[int, bytes]:
        """POST one signed request on this thread's kept connection; (status, body). A connection the server closed
        while it was idle is replaced once, at once."""
        credentials = self._credentials()
        if credentials is None or not credentials.access_key or not credentials.secret_key:
            raise NoCredentialsError()
        now = datetime.datetime.fromtimestamp(self._clock(), datetime.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        key = self._key(credentials.secret_key, amz_date[:8])
        headers = signed_headers(
            host=self._host_header, target=target, body=body, access_key=credentials.access_key,
            secret_key=credentials.secret_key, token=credentials.token, region=self._region, amz_date=amz_date,
            key=key,
        )  # fmt: skip
        request = _request_bytes(headers, body)
        for attempt in (1, 2):
            connection = self._connection()
            reused = connection.answers > 0
            try:
                status, data, closes = connection.exchange(request)
            except _STALE_CONNECTION as error:
                self._drop()
                if reused and attempt == 1:
                    continue  # kept too long: the server closed it; once more on a new connection
                raise ConnectionClosedError(endpoint_url=self._endpoint_url) from error
            except TimeoutError as error:
                self._drop()
                raise ReadTimeoutError(endpoint_url=self._endpoint_url) from error
            except (BadAnswer, OSError, ValueError) as error:
                self._drop()
                raise ConnectionClosedError(endpoint_url=self._endpoint_url) from error
            if closes:
                self._drop()
            return status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _key(self, secret_key: str, date: str) -> bytes:
        key = self._keys.get((secret_key, date))
        if key is None:
            if len(self._keys) > 4:
                self._keys.clear()
            key = self._keys[(secret_key, date)] = signing_key(secret_key, date, self._region)
        return key

    def _connection(self) -> KeptConnection:
        connection: KeptConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        context = (self._ssl_context or ssl.create_default_context()) if self._https else None
        try:
            connection = KeptConnection(
                self._hostname, self._port, context=context, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                read_timeout=READ_TIMEOUT_SECONDS,
            )  # fmt: skip
        except OSError as error:  # refused, unreachable, timed out, TLS handshake
            raise EndpointConnectionError(endpoint_url=self._endpoint_url, error=error) from error
        self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection: KeptConnection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        self._drop()


def direct_client(client: Any, session: Any) -> Any:
    """``client`` (botocore's, from ``session``) with the hot path's operations served directly, or ``client`` itself
    where this module would not reach the endpoint as botocore does: through a configured proxy."""
    from botocore.httpsession import get_cert_path
    from botocore.utils import get_environ_proxies

    endpoint_url: str = client.meta.endpoint_url
    if client.meta.config.proxies or get_environ_proxies(endpoint_url):
        return client
    context = None
    if endpoint_url.startswith("https:"):
        context = ssl.create_default_context(cafile=session.get_config_variable("ca_bundle") or get_cert_path(True))
    resolved = session.get_credentials()

    def credentials() -> SigningCredentials | None:
        return None if resolved is None else resolved.get_frozen_credentials()

    return DirectDynamoDB(client, credentials=credentials, ssl_context=context)
