"""What the Lua scripts and their Python callers must agree on, read from both sides.

- Every ``.lua`` file names its ``KEYS`` and ``ARGV`` in its header, every fixed position its
  code reads is named there, and every include resolves (``crypto_mine.common.scripts``).
- The click record's field letters are ``records.Field``'s, and the event and status fields
  the outcome script writes are the ones Python reads.
- The keys Python passes are in the order the header names them, and the scripts count their
  per-item keys and arguments with the same strides. The callers run their scripts on a real
  Redis (``Spy`` keeps what each call passed), and what the scripts wrote is read back where
  Python and RQ look for it.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from rq.job import Job
from rq.queue import Queue

from crypto_mine.api import SCRIPTS
from crypto_mine.api.admission import admission
from crypto_mine.api.admission.admission import Admitter, ClickRequest, Verdict
from crypto_mine.api.admission.applied import AppliedClicks
from crypto_mine.api.admission.attempt_limits import AttemptLimiter, AttemptLimits
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common import scripts
from crypto_mine.common.names import Keys, queue_name
from crypto_mine.common.settings import Env
from crypto_mine.pipeline import events
from crypto_mine.pipeline.ledger import Applied, Outcome, QueuedClick, UserTotal
from crypto_mine.pipeline.outcomes import Failure, OutcomeRecorder
from crypto_mine.pipeline.records import RETIRED_FIELDS, ClickRecord, Field
from crypto_mine.pipeline.status_cache import UserStatus
from devstack.servers import MongoServer, RedisServer

ROOT = Path(__file__).resolve().parents[1]
LUA = sorted(ROOT.glob("services/*/crypto_mine/*/lua/*.lua"))
FIELDS = {value for name, value in vars(Field).items() if not name.startswith("_")}


def package_of(path: Path) -> str:
    return f"crypto_mine.{path.parent.parent.name}"


def lua_file(name: str) -> Path:
    (path,) = (path for path in LUA if path.name == name)
    return path


def header(text: str) -> str:
    """The leading comment lines, without their ``--``, as one line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("--") or line.startswith("-- include:"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines)


def section(text: str, name: str) -> str:
    """What the header says after ``KEYS:`` or ``ARGV:``, up to the next such heading."""
    found = re.search(rf"\b{name}:(.*?)(?=\b(?:KEYS|ARGV|Returns)\b|$)", header(text))
    assert found, f"no {name} in the header"
    return found[1].strip()


@dataclass
class Layout:
    numbered: dict[int, str]  # position -> role
    per_item: list[str] = field(default_factory=list)  # roles after "then per ...:"


def layout(description: str) -> Layout:
    fixed, _, rest = description.partition(" then ")
    numbered = {}
    for part in re.split(r",\s+(?=\d+ )", fixed):
        numbered_part = re.match(r"(\d+) (.+)", part.strip())
        if numbered_part:
            role = re.sub(r"\s*[{(][^{(]*[)}]$", "", numbered_part[2].rstrip(".,; "))
            numbered[int(numbered_part[1])] = role
    per_item = rest.partition(":")[2].rstrip(". ").split(", ") if ":" in rest else []
    return Layout(numbered, [role.strip() for role in per_item])


def covered_positions(description: str) -> set[int]:
    """ARGV positions a header names: ``7 max depth`` and ranges ``1..6``, ``16..15+2n``."""
    positions: set[int] = set()
    for low, high in re.findall(r"(\d+)\.\.(\d+)", description):
        positions.update(range(int(low), int(high) + 1))
    positions.update(int(n) for n in re.findall(r"(?<![.\d])(\d+)(?![.\d])", description))
    return positions


def own_code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


