"""Start-up time, idle memory and users-list throughput of `tessera server`, against references.

Run from the repository root: `.venv/bin/python bench/startup_memory.py` (`--help` for options).
It is not part of the test suite. Machines are shared and noisy, so every figure is measured next
to a reference in the same run and reported as a ratio, Tessera / reference:

1. start-to-ready: seconds from spawning `tessera server` on a fresh SQLite data directory to the
   first 200 from `/-/health/ready/` (and, for information, again on the same, now migrated,
   directory); reference: `bench/ref_app.py`, a bare aiohttp app, to its first 200.
2. idle RSS: VmRSS of the process and its children once it has been idle for a few seconds.
3. `GET /api/v3/core/users/?page_size=100` with 10,000 users stored (inserted with SQL in one
   transaction), on SQLite and on a PostgreSQL database created and dropped by the run, loaded by
   `wrk` at a fixed concurrency for a fixed duration; references: the same wrk run against
   `ref_app.py` answering the same JSON document, and nginx serving it as a static file.

Results are printed and written as JSON to `bench/results/`. docs/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TESSERA = shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"
READY_PATH = "/-/health/ready/"
LIST_PATH = "/api/v3/core/users/?page_size=100"
MIB = 1024 * 1024

WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCHJSON {\\"requests\\":%.0f,\\"duration_us\\":%.0f,\\"socket_errors\\":%.0f," ..
    "\\"non_2xx\\":%.0f,\\"p50_us\\":%.0f,\\"p90_us\\":%.0f,\\"p99_us\\":%.0f," ..
    "\\"max_us\\":%.0f,\\"mean_us\\":%.1f}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


# Processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Tessera's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "TESSERA_"))}
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra)
    return env


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Proc:
    """A child process that listens on 127.0.0.1:`port`; its output goes to a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, port: int):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd / f"{name}-{port}.log"
        with self.log.open("w") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
            )

    def wait_ready(self, path: str = READY_PATH, timeout: float = 60.0) -> float:
        """Seconds from the spawn to the first 200 on `path`."""
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(self.port, path)[0] == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.tail()}")

    def rss_mib(self) -> float:
        """VmRSS of the process and its descendants, in MiB."""
        return sum(_vm_rss_kib(pid) for pid in _family(self.proc.pid)) / 1024

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _vm_rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _family(root: int) -> list[int]:
    """`root` and its descendants, from the parent pids in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    family, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        family.extend(frontier)
    return family


def tessera_server(name: str, work: Path, data: Path, token: str, **extra: str) -> Proc:
    port = free_port()
    env = clean_env(
        AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{port}",
        AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
        AUTHENTIK_BOOTSTRAP_TOKEN=token,
        AUTHENTIK_BOOTSTRAP_PASSWORD=secrets.token_urlsafe(24),
        TESSERA_DATA_DIR=str(data),
        **extra,
    )
    return Proc(name, [TESSERA, "server"], env, work, port)


def reference_app(work: Path, body: Path | None = None) -> Proc:
    port = free_port()
    argv = [sys.executable, str(BENCH / "ref_app.py"), "--port", str(port)]
    if body is not None:
        argv += ["--body", str(body)]
    return Proc("aiohttp", argv, clean_env(), work, port)


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


# 1 and 2: start-to-ready and idle RSS --------------------------------------------------------


@dataclass
class StartRun:
    ready_s: float
    idle_rss_mib: float
    restart_ready_s: float | None = None


def start_tessera(work: Path, run: int, idle: float) -> StartRun:
    data = work / f"start-{run}"
    data.mkdir()
    token = secrets.token_urlsafe(32)
    with running(tessera_server("tessera-start", work, data, token)) as server:
        ready = server.wait_ready()
        time.sleep(idle)
        rss = server.rss_mib()
    with running(tessera_server("tessera-restart", work, data, token)) as server:
        restart = server.wait_ready()
    return StartRun(ready, rss, restart)


def start_reference(work: Path, idle: float) -> StartRun:
    with running(reference_app(work)) as ref:
        ready = ref.wait_ready()
        time.sleep(idle)
        return StartRun(ready, ref.rss_mib())


def summarise_starts(runs: list[StartRun]) -> dict[str, Any]:
    ready, rss = [r.ready_s for r in runs], [r.idle_rss_mib for r in runs]
    restarts = [r.restart_ready_s for r in runs if r.restart_ready_s is not None]
    return {
        "ready_s": ready,
        "ready_median_s": statistics.median(ready),
        "ready_max_s": max(ready),
        "idle_rss_mib": rss,
        "idle_rss_median_mib": statistics.median(rss),
        "idle_rss_max_mib": max(rss),
        "restart_ready_s": restarts,
        "restart_ready_median_s": statistics.median(restarts) if restarts else None,
    }


def bench_startup(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    tessera, reference = [], []
    for run in range(args.runs):  # interleaved, so that a noisy moment hits both
        tessera.append(start_tessera(work, run, args.idle))
        reference.append(start_reference(work, args.idle))
        print(
            f"  run {run + 1}/{args.runs}: tessera {tessera[-1].ready_s:.3f} s "
            f"{tessera[-1].idle_rss_mib:.1f} MiB, aiohttp {reference[-1].ready_s:.3f} s "
            f"{reference[-1].idle_rss_mib:.1f} MiB",
            flush=True,
        )
    return {"tessera": summarise_starts(tessera), "aiohttp": summarise_starts(reference)}


# 3: the users list under load ----------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    requests_per_s: float
    socket_errors: int
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def wrk(work: Path, args: argparse.Namespace, url: str, token: str | None, seconds: float) -> Load:
    script = work / "report.lua"
    script.write_text(WRK_REPORT)
    argv = [args.wrk, f"-t{args.threads}", f"-c{args.concurrency}", f"-d{seconds:g}s"]
    argv += ["--timeout", "10s", "-s", str(script)]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCHJSON "))
    r = json.loads(line.removeprefix("BENCHJSON "))
    took = r["duration_us"] / 1e6
    ms = {f"{k}_ms": r[f"{k}_us"] / 1000 for k in ("p50", "p90", "p99", "max", "mean")}
    counts = [int(r[k]) for k in ("requests", "socket_errors", "non_2xx")]
    return Load(counts[0], took, counts[0] / took, counts[1], counts[2], **ms)


def load(work: Path, args: argparse.Namespace, proc: Proc, token: str | None) -> dict[str, Any]:
    """Warm up, then measure `LIST_PATH` on `proc`; also its RSS after the load."""
    url = proc.url + LIST_PATH
    wrk(work, args, url, token, args.warmup)
    result = wrk(work, args, url, token, args.duration)
    if result.socket_errors or result.non_2xx:
        print(
            f"  warning: {proc.name}: {result.socket_errors} socket errors, "
            f"{result.non_2xx} non-2xx answers"
        )
    print(
        f"  {proc.name}: {result.requests_per_s:.1f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms",
        flush=True,
    )
    return {**asdict(result), "rss_after_load_mib": proc.rss_mib()}


def user_rows(count: int, sqlite: bool) -> list[dict[str, Any]]:
    """`count` users; on SQLite in SQLAlchemy's storage forms (0/1, naive UTC text)."""
    now = dt.datetime.now(dt.UTC)
    joined: Any = now.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else now
    fixed = {"password": "", "is_active": 1 if sqlite else True, "type": "internal"}
    fixed |= {"path": "users", "attributes": "{}", "date_joined": joined}
    names = (f"bench-user-{i:05d}" for i in range(count))
    return [
        {"uuid": str(uuid.uuid4()), "username": n, "username_folded": n.casefold()}
        | {"name": n.title(), "email": f"{n}@example.com", **fixed}
        for n in names
    ]


