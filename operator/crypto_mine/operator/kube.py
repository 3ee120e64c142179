"""The few Kubernetes API calls the operator makes beside kopf's own.

The client (``kube_client.py``) is synchronous; its calls run in threads. Transient API failures
(throttling, server errors, timeouts, lost connections) become ``kopf.TemporaryError`` so kopf
retries; a deleted QueueAutoscaler becomes ``kopf.PermanentError``; everything else about the
target is a :class:`TargetError` the caller turns into a condition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from .kube_client import MERGE_PATCH, ApiError, KubeClient, resource_path
from .spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

# (connect, read) seconds for every call.
REQUEST_TIMEOUT = (5.0, 20.0)
RETRY_DELAY = 5.0
_TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


class TargetError(Exception):
    """The scale target cannot be read or scaled; the message names it and says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    replicas: int
    ready: int


class KubeApi:
    """Scale subresource of the target Deployment, status of the QueueAutoscaler."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    async def read_target(self, namespace: str, name: str) -> Target:
        """Replicas and ready replicas, from the status subresource (what RBAC grants)."""
        deployment = await self._call(
            f"reading Deployment {namespace}/{name}",
            "GET",
            resource_path("apps/v1", namespace, "deployments", name, "status"),
        )
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        return Target(int(spec.get("replicas") or 0), int(status.get("readyReplicas") or 0))

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        await self._call(
            f"scaling Deployment {namespace}/{name} to {replicas}",
            "PATCH",
            resource_path("apps/v1", namespace, "deployments", name, "scale"),
            {"spec": {"replicas": replicas}},
        )

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        what = f"writing the status of QueueAutoscaler {namespace}/{name}"
        try:
            await self._call(
                what,
                "PATCH",
                resource_path(f"{GROUP}/{VERSION}", namespace, PLURAL, name, "status"),
                {"status": dict(status)},
            )
        except TargetError as error:
            if error.status == 404:
                raise kopf.PermanentError(f"{what}: it is gone") from error
            # A status the API server refuses will not be accepted by retrying either.
            log.error("%s failed: %s", what, error)

    async def _call(
        self, what: str, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        try:
            # Every write here is a merge patch (a GET sends no body, so no content type).
            return await asyncio.to_thread(
                self.client.request,
                method,
                path,
                body,
                content_type=MERGE_PATCH,
                timeout=REQUEST_TIMEOUT,
            )
        except ApiError as error:
            if error.status in _TRANSIENT_STATUSES:
                raise kopf.TemporaryError(
                    f"{what}: HTTP {error.status} {error.reason}", delay=RETRY_DELAY
                ) from error
            raise TargetError(f"{what}: {error.message}", error.status) from error
        except OSError as error:
            raise kopf.TemporaryError(f"{what}: {error!r}", delay=RETRY_DELAY) from error
