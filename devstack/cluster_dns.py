"""Service names for the local cluster's DNS: a hosts file that follows the API's Services.

dnsmasq (scripts/node.sh) answers from the folder this file lives in and reloads it when it
changes, so ``<service>.<namespace>.svc.cluster.local`` resolves in pods (and, through the
pods' search path, ``<service>``, ``<service>.<namespace>`` and ``<service>.<namespace>.svc``).

    python -m devstack.cluster_dns --kubeconfig FILE --hosts FILE
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

log = logging.getLogger("cluster-dns")
DOMAIN = "svc.cluster.local"
Services = dict[tuple[str, str], str]


def hosts_lines(services: Services) -> str:
    """One ``<address> <name>`` line a Service with a cluster address, sorted."""
    return "".join(
        f"{address} {name}.{namespace}.{DOMAIN}\n"
        for (namespace, name), address in sorted(services.items())
    )


def write_atomically(path: Path, text: str) -> None:
    # Written beside the watched folder, then renamed in: dnsmasq never reads half a file.
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def entry(service: dict[str, Any]) -> tuple[tuple[str, str], str | None]:
    meta = service["metadata"]
    ip = service.get("spec", {}).get("clusterIP")
    return (meta["namespace"], meta["name"]), (ip if ip and ip != "None" else None)


def client_for(kubeconfig: Path) -> httpx.Client:
    """An HTTP client of the kubeconfig's current context (token and CA data, as scripts write)."""
    loaded = yaml.safe_load(kubeconfig.read_text())
    context = next(c for c in loaded["contexts"] if c["name"] == loaded["current-context"])
    cluster = next(c for c in loaded["clusters"] if c["name"] == context["context"]["cluster"])
    user = next(u for u in loaded["users"] if u["name"] == context["context"]["user"])
    tls = ssl.create_default_context()
    ca = base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode()
    tls.load_verify_locations(cadata=ca)
    return httpx.Client(
        base_url=cluster["cluster"]["server"],
        headers={"Authorization": f"Bearer {user['user']['token']}"},
        verify=tls,
        timeout=httpx.Timeout(10, read=330),
    )


def follow(api: httpx.Client, hosts: Path) -> None:
    """List the Services, then apply the watch's events; return when the watch ends."""
    listed = api.get("/api/v1/services").raise_for_status().json()
    services: Services = {}
    for service in listed["items"]:
        key, ip = entry(service)
        if ip:
            services[key] = ip
    write_atomically(hosts, hosts_lines(services))
    params = {
        "watch": "1",
        "resourceVersion": listed["metadata"]["resourceVersion"],
        "timeoutSeconds": "300",
    }
    with api.stream("GET", "/api/v1/services", params=params) as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            event = json.loads(line)
            if event["type"] == "ERROR":  # e.g. the resource version expired: list again
                return
            key, ip = entry(event["object"])
            if event["type"] == "DELETED" or ip is None:
                services.pop(key, None)
            else:
                services[key] = ip
            write_atomically(hosts, hosts_lines(services))


def main() -> None:
    parser = argparse.ArgumentParser(description="Service names for the local cluster's DNS")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--hosts", required=True, type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    api = client_for(args.kubeconfig)
    while True:
        try:
            follow(api, args.hosts)
        except (httpx.HTTPError, ValueError, KeyError) as error:
            log.warning("watching Services failed (%s); listing again in 1 s", error)
            time.sleep(1)


if __name__ == "__main__":
    main()
