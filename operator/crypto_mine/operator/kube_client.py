"""A minimal Kubernetes REST client: JSON over HTTPS with the standard library.

The operator makes a handful of calls beside kopf's own (see ``kube.py``, ``leader.py``,
``release.py``); the official ``kubernetes`` client would add over 100 MB to the image for them.
The credentials are kopf's: the pod's service account (``kopf.login_with_service_account``),
else the ``KUBECONFIG`` file (``kopf.login_with_kubeconfig``): server, CA, bearer token, client
certificate. They are read again once a minute and after a 401, so a rotated service-account
token (bound tokens expire) is picked up.

Calls are synchronous, one connection each (async callers run them in a thread). An HTTP error
status raises :class:`ApiError`; anything that went wrong on the way (connection, TLS, timeout,
a broken answer, credentials unreadable on a refresh) raises an ``OSError``.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
# (connect, read) seconds.
DEFAULT_TIMEOUT = (5.0, 20.0)
# Seconds before the credentials are read again (the kubelet refreshes a bound token well
# before it expires; client-go re-reads the file every minute too).
CREDENTIALS_MAX_AGE = 60.0


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body

    @property
    def message(self) -> str:
        """The ``message`` of the API's Status answer, else the HTTP reason."""
        try:
            status = json.loads(self.body)
        except ValueError:
            return self.reason
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
        return self.reason


class LoginError(OSError):
    """No credentials: neither a service account nor a kubeconfig could be read."""


def login() -> kopf.ConnectionInfo:
    """The pod's service account, else ``KUBECONFIG`` (or ``~/.kube/config``)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(
        settings=settings
    )
    if info is None:
        raise LoginError("no Kubernetes credentials: no service account token, no kubeconfig")
    return info


def resource_path(api: str, namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    """``/apis/<group/version>/namespaces/<ns>/<plural>[/<name>[/<subresource>]]``."""
    parts = ["apis", api, "namespaces", namespace, plural, name, sub]
    return "/" + "/".join(urllib.parse.quote(part, safe="/.") for part in parts if part)


@dataclass(frozen=True)
class _Session:
    """What one login gives: where to connect, how, and the headers to send."""

    https: bool
    host: str
    port: int
    prefix: str
    context: ssl.SSLContext | None
    headers: Mapping[str, str]
    at: float


class KubeClient:
    """JSON requests to the API server with kopf's credentials, refreshed as they age."""

    def __init__(
        self,
        login: Callable[[], kopf.ConnectionInfo] = login,
        max_age: float = CREDENTIALS_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._login = login
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        # The first login happens now: missing credentials stop the caller at start-up.
        self._session = self._connect(login())

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """The decoded JSON answer; :class:`ApiError` on an error status, ``OSError`` on the way.

        A 401 reads the credentials again and retries once (the token may have rotated).
        """
        target = path + ("?" + urllib.parse.urlencode(query) if query else "")
        payload = None if body is None else json.dumps(body).encode()
        session = self._current()
        status, reason, data = self._send(session, method, target, payload, content_type, timeout)
        if status == 401:
            session = self._current(stale=session)
            status, reason, data = self._send(
                session, method, target, payload, content_type, timeout
            )
        text = data.decode(errors="replace")
        if status >= 400:
            raise ApiError(status, reason, text)
        try:
            answer = json.loads(text)
        except ValueError as error:
            raise OSError(f"{method} {path}: HTTP {status} answer is not JSON") from error
        if not isinstance(answer, dict):
            raise OSError(f"{method} {path}: HTTP {status} answer is not a JSON object")
        return answer

    def _current(self, stale: _Session | None = None) -> _Session:
        """The credentials, read again when older than ``max_age`` or when ``stale`` failed."""
        with self._lock:
            session = self._session
            if session is stale or self._clock() - session.at >= self._max_age:
                try:
                    session = self._session = self._connect(self._login())
                except OSError:
                    raise
                except Exception as error:  # kopf.LoginError, a kubeconfig that fails to parse
                    raise LoginError(f"reading the Kubernetes credentials: {error}") from error
            return session

    def _connect(self, info: kopf.ConnectionInfo) -> _Session:
        url = urllib.parse.urlsplit(info.server)
        https = url.scheme != "http"
        if not url.hostname:
            raise LoginError(f"the Kubernetes server {info.server!r} has no host")
        headers = {"Accept": JSON, "User-Agent": "crypto-mine-operator"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        return _Session(
            https=https,
            host=url.hostname,
            port=url.port or (443 if https else 80),
            prefix=url.path.rstrip("/"),
            context=ssl_context(info) if https else None,
            headers=headers,
            at=self._clock(),
        )

    @staticmethod
    def _send(
        session: _Session,
        method: str,
        target: str,
        payload: bytes | None,
        content_type: str,
        timeout: tuple[float, float],
    ) -> tuple[int, str, bytes]:
        connect, read = timeout
        connection: http.client.HTTPConnection
        if session.https:
            connection = http.client.HTTPSConnection(
                session.host, session.port, timeout=connect, context=session.context
            )
        else:
            connection = http.client.HTTPConnection(session.host, session.port, timeout=connect)
        headers = dict(session.headers)
        if payload is not None:
            headers["Content-Type"] = content_type
        try:
            connection.connect()
            connection.sock.settimeout(read)
            connection.request(method, session.prefix + target, payload, headers)
            response = connection.getresponse()
            return response.status, response.reason, response.read()
        except http.client.HTTPException as error:  # a malformed or cut-off answer
            raise ConnectionError(f"{method} {target}: {error!r}") from error
        finally:
            connection.close()


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext:
    """Verify the server with the CA of ``info`` (the system's when none); present its client
    certificate, if any. Certificate and key given as data go through files in a private
    temporary folder (``ssl`` loads them from files only), removed at once."""
    context = ssl.create_default_context(
        cafile=_path(info.ca_path), cadata=_pem(info.ca_data) if info.ca_data else None
    )
    if info.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    certificate, key = _path(info.certificate_path), _path(info.private_key_path)
    if info.certificate_data or info.private_key_data:
        with tempfile.TemporaryDirectory(prefix="kube-client-") as private:  # mode 0700
            if info.certificate_data:
                certificate = _write(Path(private, "client.crt"), _pem(info.certificate_data))
            if info.private_key_data:
                key = _write(Path(private, "client.key"), _pem(info.private_key_data))
            if certificate:
                context.load_cert_chain(certificate, key)
    elif certificate:
        context.load_cert_chain(certificate, key)
    return context


def _path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None) -> str | None:
    return os.fsdecode(path) if path else None


def _pem(data: str | bytes) -> str:
    """PEM text as is; kubeconfig's ``*-data`` fields hold it base64-encoded."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    if text.lstrip().startswith("-----BEGIN "):
        return text
    return base64.b64decode(text).decode("ascii")


def _write(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return str(path)
