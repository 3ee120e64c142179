"""Let a release's QueueAutoscalers go before the release itself goes.

``helm uninstall`` deletes a release's objects in one pass: the operator and its RBAC go at
the moment the QueueAutoscalers are marked for deletion, so nothing is left to take the
operator's finalizer off them and the namespace never finishes deleting. The chart runs this
as a pre-delete hook, while the operator is still there:

    python -m crypto_mine.operator.release --namespace NS --selector app.kubernetes.io/instance=R

It deletes the QueueAutoscalers the selector names, waits up to ``--timeout`` seconds for the
operator to let them go, then removes the operator's finalizer from those still there (the
operator is down or disabled; its daemons hold nothing that needs cleaning up).
"""

from __future__ import annotations

import argparse
import logging
import time

from crypto_mine.common.logs import configure_logging

from .kube_client import MERGE_PATCH, ApiError, KubeClient, resource_path
from .spec import FINALIZER, GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)


def _path(namespace: str, name: str = "") -> str:
    return resource_path(f"{GROUP}/{VERSION}", namespace, PLURAL, name)


def names(client: KubeClient, namespace: str, selector: str) -> list[str]:
    listed = client.request("GET", _path(namespace), query={"labelSelector": selector})
    return [item["metadata"]["name"] for item in listed["items"]]


def release_finalizer(client: KubeClient, namespace: str, name: str) -> None:
    """Take the operator's finalizer off one QueueAutoscaler (if it is still there)."""
    try:
        body = client.request("GET", _path(namespace, name))
        finalizers = body["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        # The resourceVersion makes the patch fail rather than drop a finalizer added meanwhile.
        patch = {
            "metadata": {
                "finalizers": [f for f in finalizers if f != FINALIZER],
                "resourceVersion": body["metadata"]["resourceVersion"],
            }
        }
        client.request("PATCH", _path(namespace, name), patch, content_type=MERGE_PATCH)
        log.warning("finalizer of QueueAutoscaler %s/%s removed (no operator)", namespace, name)
    except ApiError as error:
        if error.status != 404:
            raise


def release(client: KubeClient, namespace: str, selector: str, timeout: float) -> int:
    """Delete the selected QueueAutoscalers and see them gone; returns how many there were."""
    doomed = names(client, namespace, selector)
    for name in doomed:
        try:
            client.request("DELETE", _path(namespace, name))
        except ApiError as error:
            if error.status != 404:
                raise
    deadline = time.monotonic() + timeout
    while (left := names(client, namespace, selector)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for name in left:
        release_finalizer(client, namespace, name)
    return len(doomed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--selector", required=True, help="label selector of the release")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds for the operator")
    args = parser.parse_args(argv)
    configure_logging("operator-release", "INFO")
    count = release(KubeClient(), args.namespace, args.selector, args.timeout)
    log.info("%d QueueAutoscaler(s) of %s in %s deleted", count, args.selector, args.namespace)


if __name__ == "__main__":
    main()
