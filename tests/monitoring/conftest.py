"""The shared Kubernetes fixture (the live dashboard test runs the operator against it)."""

from __future__ import annotations

from tests.support.cluster import kubeconfig

__all__ = ["kubeconfig"]
