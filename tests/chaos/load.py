"""The load generator of the chaos run, and the ledger of what every client was told.

Simulated users sign up through the api (so their ids come from the id-allocator), each from an
address of its own (``X-Forwarded-For`` behind one trusted proxy), and send clicks with fresh
idempotency keys at a steady rate. A click is sent until the api gives a definitive answer: a
request that got no answer (the api died with it in flight), a ``503`` or a ``429`` is sent
again with the same key, as the contract asks. A share of the accepted clicks is sent once more
later, and some twice at once, to check that a repeat is a replay and never a second click.

Another share is repeated *late*: its status is read until the click completed (the answer to
compare with; the Redis window starts then), and the click is sent again a few seconds after
the window, when MongoDB is what answers for it. The answer must be the same replay; a key
MongoDB could not be asked about in time (it was down, or too slow) is taken as new (``202``),
and must then be applied once all the same, which the final check of MongoDB tells. A click
whose own retries went past its window while MongoDB could not be asked was taken anew too and
applied as a duplicate: its late answer is MongoDB's, the original outcome.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

PASSWORD = "correct horse battery"
REGISTER = "/api/auth/register"
LOGIN = "/api/auth/login"
CLICK = "/api/mining/click"


@dataclass
class User:
    username: str
    ip: str
    user_id: str = ""
    token: str = ""
    keys: int = 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Forwarded-For": self.ip}


@dataclass
class Ledger:
    """Everything the clients saw, kept on the client side only."""

    answers: Counter[str] = field(default_factory=Counter)
    accepted: dict[tuple[str, str], int] = field(default_factory=dict)
    keys_sent: int = 0
    repeats: Counter[str] = field(default_factory=Counter)
    status_checks: Counter[str] = field(default_factory=Counter)
    registrations: Counter[str] = field(default_factory=Counter)
    users: dict[str, str] = field(default_factory=dict)  # username -> user id
    unexpected: list[str] = field(default_factory=list)
    missing_retry_after: int = 0
    unsettled: list[tuple[str, str]] = field(default_factory=list)
    held_back: int = 0
    # Clicks whose request got no answer (the api died with it in flight), by the answer of
    # the retry with the same key: 200 = it had been taken, 202 = it had not.
    unanswered_then: Counter[str] = field(default_factory=Counter)
    # Repeats after the Redis window, by what they got (see LATE_*).
    late: Counter[str] = field(default_factory=Counter)
    # The completed status read within the window, for the keys repeated late.
    snapshots: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Keys repeated late that were taken anew (MongoDB could not be asked in time).
    late_anew: list[tuple[str, str]] = field(default_factory=list)

    def rejected(self) -> dict[str, int]:
        return {
            label: count
            for label, count in sorted(self.answers.items())
            if not label.startswith(("200", "202"))
        }


LATE_SAME = "same answer as within the window"
LATE_NO_BALANCE = "same answer, balance unknown (its batch's marker is gone)"
LATE_REPLAYED = "replayed (not completed within the window: nothing to compare with)"
LATE_ANEW = "taken anew (MongoDB not asked in time)"
LATE_ORIGINAL = "the original answer (taken anew within the window, it was a duplicate then)"


def late_verdict(
    response: httpx.Response, clicks: int, snapshot: dict[str, Any] | None
) -> str | None:
    """What a late repeat got (a LATE_* label), or None when the answer is wrong. A replay of
    the click taken anew by an earlier request of the same repeat counts as taken anew."""
    if response.status_code == 202:
        return LATE_ANEW
    body = response.json()
    if (
        response.status_code != 200
        or response.headers.get("Idempotent-Replayed") != "true"
        or body.get("clicks") != clicks
    ):
        return None
    if snapshot is None:
        return LATE_REPLAYED
    if body == snapshot:
        return LATE_SAME
    unknown = {**snapshot, "result": {**snapshot.get("result", {}), "balance": None}}
    if body == unknown:
        return LATE_NO_BALANCE
    if is_original_of(body, snapshot):
        return LATE_ORIGINAL
    return LATE_ANEW if is_retake_of(body, snapshot) else None


def is_retake_of(body: dict[str, Any], answered: dict[str, Any]) -> bool:
    """Whether ``body`` replays the click ``answered`` was the answer to, taken anew after its
    window (MongoDB not asked in time) by an earlier request of the same repeat whose answer
    was lost: accepted later, and queued or applied as a duplicate of the original (the
    original's reward and time of application)."""
    if not same_click(body, answered) or not later(body, answered):
        return False
    if body.get("status") == "queued":
        return True
    return (
        body.get("status") == "completed"
        and (body.get("result") or {}).get("duplicate") is True
        and same_application(body, answered)
    )


def is_original_of(body: dict[str, Any], retaken: dict[str, Any]) -> bool:
    """Whether ``body`` is the original outcome of a click whose record within the window was
    that of a repeat taken anew (its own retries went past the window while MongoDB could not
    be asked) and applied as a duplicate. That record keeps the original's reward and time of
    application; its acceptance time and balance are those of the second acceptance. MongoDB,
    after the window, answers with the original."""
    return (
        (retaken.get("result") or {}).get("duplicate") is True
        and body.get("status") == "completed"
        and (body.get("result") or {}).get("duplicate") is False
        and same_click(body, retaken)
        and same_application(body, retaken)
        and not later(body, retaken)
    )


def same_click(body: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether both answers are about the same key and clicks."""
    return (body.get("idempotencyKey"), body.get("clicks")) == (
        other.get("idempotencyKey"),
        other.get("clicks"),
    )


def same_application(body: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether both answers carry the same reward and time of application."""
    result, seen = body.get("result") or {}, other.get("result") or {}
    return (result.get("reward"), result.get("appliedAt")) == (
        seen.get("reward"),
        seen.get("appliedAt"),
    )


def later(body: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether ``body``'s click was accepted after ``than``'s."""
    return datetime.fromisoformat(body["acceptedAt"]) > datetime.fromisoformat(than["acceptedAt"])


def window_start(first_answer: dict[str, Any], answered: float) -> float:
    """The earliest a click's Redis window can have begun (it begins when the click completes)
    on the monotonic clock, from the first answer to it, received at ``answered``. A click still
    queued then completes later; but a replay can come long after the click completed (its first
    request taken without an answer, the api down while its retries went on): the window began
    when it was applied (the worker's clock, this machine's)."""
    if first_answer.get("status") != "completed":
        return answered
    applied = first_answer["result"].get("appliedAt") or first_answer["acceptedAt"]
    ago = time.time() - datetime.fromisoformat(applied).timestamp()
    return answered - max(ago, 0.0)


def label_of(response: httpx.Response) -> str:
    if response.status_code < 400:
        return str(response.status_code)
    try:
        code = response.json().get("error", "?")
    except ValueError:
        code = "not-json"
    return f"{response.status_code} {code}"


class LoadGenerator:
    """Signs users up and clicks for them at ``rate`` requests per second until ``stop()``."""

    def __init__(
        self,
        base_url: str,
        rng: random.Random,
        rate: float,
        window: float,
        repeat_share: float = 0.15,
        twin_share: float = 0.05,
        late_share: float = 0.05,
        max_outstanding: int = 3000,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(5.0, connect=2.0),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
        )
        self.rng = rng
        self.rate = rate
        self.window = window
        self.repeat_share = repeat_share
        self.twin_share = twin_share
        self.late_share = late_share
        self.max_outstanding = max_outstanding
        self.ledger = Ledger()
        self.users: list[User] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.deadline = float("inf")
        self.started = time.monotonic()
        self._run_id = f"{rng.randrange(16**6):06x}"
        self._next_user = 0
        # Hashing a password takes a core for ~0.1 s: sign-ups queue here, not in the api.
        self._signing_up = asyncio.Semaphore(4)
        # Requests wait here rather than in httpx's pool, whose queue costs O(n^2).
        self._in_flight = asyncio.Semaphore(200)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _pause(self, response: httpx.Response | None, attempt: int) -> None:
        wait = min(2.0, 0.1 * 2**attempt)
        if response is not None:
            header = response.headers.get("Retry-After")
            if header is None:
                self.ledger.missing_retry_after += 1
            else:
                wait = min(float(header), 2.0)
        await asyncio.sleep(wait * self.rng.uniform(0.5, 1.0))

    async def _post(
        self,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any],
        tally: Counter[str],
        seconds: float = 5.0,
    ) -> httpx.Response | None:
        try:
            async with self._in_flight:
                response = await self.http.post(path, headers=headers, json=body, timeout=seconds)
        except httpx.TransportError as error:
            tally[f"no answer ({type(error).__name__})"] += 1
            return None
        tally[label_of(response)] += 1
        return response

    # Sign-up ---------------------------------------------------------------------------------

    def new_user(self) -> User:
        n = self._next_user
        self._next_user += 1
        ip = f"198.18.{n // 250}.{n % 250 + 1}"
        return User(f"chaos-{self._run_id}-{n}", ip)

    async def sign_up(self, user: User) -> bool:
        async with self._signing_up:
            return await self._sign_up(user)

    async def _sign_up(self, user: User) -> bool:
        """Register (or, when an unanswered attempt already created the account, log in)."""
        tally = self.ledger.registrations
        body = {"username": user.username, "password": PASSWORD}
        headers = {"X-Forwarded-For": user.ip}
        # An attempt without an answer, or a 503 (a write cut off by a dying MongoDB), may have
        # created the account: then the retry's 409 is ours, and we log in.
        path, maybe_created = REGISTER, False
        for attempt in range(200):
            if time.monotonic() > self.deadline:
                break
            response = await self._post(path, headers, body, tally, seconds=30)
            if response is None:
                maybe_created = True
                await self._pause(None, attempt)
                continue
            if response.status_code in (200, 201):
                user.user_id = response.json()["userId"]
                user.token = response.json()["token"]
                self.ledger.users[user.username] = user.user_id
                self.users.append(user)
                return True
            if response.status_code == 409 and path == REGISTER:
                if not maybe_created:
                    self.ledger.unexpected.append(
                        f"sign-up of new {user.username} answered 409 (user id taken?)"
                    )
                path = LOGIN
                continue
            if response.status_code in (429, 503):
                maybe_created = maybe_created or response.status_code == 503
                await self._pause(response, attempt)
                continue
            self.ledger.unexpected.append(f"{path} {response.status_code} {response.text[:200]}")
            return False
        self.ledger.unexpected.append(f"{user.username} never signed up")
        return False

    # Clicks ----------------------------------------------------------------------------------

    async def send_click(
        self, user: User, key: str, clicks: int
    ) -> tuple[httpx.Response | None, bool]:
        """Send until a definitive answer (anything but no answer, 429 and 503); None when the
        deadline passed first. Also: whether an attempt went unanswered."""
        headers = {**user.headers(), "Idempotency-Key": key}
        body = {"clicks": clicks}
        unanswered = False
        for attempt in range(10_000):
            if time.monotonic() > self.deadline:
                break
            response = await self._post(CLICK, headers, body, self.ledger.answers)
            if response is None:
                unanswered = True
                await self._pause(None, min(attempt, 4))
                continue
            if response.status_code in (429, 503):
                await self._pause(response, attempt)
                continue
            return response, unanswered
        return None, unanswered

    async def click(
        self, user: User, key: str, clicks: int, window_from: float | None = None
    ) -> None:
        """A new click, or (``window_from``: the earliest its Redis window can have begun, see
        ``window_start``) a repeat of it."""
        response, unanswered = await self.send_click(user, key, clicks)
        if response is None:
            self.ledger.unsettled.append((user.user_id, key))
            return
        status = response.status_code
        if status not in (200, 202):
            self.ledger.unexpected.append(f"click {key}: {status} {response.text[:200]}")
            return
        self.ledger.accepted[(user.user_id, key)] = clicks
        if unanswered:
            self.ledger.unanswered_then[str(status)] += 1
        now = time.monotonic()
        if window_from is not None and status == 202 and now - window_from > self.window:
            # Its window had passed (a replay long after the click completed, or retries while
            # an api was down or Redis restarting): MongoDB answers there, and a 202 is right
            # only if it could not be asked in time.
            self.ledger.late["sent"] += 1
            self.ledger.late[LATE_ANEW] += 1
            self.ledger.late_anew.append((user.user_id, key))
        elif window_from is not None:
            self.ledger.repeats["replayed" if status == 200 else "accepted anew"] += 1
            if status == 202:
                self.ledger.unexpected.append(
                    f"repeat of {key} accepted anew {now - window_from:.1f} s after its window"
                    f" began ({self.window} s long), at {now - self.started:.1f} s of the run"
                )
        elif not self.stopping.is_set():
            draw = self.rng.random()
            if draw < self.repeat_share:
                start = window_start(response.json(), now)
                self._spawn(self._repeat_later(user, key, clicks, start))
            elif draw < self.repeat_share + self.late_share:
                self._spawn(self._repeat_late(user, key, clicks))

    async def _repeat_later(self, user: User, key: str, clicks: int, window_from: float) -> None:
        await asyncio.sleep(self.rng.uniform(0.0, 3.0))
        self.ledger.repeats["sent"] += 1
        await self.click(user, key, clicks, window_from)
        await self.check_status(user, key)

    async def _repeat_late(self, user: User, key: str, clicks: int) -> None:
        """Read the status until the click completed (its window starts then), keep that
        answer, and repeat the click a few seconds after the window."""
        for _ in range(60):
            await asyncio.sleep(1.0)
            snapshot = await self.check_status(user, key)
            if snapshot is not None and snapshot.get("status") == "completed":
                self.ledger.snapshots[(user.user_id, key)] = snapshot
                break
        await asyncio.sleep(self.window + self.rng.uniform(2.0, 6.0))
        await self.repeat_late(user, key, clicks)

    async def repeat_late(self, user: User, key: str, clicks: int) -> None:
        """One late repeat, and what it got (``Ledger.late``)."""
        self.ledger.late["sent"] += 1
        response, _ = await self.send_click(user, key, clicks)
        if response is None:
            self.ledger.unsettled.append((user.user_id, key))
            return
        pair = (user.user_id, key)
        verdict = late_verdict(response, clicks, self.ledger.snapshots.get(pair))
        if verdict is None:
            self.ledger.unexpected.append(
                f"late repeat of {key}: {response.status_code} {response.text[:300]}, within "
                f"the window: {self.ledger.snapshots.get(pair)}"
            )
            return
        self.ledger.late[verdict] += 1
        if verdict == LATE_ANEW:
            self.ledger.late_anew.append(pair)

    async def check_status(self, user: User, key: str) -> dict[str, Any] | None:
        """An accepted click's status is known (202 queued or 200 completed), never 404; its
        body, or None when it never came."""
        for attempt in range(20):
            try:
                async with self._in_flight:
                    response = await self.http.get(
                        "/api/mining/click/status", params={"key": key}, headers=user.headers()
                    )
            except httpx.TransportError as error:
                self.ledger.status_checks[f"no answer ({type(error).__name__})"] += 1
                await self._pause(None, attempt)
                continue
            self.ledger.status_checks[label_of(response)] += 1
            if response.status_code in (200, 202):
                body: dict[str, Any] = response.json()
                return body
            if response.status_code in (429, 503):  # the general api limit, or Redis away
                await self._pause(response, attempt)
                continue
            self.ledger.unexpected.append(f"status of {key}: {response.status_code}")
            return None
        return None

    def _one_click(self) -> None:
        if not self.users:
            return
        if len(self.tasks) >= self.max_outstanding:
            self.ledger.held_back += 1
            return
        user = self.rng.choice(self.users)
        user.keys += 1
        key = f"{user.username}-k{user.keys}"
        clicks = self.rng.randint(1, 3)
        self.ledger.keys_sent += 1
        self._spawn(self.click(user, key, clicks))
        if self.rng.random() < self.twin_share:
            self._spawn(self.click(user, key, clicks))

    # Running -----------------------------------------------------------------------------------

    async def sign_up_many(self, count: int) -> None:
        await asyncio.gather(*(self.sign_up(self.new_user()) for _ in range(count)))

    async def run(self, new_user_every: float) -> None:
        """Click at ``rate`` per second and sign a user up every ``new_user_every`` seconds."""
        self.started = time.monotonic()
        sent, signed_up = 0, 0
        while not self.stopping.is_set():
            elapsed = time.monotonic() - self.started
            while sent < elapsed * self.rate:
                self._one_click()
                sent += 1
            while signed_up < elapsed / new_user_every:
                self._spawn(self.sign_up(self.new_user()))
                signed_up += 1
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()

    async def repeat_all_late(self, pairs: list[tuple[str, str]], seconds: float) -> None:
        """Repeat these accepted clicks now (their windows passed), twenty at a time, each
        until a definitive answer or ``seconds`` passed."""
        self.deadline = time.monotonic() + seconds
        users = {user.user_id: user for user in self.users}
        gate = asyncio.Semaphore(20)

        async def one(user_id: str, key: str) -> None:
            async with gate:
                await self.repeat_late(users[user_id], key, self.ledger.accepted[(user_id, key)])

        await asyncio.gather(*(one(user_id, key) for user_id, key in pairs))

    async def settle(self, seconds: float) -> None:
        """Wait for every click in progress to get its definitive answer (or the deadline)."""
        self.deadline = time.monotonic() + seconds
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.http.aclose()
