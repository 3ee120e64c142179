"""The few Kubernetes API calls the operator makes beside kopf's own.

The `kubernetes` client is synchronous; its calls run in threads. Transient API failures
(throttling, server errors, timeouts, lost connections) become ``kopf.TemporaryError`` so kopf
retries; a deleted QueueAutoscaler becomes ``kopf.PermanentError``; everything else about the
target is a :class:`TargetError` the caller turns into a condition.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import kopf
import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from crypto_mine.operator.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
# (connect, read) seconds for every call.
REQUEST_TIMEOUT = (5.0, 20.0)
RETRY_DELAY = 5.0
_TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})

_T = TypeVar("_T")


class TargetError(Exception):
    """The scale target cannot be read or scaled; the message names it and says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def load_config() -> kubernetes.client.ApiClient:
    """An API client from the in-cluster service account, else from ``KUBECONFIG``."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    return kubernetes.client.ApiClient()


@dataclass(frozen=True)
class Target:
    replicas: int
    ready: int


class KubeApi:
    """Scale subresource of the target Deployment, status of the QueueAutoscaler."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.apps = kubernetes.client.AppsV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)

    async def read_target(self, namespace: str, name: str) -> Target:
        """Replicas and ready replicas, from the status subresource (what RBAC grants)."""
        deployment = await self._call(
            f"reading Deployment {namespace}/{name}",
            self.apps.read_namespaced_deployment_status,
            name,
            namespace,
        )
        spec, status = deployment.spec, deployment.status
        replicas = int(spec.replicas or 0) if spec is not None else 0
        ready = int(status.ready_replicas or 0) if status is not None else 0
        return Target(replicas, ready)

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(
            f"scaling Deployment {namespace}/{name} to {replicas}",
            self.apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        what = f"writing the status of QueueAutoscaler {namespace}/{name}"
        try:
            await self._call(
                what,
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                _content_type=MERGE_PATCH,
            )
        except TargetError as error:
            if error.status == 404:
                raise kopf.PermanentError(f"{what}: it is gone") from error
            # A status the API server refuses will not be accepted by retrying either.
            log.error("%s failed: %s", what, error)

    async def _call(self, what: str, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        try:
            return await asyncio.to_thread(
                method, *args, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except ApiException as error:
            if error.status in _TRANSIENT_STATUSES:
                raise kopf.TemporaryError(
                    f"{what}: HTTP {error.status} {error.reason}", delay=RETRY_DELAY
                ) from error
            raise TargetError(f"{what}: {_message(error)}", error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise kopf.TemporaryError(f"{what}: {error!r}", delay=RETRY_DELAY) from error


def _message(error: ApiException) -> str:
    """The Status message of an API error, else its reason."""
    try:
        body = json.loads(error.body or "")
    except ValueError:
        return str(error.reason)
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(error.reason)
