"""``make load``: the k6 load test, tokens for a local stack, and Redis memory while it runs.

Tokens: ``AUTH_TOKEN`` or ``AUTH_TOKENS_FILE`` when given; else, against ``make run``'s stack
(``BASE_URL`` on this machine and its JWT secret in ``.local/run/``), ``USERS`` tokens minted
with that secret (users ``load-1`` ... ``load-<USERS>``: no sign-up, so no sign-up limit in the
way); else the k6 script signs ``USERS`` users up itself.

While k6 runs, the stack's Redis (``REDIS_URL``, else ``make run``'s) is sampled every second:
``used_memory``, keys, clicks waiting. Afterwards: the answers by endpoint and status, the
latency by endpoint and status, and Redis memory over time, printed and written to
``.local/load/run-*/load.json``. The exit code is k6's (non-zero when a threshold failed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from crypto_mine.common.names import Keys
from devstack import __main__ as devstack
from devstack.servers import BIN
from tests.support.runs import ROOT, new_run

SCRIPT = ROOT / "tests" / "load" / "mining-clicks.js"
ENDPOINTS = {"click": "click", "click status": "click status", "balance": "status"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Sample:
    at: float  # seconds since k6 started
    used_memory: int
    keys: int
    queue_depth: int


@dataclass
class Memory:
    """Redis while the load ran."""

    url: str
    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    def start(self, interval: float = 1.0) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self._sample, args=(stop, interval), daemon=True).start()
        return stop

    def _sample(self, stop: threading.Event, interval: float) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        began = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    with client.pipeline(transaction=False) as pipe:
                        pipe.info("memory")
                        pipe.dbsize()
                        pipe.get(Keys.queue_depth)
                        memory, keys, depth = pipe.execute()
                except redis.RedisError as error:
                    self.error = str(error)
                else:
                    at = round(time.monotonic() - began, 1)
                    used = int(memory["used_memory"])
                    self.samples.append(Sample(at, used, int(keys), int(depth or 0)))
                stop.wait(interval)
        finally:
            client.close()


def local_stack(base_url: str) -> bool:
    """``BASE_URL`` is on this machine and ``make run``'s JWT secret exists."""
    return urlsplit(base_url).hostname in LOCAL_HOSTS and devstack.SECRET_FILE.exists()


def mint_tokens(users: int, folder: Path) -> Path:
    """``users`` tokens signed with the local stack's secret, one per line."""
    path = folder / "tokens.txt"
    tokens = devstack.tokens([f"load-{n}" for n in range(1, users + 1)])
    path.write_text("\n".join(tokens) + "\n")
    path.chmod(0o600)
    return path


def k6_environment(environ: Mapping[str, str], folder: Path) -> tuple[dict[str, str], str]:
    """The k6 script's environment, and where its tokens come from."""
    env = dict(environ)
    base_url = env.get("BASE_URL") or "http://127.0.0.1:8080"
    env["BASE_URL"] = base_url
    if env.get("AUTH_TOKEN"):
        return env, "AUTH_TOKEN"
    if env.get("AUTH_TOKENS_FILE"):
        env["AUTH_TOKENS_FILE"] = str(Path(env["AUTH_TOKENS_FILE"]).resolve())
        return env, f"AUTH_TOKENS_FILE {env['AUTH_TOKENS_FILE']}"
    env.pop("AUTH_TOKENS_FILE", None)
    if local_stack(base_url):
        users = int(env.get("USERS") or 20)
        env["AUTH_TOKENS_FILE"] = str(mint_tokens(users, folder))
        return env, f"{users} tokens minted with the local stack's secret"
    return env, "sign-ups by the k6 script"


def redis_url(environ: Mapping[str, str]) -> str:
    return environ.get("REDIS_URL") or f"redis://127.0.0.1:{devstack.port('REDIS_PORT', 6379)}/0"