@pytest.mark.parametrize("path", LUA, ids=lambda path: path.name)
def test_every_script_names_its_keys_and_argv_in_its_header(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("-- "), "a script opens with its header"
    code = own_code(text)
    keys = layout(section(text, "KEYS")).numbered
    for position in {int(n) for n in re.findall(r"KEYS\[(\d+)\]", code)}:
        assert position in keys, f"KEYS[{position}] is not named in the header"
    argv = covered_positions(section(text, "ARGV"))
    for position in {int(n) for n in re.findall(r"ARGV\[(\d+)\]", code)}:
        assert position in argv, f"ARGV[{position}] is not named in the header"


@pytest.mark.parametrize("path", LUA, ids=lambda path: path.name)
def test_every_include_resolves_and_comes_once(path: Path) -> None:
    script = scripts.load(package_of(path), path.name)
    assert "-- include:" not in script
    for part in included(path):
        for chunk in re.split(r"^-- include: \S+\n", part.read_text(), flags=re.MULTILINE):
            assert chunk.strip() == "" or script.count(chunk.strip()) == 1, part.name


def included(path: Path) -> set[Path]:
    """The files ``path`` includes, directly or not."""
    found: set[Path] = set()
    for name in re.findall(r"^-- include: (\S+)$", path.read_text(), re.MULTILINE):
        part = path.parent / name
        found |= {part} | included(part)
    return found


def position(script: str, path: Path) -> int:
    """Where the code of the file ``path`` starts in ``script``."""
    first = next(line for line in own_code(path.read_text()).splitlines() if line.strip())
    assert script.count(first + "\n") == 1, first
    return script.index(first + "\n")


def test_admission_puts_its_parts_in_the_order_they_need() -> None:
    script = scripts.load(SCRIPTS, admission.SCRIPT)
    parts = ["clock", "limits", "idempotency", "backpressure", "enqueue", "admit"]
    starts = [position(script, lua_file(f"{part}.lua")) for part in parts]
    assert starts == sorted(starts)


def test_the_api_limit_reads_the_clock_before_its_buckets() -> None:
    script = scripts.load(SCRIPTS, "api_limit.lua")
    parts = ["clock", "limits", "api_limit"]
    starts = [position(script, lua_file(f"{part}.lua")) for part in parts]
    assert starts == sorted(starts)


# -- the loader ----------------------------------------------------------------------------


Files = dict[str, str]


@pytest.fixture
def lua_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Files], str]:
    """Makes a package of its own, its ``lua/`` folder holding ``files``: its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(files: Files) -> str:
        name = f"lua_{uuid.uuid4().hex}"
        (tmp_path / name / "lua").mkdir(parents=True)
        (tmp_path / name / "__init__.py").write_text("")
        for file, text in files.items():
            (tmp_path / name / "lua" / file).write_text(text)
        return name

    return make


def test_a_part_included_twice_comes_once_where_first_included(
    lua_package: Callable[[Files], str],
) -> None:
    package = lua_package(
        {
            "a.lua": "-- include: b.lua\n-- include: c.lua\nreturn x\n",
            "b.lua": "-- include: c.lua\nlocal y = x\n",
            "c.lua": "local x = 1\n",
        }
    )
    assert scripts.load(package, "a.lua") == "local x = 1\nlocal y = x\n\nreturn x\n"


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({}, r"a\.lua \(asked for\) is not in"),
        (
            {"a.lua": "-- include: b.lua\n", "b.lua": "-- include: gone.lua\n"},
            r"gone\.lua \(included by b\.lua\) is not in",
        ),
        (
            {"a.lua": "-- include: b.lua\n", "b.lua": "-- include: a.lua\n"},
            r"a\.lua includes itself: a\.lua -> b\.lua -> a\.lua",
        ),
    ],
    ids=["missing", "missing include", "cycle"],
)
def test_a_script_that_cannot_be_put_together_is_named(
    lua_package: Callable[[Files], str], files: Files, error: str
) -> None:
    with pytest.raises(scripts.ScriptError, match=error):
        scripts.load(lua_package(files), "a.lua")


# -- field names ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    command: str
    args: list[str]

    def literal(self, index: int) -> str | None:
        """The argument at ``index`` when it is a quoted string, else None."""
        arg = self.args[index] if index < len(self.args) else ""
        return arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == "'" else None


def calls(text: str, function: str = "redis.call") -> list[Call]:
    """Every call of ``function`` in a script, its arguments split at the top level; the first
    is the command (``redis.call``'s, unquoted)."""
    found = []
    for match in re.finditer(re.escape(function) + r"\(", text):
        depth, quoted, args, current = 1, False, [], ""
        for char in text[match.end() :]:
            if quoted:
                quoted = char != "'"
            elif char == "'":
                quoted = True
            elif char in "({":
                depth += 1
            elif char in ")}":
                depth -= 1
                if depth == 0:
                    break
            elif char == "," and depth == 1:
                args.append(current.strip())
                current = ""
                continue
            current += char
        args.append(current.strip())
        found.append(Call(args[0].strip("'"), args[1:]))
    return found


def record_fields(call: Call) -> set[str]:
    """The fields a hash command names as quoted strings (its key is its first argument)."""
    if call.command == "HSET":
        indexes = range(1, len(call.args), 2)
    elif call.command in ("HGET", "HMGET", "HDEL"):
        indexes = range(1, len(call.args))
    else:
        return set()
    return {name for name in (call.literal(i) for i in indexes) if name is not None}


def entry(call: Call, first: int) -> dict[str, str]:
    """A stream entry's field/value arguments, from ``first`` on, by (unquoted) field name."""
    return {
        call.args[i].strip("'"): call.args[i + 1].strip("'")
        for i in range(first, len(call.args), 2)
    }


RECORD_KEY = {"idempotency.lua": "record_key", "complete.lua": "key"}


def test_the_click_record_fields_of_lua_are_those_of_python() -> None:
    used: set[str] = set()
    for name, key in RECORD_KEY.items():
        text = own_code(lua_file(name).read_text())
        for call in calls(text):
            if call.args and call.args[0] == key:
                used |= record_fields(call)
        # The letters compared as strings (restore() finds the clicks among the pairs).
        used |= set(re.findall(r"== '([a-z])'", text))
    assert used == FIELDS | set(RETIRED_FIELDS)
    assert not FIELDS & set(RETIRED_FIELDS)


def test_a_queued_record_holds_what_python_reads_of_it() -> None:
    (remember,) = (
        call
        for call in calls(lua_file("idempotency.lua").read_text())
        if call.command == "HSET" and call.literal(2) == "queued"
    )
    written = record_fields(remember)
    assert written == {Field.state, Field.clicks, Field.accepted_ms, Field.job}
    record = ClickRecord.from_hash(
        "k", {name: "queued" if name == Field.state else "7" for name in written}
    )
    assert (record.state, record.clicks, record.accepted_ms) == ("queued", 7, 7)


def outcome_events() -> dict[str, dict[str, str]]:
    """The entries complete.lua appends, by their kind (and a click's state)."""
    text = own_code(lua_file("complete.lua").read_text())
    # emit(stream, field, value, ...) appends through an XADD of its own, which passes "...".
    appended = [entry(call, 0) for call in calls(text, "emit") if "..." not in call.args]
    appended += [
        entry(call, call.args.index("'*'") + 1)
        for call in calls(text)
        if call.command == "XADD" and "..." not in call.args
    ]
    entries = {}
    for fields in appended:
        kind, state = fields[events.TYPE_FIELD], fields.get(Field.state)
        entries[f"{kind}:{state}" if state else kind] = fields
    return entries


def test_the_events_complete_lua_writes_are_read_by_python() -> None:
    entries = outcome_events()
    assert set(entries) == {"click:completed", "click:failed", "balance"}
    completed = {name: "1" for name in entries["click:completed"]}
    completed |= {events.TYPE_FIELD: events.CLICK, Field.state: "completed", events.KEY_FIELD: "k"}
    kind, body = events.payload("u", completed) or ("", {})
    assert kind == events.CLICK
    assert body["idempotencyKey"] == "k"
    assert body["result"] == {
        "reward": 1,
        "balance": 1,
        "appliedAt": "1970-01-01T00:00:00.001+00:00",
        "duplicate": True,
    }
    failed = {name: "1" for name in entries["click:failed"]}
    failed |= {events.TYPE_FIELD: events.CLICK, Field.state: "failed"}
    assert (events.payload("u", failed) or ("", {}))[1]["error"] == {"code": "1"}
    assert set(entries["click:completed"]) - {events.TYPE_FIELD, events.KEY_FIELD} <= FIELDS


def test_the_status_fields_are_those_python_reads() -> None:
    (write,) = (
        call for call in calls(lua_file("write_status.lua").read_text()) if call.command == "HSET"
    )
    written = {write.literal(1 + 2 * i) for i in range(len(write.args) // 2)}
    assert None not in written
    balance = set(outcome_events()["balance"]) - {events.TYPE_FIELD}
    assert balance == written
    raw = {str(name): "7" for name in written}
    assert UserStatus.from_hash("u", raw) == UserStatus("u", 7, 7, 7)


# -- key layouts ---------------------------------------------------------------------------


class Spy:
    """A real Redis client whose registered scripts run on the server as usual and keep the
    keys and arguments of each call (as Redis receives them: strings), by script file."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: dict[str, list[tuple[list[str], list[str]]]] = defaultdict(list)

    def register_script(self, text: str) -> Callable[..., Any]:
        script = self.client.register_script(text)
        calls = self.calls[script_named(text)]

        def call(keys: list[Any], args: list[Any] | None = None) -> Any:
            calls.append(([wire(key) for key in keys], [wire(arg) for arg in args or []]))
            return script(keys=keys, args=args)  # a coroutine for an asyncio client

        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def wire(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def script_named(text: str) -> str:
    (name,) = (path.name for path in LUA if text == loaded(path.name))
    return name


def loaded(name: str) -> str:
    path = lua_file(name)
    return scripts.load(package_of(path), name)


def roles(name: str) -> Layout:
    return layout(section(lua_file(name).read_text(), "KEYS"))


def ordered(layout: Layout, keys: dict[str, str]) -> list[str]:
    assert sorted(layout.numbered) == list(range(1, len(layout.numbered) + 1))
    return [keys[layout.numbered[n]] for n in sorted(layout.numbered)]


@pytest.mark.anyio
async def test_admission_passes_its_keys_in_the_order_admit_lua_reads_them(
    redis_client: Any, redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str
) -> None:
    settings = ApiSettings.from_env(Env({"JWT_SECRET": "s" * 32}))
    redis = Spy(AsyncRedis.from_url(redis_server.url))
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_server.uri)
    applied = AppliedClicks(mongo[mongo_db], timeout_seconds=5.0)
    admitter = Admitter(redis, settings, applied, shard=1)  # type: ignore[arg-type]
    clicks = [ClickRequest("u1", "10.0.0.1", "k1", 1), ClickRequest("u2", "10.0.0.2", "k2", 3)]
    try:
        admissions = await admitter._run(clicks)
    finally:
        await admitter.close()
        await redis.client.aclose()
        await mongo.close()
    assert [each.verdict for each in admissions] == [Verdict.ACCEPTED] * 2
    ((keys, args),) = redis.calls["admit.lua"]
    argv = section(lua_file("admit.lua").read_text(), "ARGV")
    assert "9 new job id" in argv
    assert "12 number of job hash fields (n)" in argv
    job, nfields = args[8], int(args[11])
    names = admitter.keys
    layout = roles("admit.lua")
    fixed = ordered(
        layout,
        {
            "global bucket": names.global_bucket,
            "queue depth": names.queue_depth,
            "queue jobs": names.queue_jobs,
            "RQ queue": Queue.redis_queue_namespace_prefix + queue_name(1),
            "new job's RQ hash": Job.redis_job_namespace_prefix + job,
            "RQ queues set": Queue.redis_queues_keys,
            "open job": names.open_job,
            "new job's click list": names.batch(job),
        },
    )
    per_click = [
        {
            "user bucket": names.user_bucket(click.user_id),
            "ip bucket": names.ip_bucket(click.ip),
            "click record": names.click(click.user_id, click.key),
        }
        for click in clicks
    ]
    assert keys == fixed + [each[role] for each in per_click for role in layout.per_item]
    # The script counts and finds the clicks' keys with the same layout.
    code = lua_file("admit.lua").read_text()
    size = len(layout.per_item)
    assert f"(#KEYS - {len(fixed)}) / {size}" in code
    for offset in range(size):
        assert f"KEYS[{len(fixed) + 1 + offset} + {size} * i]" in code
    # ARGV: 15 fixed, the job hash's pairs, then 3 per click.
    assert max(covered_positions(argv.partition(" then ")[0]) - {16}) == 15
    assert len(args) == 15 + 2 * nfields + 3 * len(clicks)
    # What the script wrote is where Python and RQ look for it.
    for click in clicks:
        assert redis_client.hget(names.click(click.user_id, click.key), "n") == str(click.clicks)
        assert redis_client.type(names.user_bucket(click.user_id)) == "hash"
        assert redis_client.type(names.ip_bucket(click.ip)) == "hash"
    assert redis_client.type(names.global_bucket) == "hash"
    assert redis_client.get(names.queue_depth) == "4"
    assert redis_client.hget(names.queue_jobs, job) == "4"
    assert redis_client.lrange(Queue.redis_queue_namespace_prefix + queue_name(1), 0, -1) == [job]
    assert redis_client.llen(names.batch(job)) == 2
    assert redis_client.get(names.open_job) == job
    with Redis.from_url(redis_server.url) as connection:  # RQ reads bytes
        assert Job.fetch(job, connection=connection).origin == queue_name(1)


def test_the_outcome_script_gets_its_keys_and_arguments_in_its_layout(
    redis_client: Any,
) -> None:
    redis = Spy(redis_client)
    recorder = OutcomeRecorder(redis, 60, keys=Keys)  # type: ignore[arg-type]
    done = [QueuedClick("u1", "k1", 1, 5), QueuedClick("u2", "k2", 2, 6)]
    failed = [Failure(QueuedClick("u1", "k3", 1, 7), "bad")]
    for click in [*done, *(f.click for f in failed)]:
        queued: dict[str, Any] = {
            Field.state: "queued",
            Field.clicks: click.clicks,
            Field.job: "j1",
        }
        redis_client.hset(Keys.click(click.user, click.key), mapping=queued)
    redis_client.hset(Keys.queue_jobs, "j1", 4)
    redis_client.set(Keys.queue_depth, 4)
    applied = Applied(
        [Outcome(click, 10, 100, False, 9) for click in done],
        [UserTotal("u1", 100, 2, 9), UserTotal("u2", 100, 2, 9)],
        3,
    )
    assert recorder.record("j1", applied, failed) == 4
    recorder.claim("j1")
    ((keys, args),) = redis.calls["complete.lua"]
    fixed = ordered(
        roles("complete.lua"),
        {
            "queue depth": Keys.queue_depth,
            "queue jobs": Keys.queue_jobs,
            "the job's click list": Keys.batch("j1"),
        },
    )
    assert keys == [
        *fixed,
        *(Keys.click(c.user, c.key) for c in done),
        *(Keys.click(f.click.user, f.click.key) for f in failed),
        *(Keys.user_status(u) for u in ("u1", "u2")),
        *(Keys.events(u) for u in ("u1", "u2")),
    ]
    code = lua_file("complete.lua").read_text()
    assert set(re.findall(r"KEYS\[(\d+) \+", code)) == {str(len(fixed))}
    assert f"local streams = {len(fixed)} + c + f + u" in code
    # ARGV: 8 fixed, then 6 per completed click, 3 per failed one, 4 per user.
    argv = section(code, "ARGV")
    strides = [int(n) for n in re.findall(r"(\d+) per (?:completed click|failed click|user)", argv)]
    assert strides == [6, 3, 4]
    assert max(covered_positions(argv.partition(" then ")[0])) == 8
    assert len(args) == 8 + 6 * len(done) + 3 * len(failed) + 4 * len(applied.users)
    assert "9 + 6 * c + 3 * f + 4 * (i - 1)" in code
    ((claim_keys, claim_args),) = redis.calls["claim.lua"]
    claimed = {"open job": Keys.open_job, "the job's click list": Keys.batch("j1")}
    assert claim_keys == ordered(roles("claim.lua"), claimed)
    assert claim_args == ["j1"]
    # What the script wrote is where Python reads it.
    for click in done:
        raw = redis_client.hgetall(Keys.click(click.user, click.key))
        record = ClickRecord.from_hash(click.key, raw)
        assert (record.state, record.reward, record.balance, record.applied_ms) == (
            "completed",
            10,
            100,
            9,
        )
    (failure,) = failed
    raw = redis_client.hgetall(Keys.click(failure.click.user, failure.click.key))
    assert (ClickRecord.from_hash("k3", raw).state, raw[Field.error]) == ("failed", "bad")
    assert redis_client.get(Keys.queue_depth) == "0"
    for user in applied.users:
        status = redis_client.hgetall(Keys.user_status(user.user))
        assert UserStatus.from_hash(user.user, status) == UserStatus(user.user, 100, 2, 9)
        events_of_user = redis_client.xrange(Keys.events(user.user))
        assert events_of_user[-1][1]["ev"] == "balance"


@pytest.mark.anyio
async def test_the_login_counters_are_passed_in_the_order_the_scripts_read_them(
    redis_client: Any, redis_server: RedisServer
) -> None:
    limits = AttemptLimits(3, 20, 60, 30, 5, 60)
    redis = Spy(AsyncRedis.from_url(redis_server.url, decode_responses=True))
    limiter = AttemptLimiter(redis, limits)  # type: ignore[arg-type]
    try:
        await limiter.log_in("alice", "10.0.0.1", trusted_device=False)
        written = set(redis_client.keys("*"))
        await limiter.logged_in("alice", "10.0.0.1")
    finally:
        await redis.client.aclose()
    counters = {
        "client counter": Keys.login_attempts("ip", "10.0.0.1"),
        "(username, client) counter": Keys.login_attempts("username-ip", "alice:10.0.0.1"),
        "username hash": Keys.login_attempts("username", "alice"),
    }
    ((login, _),) = redis.calls["attempt_login.lua"]
    assert login == ordered(roles("attempt_login.lua"), counters)
    ((forgive, _),) = redis.calls["attempt_forgive.lua"]
    assert forgive == ordered(roles("attempt_forgive.lua"), counters)
    # The failed-attempt counters are where the names put them (a successful login's reset
    # then leaves the client's own counter only).
    assert written == set(counters.values())
    assert set(redis_client.keys("*")) == {counters["client counter"]}
