"""How fast ids come out: segment allocator in-process, over HTTP, against one ``$inc`` per id.

Run from the repository root: ``.venv/bin/python -m tests.allocator.bench_ids [--json]``. It starts
its own nx-27017 MongoDB server and allocator processes on free ports, measures each row for
``--seconds`` and stops everything it started. The HTTP load comes from keep-alive connections of
a small asyncio client in this process, on the same cores as the server: read the HTTP rows as
lower bounds of the service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from pymongo import AsyncMongoClient, ReturnDocument  # noqa: E402

from crypto_mine.allocator.counter import Counter  # noqa: E402
from crypto_mine.allocator.segments import SegmentAllocator  # noqa: E402
from crypto_mine.allocator.settings import RetryPolicy, SegmentPolicy  # noqa: E402
from devstack.servers import MongoServer  # noqa: E402
from tests.allocator.processes import COUNTERS_DB, AllocatorProcess  # noqa: E402
from tests.support.allocator import TOKEN  # noqa: E402

Document = dict[str, Any]


@dataclass
class Row:
    name: str
    ids_per_s: float
    requests_per_s: float | None = None
    note: str = ""
    ratio: float = 0.0


async def timed(seconds: float, work: Callable[[Callable[[], bool]], Awaitable[int]]) -> float:
    """Ids per second of ``work``, which runs until the callable it is given says stop."""
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    ids = await work(lambda: time.perf_counter() >= deadline)
    return ids / (time.perf_counter() - began)


async def in_process(uri: str, seconds: float) -> Row:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri)
    counter = Counter(client[COUNTERS_DB]["counters"], "bench-in-process", 1, RetryPolicy())
    allocator = SegmentAllocator(counter, SegmentPolicy())
    await allocator.start(wait=5)

    async def work(stop: Callable[[], bool]) -> int:
        n = 0
        while not stop():
            for _ in range(256):
                await allocator.allocate(1)
            n += 256
            await asyncio.sleep(0)  # what a server's I/O between requests gives the prefetch
        return n

    rate = await timed(seconds, work)
    note = f"{allocator.fetches} fetches, {allocator.waits} waits, segment {allocator.segment_size}"
    await allocator.close()
    await client.close()
    return Row("in-process segment allocator, count=1", rate, note=note)


async def raw_inc(uri: str, seconds: float, concurrency: int) -> Row:
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, maxPoolSize=concurrency)
    collection = client[COUNTERS_DB]["counters"]

    async def one(stop: Callable[[], bool]) -> int:
        n = 0
        while not stop():
            await collection.find_one_and_update(
                {"_id": "bench-raw"},
                {"$inc": {"last_id": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            n += 1
        return n

    async def work(stop: Callable[[], bool]) -> int:
        return sum(await asyncio.gather(*(one(stop) for _ in range(concurrency))))

    rate = await timed(seconds, work)
    await client.close()
    label = "sequential" if concurrency == 1 else f"{concurrency} concurrent"
    return Row(f"raw $inc per id, {label}", rate)


async def http_load(
    ports: list[int], count: int, connections: int, seconds: float
) -> tuple[float, float]:
    """(ids/s, requests/s) of POST /v1/ids?count=N over keep-alive connections to ``ports``."""
    request = (
        f"POST /v1/ids?count={count} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
        f"Authorization: Bearer {TOKEN}\r\n\r\n"
    ).encode()
    checked: list[int] = []

    async def connection(port: int, stop: Callable[[], bool]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while not stop():
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"allocator answered {head[:40]!r}")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if not checked:
                    checked.append(len(orjson.loads(body)["ids"]))
                n += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return n

    async def work(stop: Callable[[], bool]) -> int:
        return sum(
            await asyncio.gather(
                *(connection(ports[n % len(ports)], stop) for n in range(connections))
            )
        )

    requests_per_s = await timed(seconds, work)
    assert checked == [count], checked
    return requests_per_s * count, requests_per_s


async def http_rows(
    mongo: MongoServer, folder: Path, seconds: float
) -> tuple[list[Row], list[AllocatorProcess]]:
    segment = AllocatorProcess(folder, mongo.uri, {"ID_COUNTER_NAME": "bench-http"}, "segment")
    strict = [
        AllocatorProcess(
            folder,
            mongo.uri,
            {"ID_COUNTER_NAME": "bench-strict", "ID_ALLOCATOR_MODE": "strict"},
            f"strict-{n}",
        )
        for n in range(3)
    ]
    services = [segment.start()] + [service.start() for service in strict]
    for service in services:
        await asyncio.to_thread(service.wait_ready)
    rows = []
    for label, ports, count, connections in [
        ("HTTP segment, count=1, 32 connections", [segment.port], 1, 32),
        ("HTTP segment, count=1000, 8 connections", [segment.port], 1000, 8),
        ("HTTP strict, count=1, 32 connections", [strict[0].port], 1, 32),
        ("HTTP strict, count=1, 3 replicas, 48 connections", [s.port for s in strict], 1, 48),
    ]:
        await http_load(ports, count, connections, 0.3)  # warm-up
        ids, reqs = await http_load(ports, count, connections, seconds)
        rows.append(Row(label, ids, reqs))
    return rows, services


async def measure(mongo: MongoServer, folder: Path, seconds: float) -> list[Row]:
    rows = [await in_process(mongo.uri, seconds)]
    http, services = await http_rows(mongo, folder, seconds)
    for service in services:
        service.stop()
    rows += http
    rows.append(await raw_inc(mongo.uri, seconds, 16))
    rows.append(await raw_inc(mongo.uri, seconds, 1))
    baseline = rows[-2].ids_per_s
    for row in rows:
        row.ratio = row.ids_per_s / baseline
    return rows


def table(rows: list[Row]) -> str:
    lines = [f"{'what':<50} {'ids/s':>12} {'requests/s':>11} {'x raw $inc':>11}  note"]
    for row in rows:
        reqs = "" if row.requests_per_s is None else f"{row.requests_per_s:,.0f}"
        lines.append(
            f"{row.name:<50} {row.ids_per_s:>12,.0f} {reqs:>11} {row.ratio:>10.1f}x  {row.note}"
        )
    lines.append("x raw $inc: ids/s divided by the 16-concurrent one-$inc-per-id row.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each row")
    args = parser.parse_args()
    (ROOT / ".local").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-ids-", dir=ROOT / ".local"))
    mongo = MongoServer(folder / "mongo").start()
    try:
        rows = asyncio.run(measure(mongo, folder, args.seconds))
    finally:
        mongo.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(orjson.dumps([asdict(row) for row in rows], option=orjson.OPT_INDENT_2).decode())
    else:
        print(table(rows))


if __name__ == "__main__":
    main()
