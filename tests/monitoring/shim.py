"""Stands in for ``kubectl`` and ``helm`` while a runbook's commands run (tests/monitoring).

Every call runs the real tool and is logged as one JSON line to ``$SHIM_LOG``, with how it was
checked:

- ``read``: read-only commands run as written; one that finds nothing fails (a wrong label or
  name), unless it looks for objects of one autoscaling mode only;
- ``dry-run``: commands that change something run with ``--dry-run=server`` (the API server
  validates them against the real objects without applying them; ``helm rollback`` and
  ``helm uninstall`` with their own ``--dry-run``);
- ``change``: ``rollout restart``, which has no dry run, runs as written;
- ``node``: commands that need a running container (``exec``, ``logs``) or the
  metrics API (``top``). Where the container does not run (no node, an image the node cannot
  pull, nothing restarted yet) they must fail only for that reason (the API server found the
  pod and said so), and the command given to ``exec`` runs here instead, with
  ``SHIM_REDIS_URL`` as the pod's ``REDIS_URL``.

The first argument is the tool's name (``kubectl`` or ``helm``); the wrappers that the test
puts first in ``PATH`` call this file with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Flags that take a value as the next argument (so that the value is not taken for the verb).
VALUED = {
    "-n", "--namespace", "-l", "--selector", "-o", "--output", "--kubeconfig", "--context",
    "-p", "--patch", "--type", "--as", "--sort-by", "--tail", "-c", "--container",
    "--replicas", "--subresource", "--field-selector", "--max", "--set", "-f", "--values",
    "--since", "--kube-context", "--timeout",
}  # fmt: skip
KUBECTL_READ = {"get", "describe", "explain", "api-resources", "auth", "version", "events"}
KUBECTL_CHANGE = {"patch", "scale", "delete", "annotate", "label", "apply", "create", "set"}
KUBECTL_NODE = {"exec", "top", "port-forward", "attach", "cp", "debug"}
HELM_READ = {"status", "get", "history", "list", "show", "template", "version", "lint"}
HELM_CHANGE = {"upgrade", "rollback", "uninstall", "install"}
# Objects that exist in one autoscaling mode only: finding none of them is no error.
MODE_DEPENDENT = {"queueautoscalers", "queueautoscaler", "hpa", "horizontalpodautoscalers"}
# What the API server answers when a pod's container is not running (no node, an image the node
# cannot pull, nothing restarted yet): the command was right, the container is missing.
NO_NODE = (
    "does not have a host assigned",
    "Metrics API not available",
    "is waiting to start",
    "container not found",
    "previous terminated container",
)
# Objects the operator makes once it runs (its Lease): none yet is no error in a runbook.
MADE_AT_RUN_TIME = ('leases.coordination.k8s.io "',)


def positionals(argv: list[str]) -> list[str]:
    found: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            break
        elif arg.startswith("-"):
            skip = arg in VALUED
        else:
            found.append(arg)
    return found


def kind_of(tool: str, argv: list[str]) -> str:
    words = positionals(argv)
    verb = words[0] if words else ""
    if tool == "helm":
        if verb in HELM_CHANGE:
            return "dry-run"
        return "read" if verb in HELM_READ else "unknown"
    if verb == "rollout":
        return "change" if words[1:2] == ["restart"] else "read"
    if verb in KUBECTL_CHANGE:
        return "dry-run"
    if verb in KUBECTL_NODE or verb == "logs":  # logs come from a container that ran
        return "node"
    return "read" if verb in KUBECTL_READ else "unknown"


def inner_command(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1 :] if "--" in argv else []


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    real = os.environ[f"SHIM_REAL_{tool.upper()}"]
    kind = kind_of(tool, argv)
    run = [real, *argv]
    if kind == "dry-run":
        # helm's rollback and uninstall know only a client-side dry run.
        boolean = tool == "helm" and positionals(argv)[0] in {"rollback", "uninstall"}
        run.append("--dry-run" if boolean else "--dry-run=server")
    result = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
    code, note = result.returncode, ""
    not_running = any(s in result.stderr for s in NO_NODE)
    if kind == "node" and code != 0 and not_running:
        code, note = 0, result.stderr.strip()
        command = inner_command(argv)
        if command:
            env = {**os.environ, "REDIS_URL": os.environ["SHIM_REDIS_URL"]}
            local = subprocess.run(
                command, capture_output=True, text=True, timeout=60, env=env, check=False
            )
            code = local.returncode
            note += f"; ran {command} here: exit {code} {local.stderr.strip()[-500:]}"
            result = local
    made_later = any(s in result.stderr for s in MADE_AT_RUN_TIME)
    if kind == "read" and code != 0 and made_later and "not found" in result.stderr:
        code, note = 0, "not made yet: " + result.stderr.strip()
    if tool == "kubectl" and code == 0 and "No resources found" in result.stderr:
        words = positionals(argv)
        kinds = set(words[1].split(",")) if len(words) > 1 else set()
        if not kinds or not kinds <= MODE_DEPENDENT:
            code, note = 1, "found nothing: a wrong selector or name"
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    entry = {"tool": tool, "argv": argv, "kind": kind, "code": code, "note": note}
    if code != 0:
        entry["stderr"] = result.stderr[-1000:]
    with open(os.environ["SHIM_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