def report(summary: dict[str, Any], memory: Memory) -> dict[str, Any]:
    """Answers and latency by endpoint and status from k6's summary; Redis memory over time."""
    metrics = summary["metrics"]
    endpoints: dict[str, Any] = {}
    for endpoint, name in ENDPOINTS.items():
        total = int(metrics.get(f"http_reqs{{name:{name}}}", {}).get("count", 0))
        answers: dict[str, Any] = {}
        prefix = f"answers{{endpoint:{endpoint},status:"
        for metric, values in metrics.items():
            if metric.startswith(prefix) and values.get("count"):
                status = metric[len(prefix) : -1]
                timing = metrics.get(f"http_req_duration{{name:{name},status:{status}}}", {})
                answers[status] = {
                    "count": int(values["count"]),
                    "ms": {q: round(timing.get(q, 0.0), 1) for q in ("med", "p(95)", "p(99)")},
                }
        overall = metrics.get(f"http_req_duration{{name:{name}}}", {})
        endpoints[endpoint] = {
            "requests": total,
            "other statuses": total - sum(a["count"] for a in answers.values()),
            "ms": {q: round(overall.get(q, 0.0), 1) for q in ("med", "p(95)", "p(99)")},
            "by status": answers,
        }
    used = [sample.used_memory for sample in memory.samples] or [0]
    return {
        "endpoints": endpoints,
        "iterations": int(metrics.get("iterations", {}).get("count", 0)),
        "redis": {
            "url": memory.url,
            "error": memory.error,
            "used_memory_mib": {
                "first": mib(used[0]),
                "max": mib(max(used)),
                "last": mib(used[-1]),
            },
            "samples": [asdict(sample) for sample in memory.samples],
        },
    }


def mib(value: int) -> float:
    return round(value / 2**20, 1)


def printed(result: dict[str, Any]) -> str:
    lines = ["answers and latency (ms: median / p95 / p99):"]
    for endpoint, data in result["endpoints"].items():
        ms = data["ms"]
        lines.append(
            f"  {endpoint:13} {data['requests']:>8} requests  "
            f"{ms['med']} / {ms['p(95)']} / {ms['p(99)']}"
        )
        for status, answer in sorted(data["by status"].items()):
            ms = answer["ms"]
            lines.append(
                f"    {status}  {answer['count']:>8}  {ms['med']} / {ms['p(95)']} / {ms['p(99)']}"
            )
        if data["other statuses"]:
            lines.append(f"    other {data['other statuses']:>6}")
    redis_part = result["redis"]
    samples = redis_part["samples"]
    if samples:
        used = redis_part["used_memory_mib"]
        lines.append(
            f"redis used_memory (MiB): first {used['first']}, max {used['max']}, "
            f"last {used['last']}; every 10 s (s: MiB, keys, clicks waiting):"
        )
        step = max(1, len(samples) // 30)
        lines += [
            f"  {s['at']:>6}: {mib(s['used_memory']):>7}  {s['keys']:>9}  {s['queue_depth']:>7}"
            for s in samples[::step]
        ]
    else:
        lines.append(f"redis not sampled ({redis_part['url']}: {redis_part['error'] or 'no data'})")
    return "\n".join(lines)


def main() -> int:
    folder = new_run("load")
    env, tokens = k6_environment(os.environ, folder)
    print(f"load: {env['BASE_URL']}, tokens: {tokens}; results in {folder}", flush=True)
    memory = Memory(redis_url(env))
    stop = memory.start()
    summary_path = folder / "k6-summary.json"
    try:
        done = subprocess.run(
            [str(BIN / "k6"), "run", f"--summary-export={summary_path}", str(SCRIPT)],
            env=env,
            check=False,
        )
    finally:
        stop.set()
    if not summary_path.exists():
        return done.returncode or 1
    result = report(json.loads(summary_path.read_text()), memory)
    (folder / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(printed(result), flush=True)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
