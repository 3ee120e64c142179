"""The operator's Kubernetes REST client against local HTTP and HTTPS servers: credentials read
again as they age and after a 401, the TLS of a kubeconfig (CA and client certificate given as
data), errors as ApiError or OSError, the (connect, read) timeouts."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crypto_mine.operator.kube_client import (
    MERGE_PATCH,
    ApiError,
    KubeClient,
    LoginError,
    resource_path,
)
from devstack.servers import free_port

Answer = tuple[int, Any]  # status, JSON body (a str is sent as is)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """Answers requests from a script, in order; records what it was asked."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeApi]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(context: ssl.SSLContext | None = None) -> FakeApi:
        api = FakeApi("")

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one_request(self) -> None:
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                api.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                time.sleep(api.delay)
                status, answer = api.answers.pop(0) if api.answers else (200, {})
                data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        scheme = "https" if context else "http"
        api.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        return api

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class Logins:
    """A login function handing out token-1, token-2, ... for one server."""

    def __init__(self, server: str, **extra: Any) -> None:
        self.server = server
        self.extra = extra
        self.count = 0

    def __call__(self) -> kopf.ConnectionInfo:
        self.count += 1
        return kopf.ConnectionInfo(server=self.server, token=f"token-{self.count}", **self.extra)


def test_requests_are_json_with_the_token_and_the_content_type(
    serve: Callable[..., FakeApi],
) -> None:
    api = serve()
    api.answers = [(200, {"kind": "Scale"})]
    client = KubeClient(Logins(api.url + "/prefix/"))
    path = resource_path("apps/v1", "ns", "deployments", "worker", "scale")
    answer = client.request("PATCH", path, {"spec": {"replicas": 3}}, content_type=MERGE_PATCH)
    assert answer == {"kind": "Scale"}
    [seen] = api.seen
    assert (seen.method, seen.path) == (
        "PATCH", "/prefix/apis/apps/v1/namespaces/ns/deployments/worker/scale"
    )  # fmt: skip
    assert seen.headers["Authorization"] == "Bearer token-1"
    assert seen.headers["Content-Type"] == MERGE_PATCH
    assert json.loads(seen.body) == {"spec": {"replicas": 3}}
    client.request("GET", "/apis/x/v1/namespaces/ns/things", query={"labelSelector": "a=b,c"})
    assert api.seen[1].path == "/prefix/apis/x/v1/namespaces/ns/things?labelSelector=a%3Db%2Cc"
    assert "Content-Type" not in api.seen[1].headers


def test_an_error_status_is_an_api_error_with_the_status_message(
    serve: Callable[..., FakeApi],
) -> None:
    api = serve()
    status = {"kind": "Status", "message": 'leases "x" already exists', "code": 409}
    api.answers = [(409, status), (503, "upstream gone")]
    client = KubeClient(Logins(api.url))
    with pytest.raises(ApiError) as conflict:
        client.request("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases", {})
    assert (conflict.value.status, conflict.value.reason) == (409, "Conflict")
    assert conflict.value.message == 'leases "x" already exists'
    with pytest.raises(ApiError) as unavailable:
        client.request("GET", "/api")
    assert unavailable.value.message == "Service Unavailable"
    assert unavailable.value.body == "upstream gone"


def test_a_401_reads_the_credentials_again_and_retries_once(
    serve: Callable[..., FakeApi],
) -> None:
    api = serve()
    api.answers = [(401, {}), (200, {"ok": True}), (401, {}), (401, {})]
    logins = Logins(api.url)
    client = KubeClient(logins)
    assert client.request("GET", "/api") == {"ok": True}
    assert [s.headers["Authorization"] for s in api.seen] == ["Bearer token-1", "Bearer token-2"]
    with pytest.raises(ApiError) as refused:
        client.request("GET", "/api")
    assert refused.value.status == 401
    assert logins.count == 3


def test_credentials_are_read_again_once_a_minute(serve: Callable[..., FakeApi]) -> None:
    api = serve()
    now = [0.0]
    logins = Logins(api.url)
    client = KubeClient(logins, clock=lambda: now[0])
    client.request("GET", "/api")
    now[0] = 59.0
    client.request("GET", "/api")
    now[0] = 60.0
    client.request("GET", "/api")
    tokens = [s.headers["Authorization"] for s in api.seen]
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2"]


