"""Run an image exactly as the chart runs it: the pod spec of ``helm template``, under podman.

The rendered Deployment gives the image, the command, the environment (values and the chart's
Secret), the user and group, the security context and the writable volumes; podman gets the
same: ``--read-only`` with nothing writable but the chart's emptyDirs, no capabilities, no
privilege escalation. The containers share the host's network so they reach the test's own
Redis and MongoDB on loopback; the chart's port values are set to free ports for that.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.generate import CHART, template

from .images import podman

LOCAL_VALUES = CHART / "ci" / "local-values.yaml"


def render(*sets: str) -> list[dict[str, Any]]:
    args = [arg for value in sets for arg in ("--set", value)]
    return [d for d in yaml.safe_load_all(template(LOCAL_VALUES, *args)) if d]


@dataclass
class ChartPod:
    """One component's pod as the chart renders it with ``sets``."""

    component: str
    spec: dict[str, Any]
    secret: dict[str, str]
    namespace: str = "default"

    @classmethod
    def rendered(cls, component: str, *sets: str) -> ChartPod:
        docs = render(*sets)
        deployment = next(
            d
            for d in docs
            if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(f"-{component}")
        )
        secret = next(d for d in docs if d["kind"] == "Secret")
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        namespace = deployment["metadata"].get("namespace") or "default"
        return cls(component, deployment["spec"]["template"]["spec"], data, namespace)

    @property
    def container(self) -> dict[str, Any]:
        found: dict[str, Any] = self.spec["containers"][0]
        return found

    def env(self, name: str) -> dict[str, str]:
        """The container's environment; the downward API's pod name is ``name``."""
        fields = {"metadata.name": name, "metadata.namespace": self.namespace}
        env: dict[str, str] = {}
        for item in self.container.get("env", []):
            source = item.get("valueFrom", {})
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in source:
                env[item["name"]] = fields[source["fieldRef"]["fieldPath"]]
            else:
                env[item["name"]] = self.secret[source["secretKeyRef"]["key"]]
        return env

    def run_args(self, name: str, env: dict[str, str] | None = None) -> list[str]:
        """``podman run`` arguments matching this pod (detached, host network)."""
        pod_context = self.spec["securityContext"]
        context = self.container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        args = [
            "run", "--detach", "--name", name, "--network=host",
            f"--user={pod_context['runAsUser']}:{pod_context['runAsGroup']}",
            f"--group-add={pod_context['fsGroup']}",
            "--read-only", "--read-only-tmpfs=false", "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
        ]  # fmt: skip
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        for mount in self.container.get("volumeMounts", []):
            assert "emptyDir" in volumes[mount["name"]], "the chart mounts emptyDirs only"
            args.append(f"--mount=type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777")
        for key, value in {**self.env(name), **(env or {})}.items():
            args.append(f"--env={key}={value}")
        if "command" in self.container:
            args.append(f"--entrypoint={json.dumps(self.container['command'])}")
        args.append(self.container["image"])
        args.extend(str(a) for a in self.container.get("args", []))
        return args


@dataclass
class Container:
    """A container started with podman; removed by :meth:`remove`."""

    name: str
    log_dir: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def run(cls, pod: ChartPod, log_dir: Path, env: dict[str, str] | None = None) -> Container:
        name = f"cm-test-{pod.component}-{secrets.token_hex(3)}"
        podman(*pod.run_args(name, env))
        return cls(name, log_dir)

    def state(self) -> dict[str, Any]:
        found = podman("inspect", self.name, "--format", "{{json .State}}").stdout
        loaded: dict[str, Any] = yaml.safe_load(found)
        return loaded

    def running(self) -> bool:
        return bool(self.state()["Running"])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                return int(state["ExitCode"])
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} still running after {timeout} s:\n{self.logs()[-2000:]}")

    def stop(self, timeout: int = 30) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds, as the kubelet does; the exit code."""
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 30)
        return self.wait_exit(10)

    def remove(self) -> None:
        (self.log_dir / f"{self.name}.log").write_text(self.logs())
        podman("rm", "--force", "--time", "0", self.name, check=False)


def until(check: Callable[[], Any], timeout: float, what: str, container: Container) -> Any:
    """``check()``'s first truthy result, else fail with the container's log."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert container.running(), f"{container.name} exited:\n{container.logs()[-3000:]}"
        try:
            last = check()
        except Exception as error:  # not listening yet
            last = error
        else:
            if last:
                return last
        time.sleep(0.3)
    raise TimeoutError(f"{what} (last: {last!r}):\n{container.logs()[-3000:]}")