def _insert(columns: list[str], placeholders: list[str]) -> str:
    return f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join(placeholders)})"  # noqa: S608


def seed_sqlite(database: Path, count: int) -> None:
    """Insert `count` users in one transaction (into the columns the schema has)."""
    rows = user_rows(count, sqlite=True)
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn, conn:
        present = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
        columns = [c for c in rows[0] if c in present]
        conn.executemany(_insert(columns, [f":{c}" for c in columns]), rows)


async def pg_connect(args: argparse.Namespace, database: str) -> Any:
    return await asyncpg.connect(
        host=args.pg_host, port=args.pg_port, user=args.pg_user, database=database
    )


async def pg_admin(args: argparse.Namespace, statement: str) -> str:
    """Run `statement` on the `postgres` database; return the server's version."""
    conn = await pg_connect(args, "postgres")
    try:
        await conn.execute(statement)
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def seed_postgres(args: argparse.Namespace, database: str, count: int) -> None:
    rows = user_rows(count, sqlite=False)
    conn = await pg_connect(args, database)
    try:
        present = {
            r[0]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
            )
        }
        columns = [c for c in rows[0] if c in present]
        sql = _insert(columns, [f"${i}" for i in range(1, len(columns) + 1)])
        async with conn.transaction():
            await conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])
        await conn.execute("ANALYZE users")
    finally:
        await conn.close()


