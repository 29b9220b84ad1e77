"""`tessera worker`: maintenance removes expired tokens, sessions and old events, under a lease."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from helpers import BOOTSTRAP_TOKEN, Server, pg_env, run_cli


def test_worker_removes_expired_objects(tmp_path: Path, fresh_database: str) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WORKER__EMBEDDED="false",
    )
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        server.request(
            "POST",
            "/api/v3/core/tokens/",
            BOOTSTRAP_TOKEN,
            {"identifier": "stale", "expires": past},
        )
        server.request(
            "POST",
            "/api/v3/core/tokens/",
            BOOTSTRAP_TOKEN,
            {"identifier": "fresh", "expiring": False},
        )
        worker = Server(
            {**env, "AUTHENTIK_WORKER__INTERVAL_SECONDS": "0.5"}, tmp_path, command="worker"
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status, body = server.request(
                    "GET", "/api/v3/core/tokens/?identifier=stale", BOOTSTRAP_TOKEN
                )
                if body["pagination"]["count"] == 0:
                    break
                time.sleep(0.2)
            assert body["pagination"]["count"] == 0, worker.output()
            status, body = server.request(
                "GET", "/api/v3/core/tokens/?identifier=fresh", BOOTSTRAP_TOKEN
            )
            assert body["pagination"]["count"] == 1
            # The worker logs its pass after the commit the server already shows: wait for it.
            while "maintenance done" not in worker.output() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "maintenance done" in worker.output()
        finally:
            worker.stop()
    finally:
        server.stop()
