"""A uvicorn api process with the multiprocess metrics folder named by its deployment."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from crypto_mine.api.http.auth import issue_token
from crypto_mine.api.settings import ApiSettings
from crypto_mine.common.settings import Env
from devstack.servers import MongoServer, RedisServer
from tests.support.api import SECRET
from tests.support.stack import ApiProcess


def test_one_process_with_a_folder_that_does_not_exist_yet(
    redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str, tmp_path: Path
) -> None:
    folder = tmp_path / "not" / "there" / "yet"
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "MONGODB_URI": mongo_server.uri,
        "MONGODB_DB": mongo_db,
        "JWT_SECRET": SECRET,
        "WEB_CONCURRENCY": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    api = ApiProcess(tmp_path, env).start().wait_ready()
    try:
        token = issue_token(ApiSettings.from_env(Env(env)), "u1")
        click = httpx.post(
            f"{api.url}/api/mining/click",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "folder"},
            timeout=5,
        )
        assert click.status_code == 202, click.text
        metrics = httpx.get(f"{api.url}/api/metrics", timeout=5).text
        assert 'mining_click_requests_total{status="202"} 1.0' in metrics
        assert folder.is_dir()
    finally:
        api.stop()
