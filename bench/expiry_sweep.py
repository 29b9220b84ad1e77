"""Request latency on the embedded SQLite store while maintenance deletes a large expired backlog.

Run from the repository root: `.venv/bin/python bench/expiry_sweep.py` (`--help` for options). Not
part of the test suite. In one process, as `tessera server` runs its embedded scheduler: a fresh
SQLite store gets `--events` expired events and `--sessions` expired sessions (plus as many live
ones, which stay); the core application serves on the event loop; a client in a thread of its own
(its own event loop) sends `GET /api/v3/core/users/me/` with a bearer token (a token lookup and a
user read) from `--concurrency` connections and records each request's latency.

Three phases, in the same run, each on a freshly filled backlog:
1. idle: no sweep; the reference latency of the same requests;
2. unbatched: the maintenance as it was, one `DELETE` per kind in one transaction each;
3. batched: `tasks.run_maintenance` as it is, batches of about `tasks.TARGET` seconds.

Reported per phase: requests, p50, p99 and max latency in ms, and how long the sweep took; the
ratios of p99 and max to the idle phase's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import datetime as dt
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from tessera.core import app, config, events, identity, store, tasks, wire
from tessera.core.crypto import Keyring
from tessera.core.identity import oauth2_grants, sessions, tokens
from tessera.core.store import tables

SECRET = "bench-secret-key-" + "x" * 40


async def fill(db: store.Store, n_events: int, n_sessions: int, user_pk: int) -> None:
    """Expired and live events and sessions, in chunks of 5000 rows per transaction."""
    now = dt.datetime.now(dt.UTC)
    past, future = now - dt.timedelta(days=1), now + dt.timedelta(days=1)

    def event(expires: dt.datetime) -> dict[str, Any]:
        return {
            "pk": str(uuid.uuid4()),
            "action": "login",
            "app": "tessera.bench",
            "user": {"pk": user_pk, "username": "akadmin"},
            "context": {"http_request": {"path": "/if/flow/x/", "method": "POST"}, "n": 1},
            "client_ip": "10.0.0.1",
            "created": now,
            "expires": expires,
        }

    def session(expires: dt.datetime) -> dict[str, Any]:
        key = uuid.uuid4().hex + uuid.uuid4().hex
        return {"key_digest": key, "user_pk": user_pk, "expires": expires, "created": now}

    for table, make, count in (
        (tables.events, event, n_events),
        (tables.sessions, session, n_sessions),
    ):
        for start in range(0, 2 * count, 5000):
            rows = [
                make(past if i < count else future)
                for i in range(start, min(start + 5000, 2 * count))
            ]
            async with db.transaction() as tx:
                await tx.conn.execute(sa.insert(table), rows)


async def unbatched(db: store.Store) -> None:
    """The maintenance before batching: each kind in one unbounded DELETE."""
    for remove in (
        tokens.remove_expired,
        sessions.remove_expired,
        events.remove_expired,
        oauth2_grants.remove_expired,
    ):
        async with db.transaction() as tx:
            await remove(tx)


def client(port: int, token: str, concurrency: int, stop: str) -> list[float]:
    """Requests until the file `stop` exists (run in a process of its own); their latencies."""
    latencies: list[float] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while not os.path.exists(stop):
            started = time.perf_counter()
            async with session.get(f"http://127.0.0.1:{port}/api/v3/core/users/me/") as r:
                await r.read()
                assert r.status == 200, r.status
            latencies.append(time.perf_counter() - started)

    async def run() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))

    asyncio.run(run())
    return latencies


def timed(remove: tasks.Remove, durations: list[float]) -> tasks.Remove:
    """`remove`, recording how long each call (one statement per table) held the loop."""

    async def call(tx: store.Tx, limit: int) -> int:
        started = time.perf_counter()
        try:
            return await remove(tx, limit)
        finally:
            durations.append(time.perf_counter() - started)

    return call


async def phase(
    port: int, token: str, concurrency: int, action: Callable[[], Awaitable[Any]] | None
) -> dict[str, float]:
    """Latencies of a client process's requests while `action` runs (None: for 3 seconds)."""
    stop = Path(tempfile.mkdtemp()) / "stop"
    with concurrent.futures.ProcessPoolExecutor(1) as pool:
        loop = asyncio.get_running_loop()
        requests = loop.run_in_executor(pool, client, port, token, concurrency, str(stop))
        await asyncio.sleep(1.0)  # the process is up and steady
        started = time.perf_counter()
        await (action() if action is not None else asyncio.sleep(3.0))
        took = time.perf_counter() - started
        await asyncio.sleep(0.2)
        stop.touch()
        latencies = sorted(await requests)
    stop.unlink()
    stop.parent.rmdir()
    return {
        "requests": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "max_ms": 1000 * latencies[-1],
        "action_seconds": took,
    }


async def batched(db: store.Store, durations: list[float]) -> None:
    """`tasks.run_maintenance`, each batch timed."""
    sweeps = tasks.SWEEPS.copy()
    tasks.SWEEPS.update({name: timed(remove, durations) for name, remove in sweeps.items()})
    try:
        await tasks.run_maintenance(db)
    finally:
        tasks.SWEEPS.update(sweeps)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        settings = config.load(data_dir=Path(work), secret_key=SECRET, log_level="warning")
        db = store.Store(settings)
        await db.open()
        await db.migrate()
        async with db.transaction() as tx:
            await identity.bootstrap.run(
                tx, Keyring(SECRET), password=None, token=None, email="root@example.com"
            )
            user = await identity.users.find_by_username(tx, "akadmin")
            assert user is not None
            body = wire.core.TokenRequest(identifier="bench", intent="api")
            _, token = await identity.tokens.create(tx, Keyring(SECRET), body, user_pk=user["pk"])
        runner = web.AppRunner(app.create_app(settings, db, run_tasks=False), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        results: dict[str, Any] = {}
        durations: list[float] = []
        phases: dict[str, Callable[[], Awaitable[Any]] | None] = {
            "idle": None,
            "unbatched": lambda: unbatched(db),
            "batched": lambda: batched(db, durations),
        }
        try:
            for name, action in phases.items():
                await fill(db, args.events, args.sessions, user["pk"])
                results[name] = await phase(args.port, token, args.concurrency, action)
                if action is None:
                    await unbatched(db)  # every phase starts from the same backlog
        finally:
            await runner.cleanup()
            await db.close()
    durations.sort()
    results["batched"]["batches"] = len(durations)
    results["batched"]["batch_p50_ms"] = 1000 * durations[len(durations) // 2]
    results["batched"]["batch_max_ms"] = 1000 * durations[-1]
    idle_p99 = results["idle"]["p99_ms"]
    for name in ("unbatched", "batched"):
        results[name]["p99_vs_idle_p99"] = results[name]["p99_ms"] / idle_p99
        results[name]["max_vs_idle_p99"] = results[name]["max_ms"] / idle_p99
    results["backlog"] = {"expired_events": args.events, "expired_sessions": args.sessions}
    results["batch_target_ms"] = 1000 * tasks.TARGET
    results["load_average_1min_at_end"] = os.getloadavg()[0]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--port", type=int, default=19180)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