def check_listing(proc: Proc, token: str, users: int, save: Path) -> int:
    """Fail unless the listing answers 200 with every user counted; save the body; its size."""
    status, body = http_get(proc.port, LIST_PATH, token)
    if status != 200:
        raise RuntimeError(f"{proc.name}: {LIST_PATH} answered {status}: {body[:500]!r}")
    document = json.loads(body)
    if document["pagination"]["count"] != users + 1 or len(document["results"]) != 100:
        raise RuntimeError(f"{proc.name}: unexpected listing {document['pagination']}")
    save.write_bytes(body)
    return len(body)


def bench_tessera_list(
    work: Path, args: argparse.Namespace, backend: str, **extra: str
) -> dict[str, Any]:
    data = work / f"load-{backend}"
    data.mkdir()
    token = secrets.token_urlsafe(32)
    with running(tessera_server(f"tessera-{backend}", work, data, token, **extra)) as server:
        server.wait_ready()
        started = time.perf_counter()
        if backend == "sqlite":
            seed_sqlite(data / "tessera.sqlite3", args.users)
        else:
            asyncio.run(seed_postgres(args, extra["AUTHENTIK_POSTGRESQL__NAME"], args.users))
        seeded = time.perf_counter() - started
        size = check_listing(server, token, args.users, work / f"users-{backend}.json")
        return {"seed_s": seeded, "body_bytes": size, **load(work, args, server, token)}


def bench_postgres_list(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = f"tessera_bench_{uuid.uuid4().hex[:12]}"
    version = asyncio.run(pg_admin(args, f'CREATE DATABASE "{name}"'))
    try:
        extra = {
            "AUTHENTIK_POSTGRESQL__HOST": args.pg_host,
            "AUTHENTIK_POSTGRESQL__PORT": str(args.pg_port),
            "AUTHENTIK_POSTGRESQL__USER": args.pg_user,
            "AUTHENTIK_POSTGRESQL__NAME": name,
            "AUTHENTIK_SECRET_KEY": secrets.token_urlsafe(48),
        }
        if os.environ.get("PGPASSWORD"):
            extra["AUTHENTIK_POSTGRESQL__PASSWORD"] = os.environ["PGPASSWORD"]
        return {"server_version": version, **bench_tessera_list(work, args, "postgresql", **extra)}
    finally:
        asyncio.run(pg_admin(args, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp; proxy_temp_path {work}/nginx-tmp;
    fastcgi_temp_path {work}/nginx-tmp; uwsgi_temp_path {work}/nginx-tmp;
    scgi_temp_path {work}/nginx-tmp;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {work}/www; default_type application/json; try_files /users.json =404; }}
    }}
}}
"""


def nginx_server(work: Path, nginx: str, body: Path) -> Proc:
    """nginx in the foreground, one worker, answering every path with `body`."""
    port = free_port()
    (work / "www").mkdir(exist_ok=True)
    shutil.copy(body, work / "www" / "users.json")
    for path in (work, work / "www", work / "www" / "users.json"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # workers may run as nobody
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, port=port))
    argv = [nginx, "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(conf)]
    return Proc("nginx", argv, clean_env(), work, port)


def bench_list(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"sqlite": bench_tessera_list(work, args, "sqlite")}
    if not args.skip_postgres:
        out["postgresql"] = bench_postgres_list(work, args)
    body = work / "users-sqlite.json"
    with running(reference_app(work, body)) as ref:
        ref.wait_ready()
        out["aiohttp"] = {"body_bytes": body.stat().st_size, **load(work, args, ref, None)}
    nginx = None if args.skip_nginx else shutil.which("nginx", path=_sbin_path())
    if nginx:
        with running(nginx_server(work, nginx, body)) as web:
            web.wait_ready(path=LIST_PATH)
            out["nginx"] = {"body_bytes": body.stat().st_size, **load(work, args, web, None)}
    elif not args.skip_nginx:
        print("  nginx not found: its reference is left out")
    return out


def _sbin_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


# Report --------------------------------------------------------------------------------------


def _version(argv: list[str]) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return next(iter((done.stdout + done.stderr).strip().splitlines()), "")
    return "unavailable"


def machine(args: argparse.Namespace) -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in cpuinfo if x.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kib = int(next(x.split()[1] for x in meminfo if x.startswith("MemTotal:")))
    nginx = shutil.which("nginx", path=_sbin_path())
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": model or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kib / MIB, 1),
        "kernel": platform.release(),
        "python3": _version(["python3", "--version"]),
        "python_venv": platform.python_version(),
        "wrk": _version([args.wrk, "-v"]) if shutil.which(args.wrk) else "unavailable",
        "nginx": _version([nginx, "-v"]) if nginx else "unavailable",
        "commit": _version(["git", "-C", str(BENCH.parent), "rev-parse", "--short", "HEAD"]),
        "core_modified": bool(_version(["git", "-C", str(BENCH.parent), "status", "-s", "core"])),
    }


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Tessera / reference for every figure measured on both."""
    out: dict[str, float] = {}
    start = results.get("startup")
    if start:
        t, ref = start["tessera"], start["aiohttp"]
        out["ready_median"] = t["ready_median_s"] / ref["ready_median_s"]
        out["ready_max"] = t["ready_max_s"] / ref["ready_max_s"]
        out["idle_rss"] = t["idle_rss_median_mib"] / ref["idle_rss_median_mib"]
    listing = results.get("users_list", {})
    for backend in ("sqlite", "postgresql"):
        for ref_name in ("aiohttp", "nginx"):
            if backend in listing and ref_name in listing:
                t, ref = listing[backend], listing[ref_name]
                out[f"{backend}_rps_vs_{ref_name}"] = t["requests_per_s"] / ref["requests_per_s"]
                out[f"{backend}_p99_vs_{ref_name}"] = t["p99_ms"] / ref["p99_ms"]
    return out


