"""A real HTTPS server on 127.0.0.1 for tests of outbound fetches, with a throwaway certificate for ``localhost``,
``127.0.0.1`` and ``cimd.test`` (a name tests resolve to 127.0.0.1 themselves)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    chunked: bool = False


@dataclass
class LocalHttps:
    port: int
    replies: dict[str, Reply]
    ca_file: str
    seen_hosts: list[str]
    seen_sni: list[str | None]
    hits: dict[str, int]

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"


def _certificate(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    # OpenSSL checks validity against the real system clock, which a clock-shifted test run does not move: a window
    # of a day either side holds whichever clock the certificate was made under.
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("cimd.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@contextmanager
def local_https() -> Iterator[LocalHttps]:
    with tempfile.TemporaryDirectory() as directory:
        cert_file, key_file = _certificate(Path(directory))
        replies: dict[str, Reply] = {}
        seen_hosts: list[str] = []
        seen_sni: list[str | None] = []
        hits: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                seen_hosts.append(self.headers.get("Host", ""))
                hits[self.path] = hits.get(self.path, 0) + 1
                reply = replies.get(self.path, Reply(404, b"not found"))
                if reply.delay_seconds:
                    time.sleep(reply.delay_seconds)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for start in range(0, len(reply.body), 8192):
                            piece = reply.body[start : start + 8192]
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass
                    return
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                with suppress(OSError):
                    self.wfile.write(reply.body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)

        def remember_sni(_socket: object, server_name: str | None, _context: object) -> None:
            seen_sni.append(server_name)

        context.sni_callback = remember_sni
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield LocalHttps(server.server_address[1], replies, cert_file, seen_hosts, seen_sni, hits)
        finally:
            server.shutdown()
            server.server_close()
