"""`tessera server` as a user runs it: embedded default, PostgreSQL and Redis, restarts, crashes."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from helpers import (
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    REDIS_HOST,
    RUN_ID,
    Server,
    base_env,
    pg_env,
)


def test_embedded_first_start(tmp_path: Path) -> None:
    server = Server(base_env(), tmp_path)
    try:
        server.wait_ready()
        assert (tmp_path / "data" / "tessera.sqlite3").is_file()
        key_file = tmp_path / "data" / "secret_key"
        assert key_file.is_file() and oct(key_file.stat().st_mode)[-3:] == "600"
        time.sleep(0.2)
        assert "/if/flow/initial-setup/" in server.output()
        status, _ = server.request("GET", "/api/v3/core/users/")
        assert status == 401
    finally:
        assert server.stop() == 0
    key = key_file.read_text()
    again = Server(base_env(), tmp_path)
    try:
        again.wait_ready()
    finally:
        again.stop()
    assert key_file.read_text() == key


def test_postgresql_and_redis_two_servers_migrating_together(
    tmp_path: Path, fresh_database: str
) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_REDIS__HOST=REDIS_HOST,
        AUTHENTIK_REDIS__PREFIX=f"tessera-test-{RUN_ID}-e2e:",
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
    )
    a, b = Server(env, tmp_path), Server(env, tmp_path)
    try:
        a.wait_ready()
        b.wait_ready()
        status, created = a.request(
            "POST", "/api/v3/core/users/", BOOTSTRAP_TOKEN, {"username": "shared"}
        )
        assert status == 201, created
        status, seen = b.request("GET", f"/api/v3/core/users/{created['pk']}/", BOOTSTRAP_TOKEN)
        assert status == 200 and seen["username"] == "shared"
        status, admins = b.request("GET", "/api/v3/core/users/?username=akadmin", BOOTSTRAP_TOKEN)
        assert admins["pagination"]["count"] == 1
    finally:
        a.stop()
        b.stop()


def test_bootstrap_is_not_overwritten_on_restart(tmp_path: Path, fresh_database: str) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_EMAIL="admin@example.com",
    )
    first = Server(env, tmp_path)
    try:
        first.wait_ready()
        status, me = first.request("GET", "/api/v3/core/users/me/", BOOTSTRAP_TOKEN)
        assert status == 200 and me["user"]["email"] == "admin@example.com"
        assert me["user"]["is_superuser"] is True
        assert [g["name"] for g in me["user"]["groups"]] == ["authentik Admins"]
        status, _ = first.request(
            "PATCH",
            f"/api/v3/core/users/{me['user']['pk']}/",
            BOOTSTRAP_TOKEN,
            {"email": "changed@example.com"},
        )
        assert status == 200
    finally:
        first.stop()
    changed = {
        **env,
        "AUTHENTIK_BOOTSTRAP_EMAIL": "other@example.com",
        "AUTHENTIK_BOOTSTRAP_PASSWORD": "another-password",
    }
    second = Server(changed, tmp_path)
    try:
        second.wait_ready()
        status, me = second.request("GET", "/api/v3/core/users/me/", BOOTSTRAP_TOKEN)
        assert status == 200 and me["user"]["email"] == "changed@example.com"
        assert "/if/flow/initial-setup/" not in second.output()
    finally:
        second.stop()


def test_restart_keeps_committed_data_and_kill_leaves_no_half_objects(
    tmp_path: Path, fresh_database: str
) -> None:
    env = pg_env(fresh_database, AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN)
    server = Server(env, tmp_path)
    server.wait_ready()
    status, group = server.request(
        "POST", "/api/v3/core/groups/", BOOTSTRAP_TOKEN, {"name": "crew"}
    )
    assert status == 201

    def write(i: int) -> int:
        body = {"username": f"crash{i}", "groups": [group["pk"]], "attributes": {"i": i}}
        try:
            return server.request("POST", "/api/v3/core/users/", BOOTSTRAP_TOKEN, body)[0]
        except OSError:
            return -1

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(write, i) for i in range(200)]
        time.sleep(0.4)
        server.stop("KILL")
        results = [f.result() for f in futures]
    committed = results.count(201)
    restarted = Server(env, tmp_path)
    try:
        restarted.wait_ready()
        status, users = restarted.request(
            "GET", "/api/v3/core/users/?path=users&page_size=100&search=crash", BOOTSTRAP_TOKEN
        )
        pages = [users]
        while pages[-1]["pagination"]["next"]:
            pages.append(
                restarted.request(
                    "GET",
                    f"/api/v3/core/users/?search=crash&page_size=100&page={pages[-1]['pagination']['next']}",
                    BOOTSTRAP_TOKEN,
                )[1]
            )
        found = [u for page in pages for u in page["results"]]
        # every acknowledged write survived; any object that exists is whole (group and event)
        assert len(found) >= committed
        assert all(u["groups"] == [group["pk"]] for u in found)
        status, events = restarted.request(
            "GET", "/api/v3/events/events/?action=model_created&page_size=1", BOOTSTRAP_TOKEN
        )
        assert events["pagination"]["count"] == len(found) + 1
    finally:
        restarted.stop()
