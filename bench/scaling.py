"""Token endpoint and login rates with 1 and 2 serving processes, on PostgreSQL alone and on
PostgreSQL with Redis, against a bare aiohttp handler measured in the same run.

Run from the repository root: `.venv/bin/python bench/scaling.py` (`--help` for options). It needs
`wrk`, the local PostgreSQL (`--pg-host`, `--pg-user`; a fresh database per configuration, dropped
afterwards) and, for the Redis configurations, the local Redis. Not part of the test suite.

For each configuration (cache backend and `AUTHENTIK_WEB__WORKERS`), a `tessera server` gets an
ES256 OAuth2 provider (as `bench/oidc_token.py` sets it up), then:
1. token: wrk loads `POST /application/o/token/` (client_credentials, client_secret_basic);
2. logins: `--login-clients` clients log `akadmin` in again and again through the flow executor
   (three requests and an argon2id verification each, as `bench/login.py` does).
The reference is `bench/ref_app.py` (one process) under the same wrk settings. Reported: rates,
ratios to the reference, the speed-up of 2 workers over 1 for each backend, and the load average
of the machine before and after (the figures only mean something next to it: on a machine whose
cores are busy with other work, a second worker has no idle core to run on). Results go to
`bench/results/scaling-<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import login
import oidc_token
from startup_memory import RESULTS, TESSERA, Proc, clean_env, free_port, reference_app, running

CONFIGS = [("postgresql", 1), ("postgresql", 2), ("postgresql+redis", 1), ("postgresql+redis", 2)]


async def _admin(args: argparse.Namespace, sql: str) -> None:
    conn = await asyncpg.connect(host=args.pg_host, user=args.pg_user, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(args, f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        asyncio.run(_admin(args, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def server(work: Path, args: argparse.Namespace, db: str, backend: str, workers: int) -> Proc:
    port = free_port()
    env = clean_env(
        AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{port}",
        AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
        AUTHENTIK_BOOTSTRAP_TOKEN=args.admin_token,
        AUTHENTIK_BOOTSTRAP_PASSWORD=login.PASSWORD,
        AUTHENTIK_SECRET_KEY=secrets.token_urlsafe(48),
        AUTHENTIK_POSTGRESQL__HOST=args.pg_host,
        AUTHENTIK_POSTGRESQL__USER=args.pg_user,
        AUTHENTIK_POSTGRESQL__NAME=db,
        AUTHENTIK_WEB__WORKERS=str(workers),
        AUTHENTIK_LOG_LEVEL="warning",
        AUTHENTIK_LOGIN_THROTTLE__PER_IP="1000000",
        TESSERA_DATA_DIR=str(work / db),
    )
    if backend == "postgresql+redis":
        env.update(AUTHENTIK_REDIS__HOST=args.redis_host, AUTHENTIK_REDIS__PREFIX=f"{db}:")
    return Proc(f"tessera-{backend}-{workers}", [TESSERA, "server"], env, work, port)


def wait_for_workers(proc: Proc, workers: int) -> None:
    """Until every worker listens (the supervisor prints its line then)."""
    proc.wait_ready(timeout=120)
    deadline = time.monotonic() + 120
    while workers > 1 and f"({workers} workers)" not in proc.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name}: workers not up:\n{proc.tail()}")
        time.sleep(0.1)


def token_lua(proc: Proc, args: argparse.Namespace) -> str:
    client_id, client_secret = oidc_token.set_up_provider(proc, args.admin_token)
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    form = {"grant_type": "client_credentials", "scope": "openid profile email"}
    status, answer = oidc_token.form_post(proc, oidc_token.GRANT_PATH, form, basic)
    if status != 200:
        raise RuntimeError(f"client_credentials answered {status}: {answer}")
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return oidc_token.lua_request("POST", headers, urllib.parse.urlencode(form))


def logins(proc: Proc, args: argparse.Namespace) -> dict[str, float]:
    asyncio.run(login.load(proc.url, args.login_clients, 2.0))  # warm-up
    count, latencies = asyncio.run(login.load(proc.url, args.login_clients, args.duration))
    latencies.sort()
    rate = count / args.duration
    print(f"  logins: {rate:.1f}/s, p50 {1000 * latencies[len(latencies) // 2]:.0f} ms", flush=True)
    return {"logins_per_s": rate, "p50_ms": 1000 * latencies[len(latencies) // 2]}


def bench_config(
    work: Path, args: argparse.Namespace, backend: str, workers: int
) -> dict[str, Any]:
    print(f"Tessera, {backend}, {workers} worker(s):", flush=True)
    with database(args) as db, running(server(work, args, db, backend, workers)) as proc:
        wait_for_workers(proc, workers)
        lua = token_lua(proc, args)
        token = oidc_token.measure(work, args, "token", proc.url + oidc_token.GRANT_PATH, lua)
        return {"token": token, "login": logins(proc, args), "rss_mib": proc.rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk load before")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--login-clients", type=int, default=8, help="concurrent logins (default 8)")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--redis-host", default="127.0.0.1")
    p.add_argument("--only", choices=["postgresql", "postgresql+redis"], help="one backend only")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args()
    args.admin_token = secrets.token_urlsafe(32)
    if shutil.which(args.wrk) is None:
        sys.exit(f"{args.wrk} not found (Debian: apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="tessera-scaling-bench-"))
    load_before = os.getloadavg()
    try:
        with running(reference_app(work)) as ref:
            ref.wait_ready()
            print("Reference, bare aiohttp:", flush=True)
            reference = oidc_token.measure(work, args, "aiohttp", ref.url + "/-/health/ready/")
        configs = [c for c in CONFIGS if args.only in (None, c[0])]
        results = {f"{b}/{w}": bench_config(work, args, b, w) for b, w in configs}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(results, reference)
    for name, value in summary.items():
        print(f"  {name}: {value:.3f}")
    out = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": len(os.sched_getaffinity(0)),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "settings": {k: getattr(args, k) for k in ("concurrency", "duration", "login_clients")},
        "reference_aiohttp": reference,
        "tessera": results,
        "summary": summary,
    }
    print(f"  load average before {load_before}, after {out['load_average_after']}")
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.output / f"scaling-{stamp}.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {target}")


def summarise(results: dict[str, Any], reference: dict[str, Any]) -> dict[str, float]:
    summary: dict[str, float] = {}
    ref_rate = reference["requests_per_s"]
    for name, r in results.items():
        summary[f"token_per_aiohttp {name}"] = r["token"]["requests_per_s"] / ref_rate
    for backend in ("postgresql", "postgresql+redis"):
        one, two = results.get(f"{backend}/1"), results.get(f"{backend}/2")
        if one and two:
            token = two["token"]["requests_per_s"] / one["token"]["requests_per_s"]
            summary[f"token 2 workers / 1 {backend}"] = token
            logins = two["login"]["logins_per_s"] / one["login"]["logins_per_s"]
            summary[f"logins 2 workers / 1 {backend}"] = logins
    for workers in (1, 2):
        pg, both = results.get(f"postgresql/{workers}"), results.get(f"postgresql+redis/{workers}")
        if pg and both:
            token = pg["token"]["requests_per_s"] / both["token"]["requests_per_s"]
            summary[f"token postgresql-only / with redis, {workers} worker(s)"] = token
            logins = pg["login"]["logins_per_s"] / both["login"]["logins_per_s"]
            summary[f"logins postgresql-only / with redis, {workers} worker(s)"] = logins
    return summary


if __name__ == "__main__":
    main()
