"""What a starting core prints for a person: the version, where the data is, the cache, the
listen addresses and the initial-setup link; nothing else at INFO (no Alembic chatter), and
never the database's password."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import PG_HOST, SECRET_KEY, Server, base_env, pg_env

from tessera.core import config
from tessera.core.app import startup


def _info_events(output: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["level"] == "info"]


def test_a_fresh_embedded_start_says_what_a_person_needs(tmp_path: Path) -> None:
    env = base_env(AUTHENTIK_SECRET_KEY=SECRET_KEY, TESSERA_DATA_DIR=str(tmp_path / "data"))
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        status, _ = server.request("GET", "/-/health/live/")
        assert status == 200
    finally:
        server.stop()
    output = server.output()
    events = _info_events(output)
    assert [e["event"] for e in events] == ["starting", "initial setup", "serving"], output
    starting = events[0]
    assert starting["version"] and starting["cache"] == "in-process (embedded default)"
    assert starting["database"] == f"sqlite:{(tmp_path / 'data' / 'tessera.sqlite3').resolve()}"
    assert str(events[1]["url"]).endswith("/if/flow/initial-setup/")
    assert events[2]["http"] == f"127.0.0.1:{server.port}"
    assert "alembic" not in output and "setup plugin" not in output
    assert f"Tessera listening on http://127.0.0.1:{server.port}/" in output


def test_a_postgresql_start_with_workers_says_it_once(tmp_path: Path, fresh_database: str) -> None:
    env = pg_env(
        fresh_database, AUTHENTIK_WEB__WORKERS="2", AUTHENTIK_POSTGRESQL__PASSWORD="pw-canary"
    )
    server = Server(env, tmp_path)
    try:
        server.wait_ready()  # one worker answers; the supervisor says "serving" once both do
        deadline = time.monotonic() + 60
        while '"serving"' not in server.output() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    output = server.output()
    events = _info_events(output)
    assert [e["event"] for e in events] == ["starting", "initial setup", "serving"], output
    assert str(events[0]["database"]).endswith(f"@{PG_HOST}:5432/{fresh_database}")
    assert events[0]["cache"] == "postgresql (the store's database)"
    assert events[2]["workers"] == 2 and events[2]["metrics"] == f"127.0.0.1:{server.metrics_port}"
    assert "pw-canary" not in output and "alembic" not in output


def test_the_database_is_named_without_its_password() -> None:
    settings = config.Settings(
        postgresql={"host": "db.internal", "name": "idp", "user": "idp", "password": "pw-canary"},
        redis={"host": "cache.internal", "tls": True, "password": "redis-canary"},
    )
    assert startup.database(settings) == "postgresql://idp@db.internal:5432/idp"
    assert startup.cache(settings) == "rediss://cache.internal:6379/0"
    settings = config.Settings(postgresql={"host": "db.internal"})
    assert startup.cache(settings) == "postgresql (the store's database)"
