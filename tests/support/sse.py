"""The api as a real uvicorn process, and a Server-Sent Events reader for its event streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.settings import Env
from devstack.servers import BIN, Process, free_port, wait_until

from .api import GENEROUS_LIMITS, SECRET


class ApiProcess(Process):
    """``crypto-mine-api`` on a free loopback port against the given Redis and MongoDB."""

    def __init__(
        self,
        folder: Path,
        redis_url: str,
        mongo_uri: str,
        database: str,
        port: int | None = None,
        **env: object,
    ) -> None:
        self.port = port or free_port()
        environ = {
            **os.environ,
            "REDIS_URL": redis_url,
            "MONGODB_URI": mongo_uri,
            "MONGODB_DB": database,
            "JWT_SECRET": SECRET,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            **GENEROUS_LIMITS,
            **{key: str(value) for key, value in env.items()},
        }
        self.settings = ApiSettings.from_env(Env(environ))
        super().__init__(
            f"api:{self.port}", [str(BIN / "crypto-mine-api")], folder / "api.log", environ
        )

    def start(self) -> ApiProcess:
        super().start()
        wait_until(
            lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, 60, self.name
        )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(self.settings, user)}"}


@dataclass
class Block:
    """One dispatched SSE block: an event, or only comments / a retry hint / an id."""

    id: str | None = None
    event: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)
    retry: int | None = None

    @property
    def is_event(self) -> bool:
        return self.event is not None


class EventReader:
    """Reads an open ``text/event-stream`` response block by block (in a task of its own)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.blocks: asyncio.Queue[Block | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        block, data = Block(), list[str]()
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        block.data = orjson.loads("\n".join(data))
                    if data or block.comments or block.id is not None or block.retry is not None:
                        self.blocks.put_nowait(block)
                    block, data = Block(), []
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    block.comments.append(value)
                elif name == "id":
                    block.id = value
                elif name == "event":
                    block.event = value
                elif name == "data":
                    data.append(value)
                elif name == "retry":
                    block.retry = int(value)
        except httpx.HTTPError:
            pass
        finally:
            self.blocks.put_nowait(None)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def block(self, within: float = 10) -> Block:
        found = await asyncio.wait_for(self.blocks.get(), within)
        if found is None:
            self.blocks.put_nowait(None)
            raise EOFError("the event stream ended")
        return found

    async def event(self, within: float = 10) -> Block:
        """The next block that is an event (comments and hints are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            block = await self.block(max(0.01, deadline - loop.time()))
            if block.is_event:
                return block

    async def until(self, done: Callable[[Block], bool], within: float = 20) -> list[Block]:
        """Events up to and including the first for which ``done`` is true."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        found = []
        while True:
            block = await self.event(max(0.01, deadline - loop.time()))
            found.append(block)
            if done(block):
                return found

    async def quiet(self, seconds: float) -> list[Block]:
        """Every event that arrives within ``seconds`` (expected: none)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        found: list[Block] = []
        while (left := deadline - loop.time()) > 0:
            try:
                block = await self.block(left)
            except TimeoutError:
                break
            if block.is_event:
                found.append(block)
        return found


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[EventReader]:
    """``GET /api/mining/events``, asserting it opened."""
    request = client.build_request("GET", f"{url}/api/mining/events", headers=headers)
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        try:
            yield reader
        finally:
            await reader.close()
    finally:
        await response.aclose()


def balance_reached(clicks: int) -> Callable[[Block], bool]:
    return lambda block: block.event == "balance" and block.data["clicks"] >= clicks