def test_credentials_that_cannot_be_read_again_are_an_os_error() -> None:
    """A refresh that fails is like a failed connection: the callers retry later."""
    logins: list[int] = []

    def login() -> kopf.ConnectionInfo:
        if logins:
            raise kopf.LoginError("Current context is not set in kubeconfigs.")
        logins.append(1)
        return kopf.ConnectionInfo(server=f"http://127.0.0.1:{free_port()}", token="t")

    client = KubeClient(login, max_age=0)
    with pytest.raises(LoginError, match="Current context is not set") as failed:
        client.request("GET", "/api")
    assert isinstance(failed.value, OSError)


def test_no_credentials_at_all_stop_the_client_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(kopf, "login_with_service_account", lambda **_: None)
    with pytest.raises(LoginError, match="no Kubernetes credentials"):
        KubeClient()


def test_an_answer_that_is_not_json_or_is_cut_off_is_an_os_error(
    serve: Callable[..., FakeApi],
) -> None:
    api = serve()
    api.answers = [(200, "<html>proxy</html>")]
    client = KubeClient(Logins(api.url))
    with pytest.raises(OSError, match="not JSON"):
        client.request("GET", "/api")
    with pytest.raises(ConnectionRefusedError):
        KubeClient(Logins(f"http://127.0.0.1:{free_port()}")).request("GET", "/api")


def test_a_slow_answer_times_out_after_the_read_timeout(serve: Callable[..., FakeApi]) -> None:
    api = serve()
    api.delay = 2.0
    client = KubeClient(Logins(api.url))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.request("GET", "/api", timeout=(1.0, 0.3))
    assert time.monotonic() - started < 1.5


@dataclass
class Pki:
    ca: bytes
    server: tuple[bytes, bytes]
    client: tuple[bytes, bytes]


def _issue(
    name: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None, server: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    return certificate.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca, ca_key = _issue("test-ca", None)
    authority = (ca.subject, ca_key)
    return Pki(
        ca=ca.public_bytes(serialization.Encoding.PEM),
        server=_pem(*_issue("apiserver", authority, server=True)),
        client=_pem(*_issue("operator", authority)),
    )


def test_tls_with_the_ca_and_a_client_certificate_given_as_kubeconfig_data(
    serve: Callable[..., FakeApi], pki: Pki, tmp_path: Path
) -> None:
    """The server asks for a client certificate; CA, certificate and key come base64-encoded,
    as kubeconfig's ``*-data`` fields hold them."""
    for name, data in {"ca.crt": pki.ca, "s.crt": pki.server[0], "s.key": pki.server[1]}.items():
        (tmp_path / name).write_bytes(data)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "s.crt", tmp_path / "s.key")
    context.load_verify_locations(tmp_path / "ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    api = serve(context)

    def encoded(data: bytes) -> str:
        return base64.b64encode(data).decode()

    with_certificate = Logins(
        api.url,
        ca_data=encoded(pki.ca),
        certificate_data=encoded(pki.client[0]),
        private_key_data=encoded(pki.client[1]),
    )
    assert KubeClient(with_certificate).request("GET", "/api") == {}
    with pytest.raises((ssl.SSLError, ConnectionError)):  # no client certificate: refused
        KubeClient(Logins(api.url, ca_data=encoded(pki.ca))).request("GET", "/api")
    # The same with files (kubeconfig's paths, or the service account's ca.crt).
    (tmp_path / "c.crt").write_bytes(pki.client[0])
    (tmp_path / "c.key").write_bytes(pki.client[1])
    with_files = Logins(
        api.url,
        ca_path=str(tmp_path / "ca.crt"),
        certificate_path=str(tmp_path / "c.crt"),
        private_key_path=str(tmp_path / "c.key"),
    )
    assert KubeClient(with_files).request("GET", "/api") == {}
    # Without the CA the server is not trusted; insecure-skip-tls-verify trusts it anyway.
    untrusted = Logins(api.url, certificate_path=str(tmp_path / "c.crt"),
                       private_key_path=str(tmp_path / "c.key"))  # fmt: skip
    with pytest.raises(ssl.SSLCertVerificationError):
        KubeClient(untrusted).request("GET", "/api")
    insecure = Logins(api.url, insecure=True, certificate_data=pki.client[0].decode(),
                      private_key_data=pki.client[1].decode())  # fmt: skip
    assert KubeClient(insecure).request("GET", "/api") == {}


def test_resource_paths() -> None:
    assert resource_path("coordination.k8s.io/v1", "ns", "leases") == (
        "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
    )
    assert resource_path("autoscaling.crypto-mine.io/v1alpha1", "ns", "queueautoscalers",
                         "worker", "status") == (
        "/apis/autoscaling.crypto-mine.io/v1alpha1/namespaces/ns/queueautoscalers/worker/status"
    )  # fmt: skip
