"""The core's one-call LDAP bind: latency of `POST /api/v3/outposts/ldap/<pk>/bind/`.

Run from the repository root: `.venv/bin/python bench/ldap_bind_core.py` (`--help` for options).
Not part of the test suite. In one process: a fresh store (the embedded SQLite one, or
PostgreSQL with `--postgresql-host`), bootstrapped with the default flows; an LDAP provider on
the default authentication flow with its application and an LDAP outpost (the cache in process
with SQLite, on PostgreSQL with it, or on Redis with `--redis-host`); a user with a
password hashed with argon2id as configured (OWASP's cost by default). The core serves on a
local port; a client on the same event loop sends binds one after another (what an outpost in
direct bind mode does per LDAP bind), after `--warmup` unmeasured ones.

Each bind runs the flow (identification, password with its argon2 verification, MFA validation
skipped for a user without a device, user login with its session and `login` event) and the
application's policies. Reported: binds, median, p90, p99 and max in ms, and binds/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import test_utils

from tessera.core import app, config

TOKEN = "bench-token-" + "x" * 40
PASSWORD = "bench-Password-1234"  # noqa: S105 - the benchmark user's


async def _call(client: Any, method: str, path: str, **kw: Any) -> Any:
    response = await client.request(method, f"/api/v3/{path}", **kw)
    body = await response.json() if response.content_type == "application/json" else None
    assert response.status < 300, (path, response.status, body)
    return body


async def _setup(client: Any) -> tuple[int, str]:
    admin = {"headers": {"Authorization": f"Bearer {TOKEN}"}}
    flows = {}
    for slug in ("default-authentication-flow", "default-invalidation-flow"):
        flows[slug] = (await _call(client, "GET", f"flows/instances/{slug}/", **admin))["pk"]
    provider = await _call(
        client,
        "POST",
        "providers/ldap/",
        json={
            "name": "bench",
            "authorization_flow": flows["default-authentication-flow"],
            "invalidation_flow": flows["default-invalidation-flow"],
        },
        **admin,
    )
    await _call(
        client,
        "POST",
        "core/applications/",
        json={"name": "bench", "slug": "bench", "provider": provider["pk"]},
        **admin,
    )
    outpost = await _call(
        client,
        "POST",
        "outposts/instances/",
        json={"name": "bench", "type": "ldap", "providers": [provider["pk"]], "config": {}},
        **admin,
    )
    key = await _call(
        client, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/", **admin
    )
    user = await _call(client, "POST", "core/users/", json={"username": "benchuser"}, **admin)
    await _call(
        client,
        "POST",
        f"core/users/{user['pk']}/set_password/",
        json={"password": PASSWORD},
        **admin,
    )
    return provider["pk"], key["key"]


async def _run(args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": "bench-secret-" + "k" * 40,
        "bootstrap_token": TOKEN,
        "bootstrap_password": "bench-admin-Password-1",
    }
    if args.postgresql_host:
        overrides["postgresql"] = {
            "host": args.postgresql_host,
            "user": args.postgresql_user,
            "name": args.postgresql_name,
        }
    if args.redis_host:
        overrides["redis"] = {"host": args.redis_host, "prefix": "tessera-bench-ldap:"}
    settings = config.load(**overrides)
    db = await app.prepare(settings)
    application = app.create_app(settings, db, run_tasks=False)
    client = test_utils.TestClient(test_utils.TestServer(application))
    await client.start_server()
    try:
        pk, key = await _setup(client)
        headers = {"Authorization": f"Bearer {key}"}
        body = {"username": "benchuser", "password": PASSWORD, "remote_ip": "192.0.2.10"}
        path = f"/api/v3/outposts/ldap/{pk}/bind/"
        for _ in range(args.warmup):
            assert (await client.post(path, json=body, headers=headers)).status == 200
        times = []
        started = time.perf_counter()
        for _ in range(args.binds):
            t0 = time.perf_counter()
            response = await client.post(path, json=body, headers=headers)
            await response.read()
            times.append(time.perf_counter() - t0)
            assert response.status == 200, await response.text()
        total = time.perf_counter() - started
    finally:
        await client.close()
        await db.close()
    times.sort()
    ms = [t * 1000 for t in times]
    return {
        "binds": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(0.9 * len(ms)) - 1],
        "p99_ms": ms[int(0.99 * len(ms)) - 1],
        "max_ms": ms[-1],
        "binds_per_s": len(ms) / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--postgresql-host", default="")
    parser.add_argument("--postgresql-user", default="postgres")
    parser.add_argument("--postgresql-name", default="tessera_bench")
    parser.add_argument("--redis-host", default="", help="the cache on Redis")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(_run(args, Path(tmp)))
    store = "postgresql" if args.postgresql_host else "sqlite"
    cache = "redis" if args.redis_host else ("postgresql" if args.postgresql_host else "memory")
    print(f"store={store} cache={cache} " + " ".join(f"{k}={v:.1f}" for k, v in result.items()))


if __name__ == "__main__":
    main()