def print_report(results: dict[str, Any], args: argparse.Namespace) -> None:
    r = results["ratios"]
    start = results.get("startup")
    if start:
        t, ref = start["tessera"], start["aiohttp"]
        print(f"\nStart-to-ready, fresh SQLite data dir ({args.runs} runs): median / max")
        print(f"  tessera server      {t['ready_median_s']:7.3f} s {t['ready_max_s']:7.3f} s")
        print(f"  bare aiohttp        {ref['ready_median_s']:7.3f} s {ref['ready_max_s']:7.3f} s")
        print(f"  ratio               {r['ready_median']:7.1f} x {r['ready_max']:7.1f} x")
        print(f"  tessera restart (migrated dir), median {t['restart_ready_median_s']:.3f} s")
        print(f"  goal < 2 s: {'met' if t['ready_max_s'] < 2 else 'NOT met'} (max)")
        print(f"\nIdle RSS after {args.idle:g} s (median of {args.runs})")
        print(f"  tessera server      {t['idle_rss_median_mib']:7.1f} MiB")
        print(f"  bare aiohttp        {ref['idle_rss_median_mib']:7.1f} MiB")
        print(f"  ratio               {r['idle_rss']:7.2f} x")
        print(f"  goal < 120 MiB: {'met' if t['idle_rss_max_mib'] < 120 else 'NOT met'} (max)")
    listing = results.get("users_list")
    if listing:
        print(
            f"\nGET {LIST_PATH}, {args.users} users, wrk -t{args.threads} "
            f"-c{args.concurrency} -d{args.duration:g}s"
        )
        print(f"  {'':22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'RSS MiB':>10}")
        for name, value in listing.items():
            print(
                f"  {name:22}{value['requests_per_s']:10.1f}{value['p50_ms']:10.2f}"
                f"{value['p99_ms']:10.2f}{value['rss_after_load_mib']:10.1f}"
            )
        for key, value in r.items():
            if "_vs_" in key:
                print(f"  {key:32}{value:10.3f}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Start-to-ready time, idle RSS and users-list throughput of tessera server, "
        "each against a reference (bare aiohttp, nginx) measured in the same run.",
    )
    p.add_argument("--runs", type=int, default=5, help="start-ups to time (default 5)")
    p.add_argument("--idle", type=float, default=3.0, help="idle seconds before reading RSS")
    p.add_argument("--users", type=int, default=10_000, help="users stored for the listing")
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--wrk", default="wrk", help="the wrk binary (Debian: apt-get install wrk)")
    p.add_argument("--pg-host", default="127.0.0.1", help="PostgreSQL host (PGPASSWORD is read)")
    p.add_argument("--pg-port", type=int, default=5432)
    p.add_argument("--pg-user", default="postgres", help="a role allowed to CREATE DATABASE")
    p.add_argument("--skip-startup", action="store_true", help="leave out figures 1 and 2")
    p.add_argument("--skip-load", action="store_true", help="leave out figure 3")
    p.add_argument("--skip-postgres", action="store_true", help="figure 3 on SQLite only")
    p.add_argument("--skip-nginx", action="store_true", help="no nginx reference")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory of the JSON result")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_load and shutil.which(args.wrk) is None:
        sys.exit(f"{args.wrk} not found: install wrk, or pass --skip-load")
    results: dict[str, Any] = {"machine": machine(args), "settings": vars(args) | {"output": None}}
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    try:
        if not args.skip_startup:
            print("Start-to-ready and idle RSS", flush=True)
            results["startup"] = bench_startup(work, args)
        if not args.skip_load:
            print(f"Users list under load ({args.users} users)", flush=True)
            results["users_list"] = bench_list(work, args)
    finally:
        if args.keep:
            print(f"temporary files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["ratios"] = ratios(results)
    print_report(results, args)
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.output / f"startup_memory-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
