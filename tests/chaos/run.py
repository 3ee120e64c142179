"""The chaos run: the whole stack, a steady stream of clicks, faults, then the reckoning.

Why Redis runs with ``appendfsync always``: a click answered ``202`` exists only in Redis (its
record and its job) until a worker applied it. With ``always`` Redis writes and fsyncs the
append-only file before it sends any reply, so every acknowledged click survives a SIGKILL of
Redis and a crash of the machine. With ``everysec`` the write reaches the kernel before the
reply too, so a SIGKILL of Redis alone loses nothing while the disk keeps up; but when an fsync
is still running Redis postpones its write for up to two seconds *and replies anyway*, and a
machine crash loses the last second or so: acknowledged clicks can then be lost. The guarantee
"no accepted click is lost" therefore needs ``always`` (``--fsync everysec`` runs the same test
with the weaker setting). It does not cover losing Redis's disk, nor a failover to a replica
that had not received the writes yet (replication is asynchronous).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.stack import Stack

from .faults import FaultLog, Injector
from .load import LATE_ANEW, Ledger, LoadGenerator
from .verify import Verdict, verify, wait_drained

REWARD = 3
JOB_TIMEOUT = 8
# Redis keeps completed records this long: late repeats and the final ones go past it.
WINDOW = 10
# The final late repeats: this many accepted clicks, once every window has passed.
FINAL_REPEATS = 300


@dataclass
class Report:
    duration: float
    fsync: str
    ledger: Ledger
    faults: FaultLog
    verdict: Verdict
    drained_after: float
    status_mismatches: list[str] = field(default_factory=list)
    # The final late repeats (the stack quiet, every window passed): what they got. Keys a
    # late repeat took anew are checked like every accepted key: stored once, counted once.
    final: Counter[str] = field(default_factory=Counter)
    shards: int = 1

    @property
    def failures(self) -> list[str]:
        ledger, verdict = self.ledger, self.verdict
        found = list(verdict.problems) + list(ledger.unexpected) + self.status_mismatches
        if ledger.unsettled:
            found.append(f"{len(ledger.unsettled)} clicks never got a definitive answer")
        if ledger.missing_retry_after:
            found.append(f"{ledger.missing_retry_after} 429/503 answers without Retry-After")
        if verdict.not_completed:
            found.append(f"{verdict.not_completed} accepted clicks not completed")
        if verdict.dead_letters:
            found.append(f"{verdict.dead_letters} jobs dead-lettered")
        if verdict.duplicate_user_ids:
            found.append(f"{verdict.duplicate_user_ids} duplicate user ids")
        if verdict.lost or verdict.doubled:
            found.append(f"lost {verdict.lost}, doubled {verdict.doubled}")
        if self.final[LATE_ANEW] or self.final["sent"] != sum(
            n for label, n in self.final.items() if label != "sent"
        ):
            found.append(f"final late repeats not all replayed: {dict(self.final)}")
        return found

    def summary(self) -> str:
        ledger, verdict, faults = self.ledger, self.verdict, self.faults
        requests = sum(ledger.answers.values())
        rejected = ", ".join(f"{label}: {n}" for label, n in ledger.rejected().items()) or "none"
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(faults.injected.items()))
        during = Counter(ledger.late) - self.final
        signups = ", ".join(f"{label}: {n}" for label, n in sorted(ledger.registrations.items()))
        return "\n".join(
            [
                f"chaos run: {self.duration:.0f} s of load, {self.shards} click shard(s),"
                f" Redis appendfsync={self.fsync}",
                f"  users signed up : {verdict.users} through the api, ids from the id-allocator"
                f" (duplicate ids: {verdict.duplicate_user_ids}); answers: {signups}",
                f"  clicks sent     : {ledger.keys_sent} keys in {requests} requests (retries"
                f" with the same key included; {ledger.repeats['sent']} deliberate repeats)",
                f"  accepted        : {verdict.accepted} clicks ({ledger.answers['202']} x 202,"
                f" {ledger.answers['200']} x 200 replay; repeats replayed:"
                f" {ledger.repeats['replayed']}, accepted anew: {ledger.repeats['accepted anew']})",
                f"  rejected        : {rejected}",
                f"  late repeats    : {during['sent']} past the window of their completed"
                f" click ({late(during)}); after the run, {self.final['sent']} more"
                f" ({late(self.final)})",
                f"  in flight       : clicks retried after a request got no answer:"
                f" {ledger.unanswered_then['200']} had been taken (200 replay),"
                f" {ledger.unanswered_then['202']} had not (202); {ledger.held_back} new clicks"
                f" not sent while too many waited for an answer",
                f"  faults injected : {faults.total} ({kinds})",
                f"  drained after   : {self.drained_after:.1f} s; dead letters:"
                f" {verdict.dead_letters}; not completed: {verdict.not_completed}; batch marks"
                f" left by killed workers: {verdict.leftover_marks}",
                f"  lost = {verdict.lost}, doubled = {verdict.doubled}",
                f"  verdict         : {'PASS' if not self.failures else 'FAIL'}",
            ]
        )


def late(tally: Counter[str]) -> str:
    return ", ".join(f"{label}: {n}" for label, n in sorted(tally.items()) if label != "sent")


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def chaos_stack(folder: Path, fsync: str, shards: int = 1) -> Stack:
    return Stack(
        folder,
        shards=shards,
        api_env={
            "TRUSTED_PROXY_COUNT": "1",
            "MINING_JOB_TIMEOUT_SECONDS": str(JOB_TIMEOUT),
            "MINING_IDEMPOTENCY_WINDOW_SECONDS": str(WINDOW),
            # Two CPUs for the whole stack and the load: a lookup may wait for a CPU.
            "MINING_IDEMPOTENCY_LOOKUP_TIMEOUT": "1.0",
        },
        worker_env={
            "MINING_IDEMPOTENCY_WINDOW_SECONDS": str(WINDOW),
            "MINING_REWARD_PER_CLICK": str(REWARD),
            "MINING_WORKER_HEARTBEAT_MARGIN": "2",
            "MINING_WORKER_MAINTENANCE_INTERVAL": "2",
            "MINING_WORKER_TTL": "16",
            "MINING_WORKER_RETRY_BUDGET": "5",
            "DB_SERVER_SELECTION_TIMEOUT": "1000",
        },
        redis_fsync=fsync,
    )


def heal(stack: Stack) -> None:
    """Start whatever a fault left down (a fault's own restart normally did)."""
    for server in (*stack.redises, stack.mongo):
        if not server.alive():
            server.start()
    if not stack.allocator.alive():
        stack.allocator.start().wait_ready(60)
    for pod in stack.workers:
        if not pod.alive():
            pod.start()
    if not stack.api.alive():
        stack.api.start()
    stack.api.wait_ready(60)


async def check_balances(base_url: str, stack: Stack, ledger: Ledger) -> list[str]:
    """Every user's balance as the api serves it equals the sum of its accepted clicks."""
    expected: dict[str, int] = {user_id: 0 for user_id in ledger.users.values()}
    for (user, _), clicks in ledger.accepted.items():
        expected[user] = expected.get(user, 0) + clicks * REWARD
    mismatches = []
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        for user, balance in expected.items():
            headers = {"Authorization": f"Bearer {stack.token(user)}"}
            answer = await http.get("/api/mining/status", headers=headers)
            served = answer.json().get("balance") if answer.status_code == 200 else answer.text
            if served != balance:
                mismatches.append(f"/api/mining/status of {user}: {served}, expected {balance}")
    return mismatches


async def repeat_after_every_window(generator: LoadGenerator, rng: random.Random) -> Counter[str]:
    """The stack quiet and every window passed: accepted clicks repeated now are answered by
    MongoDB, every one a replay (those with a status read within their window: the same)."""
    progress(f"repeating {FINAL_REPEATS} accepted clicks after their windows")
    await asyncio.sleep(WINDOW + 1)
    ledger = generator.ledger
    before = Counter(ledger.late)
    keys = sorted(ledger.snapshots)[: FINAL_REPEATS // 2]
    others = sorted(set(ledger.accepted) - set(keys))
    keys += rng.sample(others, min(len(others), FINAL_REPEATS - len(keys)))
    await generator.repeat_all_late(keys, 120)
    return Counter(ledger.late) - before


async def run_chaos(
    folder: Path,
    duration: float,
    rate: float = 60,
    fault_interval: float = 5,
    seed: int = 1,
    fsync: str = "always",
    initial_users: int = 40,
    new_user_every: float = 1.0,
    shards: int = 1,
) -> Report:
    rng = random.Random(seed)
    stack = chaos_stack(folder, fsync, shards)
    progress(f"starting the stack in {folder}")
    await asyncio.to_thread(stack.start)
    generator = LoadGenerator(stack.api.url, rng, rate, WINDOW)
    try:
        progress(f"signing {initial_users} users up")
        await generator.sign_up_many(initial_users)
        progress(f"{duration:.0f} s of clicks and faults")
        stop = asyncio.Event()
        started = time.monotonic()
        injector = Injector(stack, rng, fault_interval)
        load = asyncio.create_task(generator.run(new_user_every))
        faults = asyncio.create_task(injector.run(stop, started))
        await asyncio.sleep(duration)
        stop.set()
        await faults
        generator.stop()
        await load
        progress(
            f"{injector.log.total} faults injected {injector.log.timeline}; "
            f"settling {len(generator.tasks)} clicks in flight"
        )
        await asyncio.to_thread(heal, stack)
        await generator.settle(300)
        progress("waiting for the queue to drain")
        drained_after = await asyncio.to_thread(wait_drained, stack, 300)
        final = await repeat_after_every_window(generator, rng)
        progress("checking MongoDB, Redis and the api against the ledger")
        verdict = await asyncio.to_thread(verify, stack, generator.ledger, REWARD)
        mismatches = await check_balances(stack.api.url, stack, generator.ledger)
        return Report(
            duration,
            fsync,
            generator.ledger,
            injector.log,
            verdict,
            drained_after,
            mismatches,
            final,
            shards,
        )
    finally:
        await generator.aclose()
        await asyncio.to_thread(stack.stop)
