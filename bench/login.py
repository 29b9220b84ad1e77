"""Password logins per second through the JSON flow executor, against the hash alone.

Run from the repository root: `.venv/bin/python bench/login.py` (`--help` for options). Not part
of the test suite. It starts `tessera server` on a fresh SQLite data directory with a bootstrap
password, then logs `akadmin` in again and again through `default-authentication-flow` (GET the
identification challenge, POST the username, POST the password: three requests, ending in a
new session) from `--concurrency` clients for `--duration` seconds.

References measured in the same run: argon2id verifications with Tessera's own parameters in this
process, in one thread (the floor a hash sets on one core) and in as many threads at once as there
are clients (what a hash costs while the server verifies that many at once); and `ref_app.py`, a
bare aiohttp server answering the same three requests with challenges of the same shape and no
flow behind them, the floor that HTTP sets.

Reported: logins/s; the server's CPU per login, split into the event loop thread (HTTP, the flow,
embedded SQLite and the cache: everything but the hash) and the worker threads (the hash); the
flow's overhead, which is the event loop's CPU per login beyond bare aiohttp's for the same
requests. The worker threads' CPU per login, next to a hash's at the same concurrency, shows that
they only hash; the two agree within this machine's noise, which is too large (a hash measured twice
in a row can differ by a third) to subtract one from the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from tessera.core.crypto import passwords

TESSERA = shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"
FLOW = "/api/v3/flows/executor/default-authentication-flow/"
PASSWORD = "bench-password-" + "x" * 10


def hash_cost(seconds: float, threads: int) -> tuple[float, float]:
    """Verify Tessera's own password hash in `threads` threads at once for `seconds`: (hashes per
    second, CPU milliseconds per hash).

    With one thread this is the floor a hash sets on one core. The server verifies a hash in a
    worker thread per login, so under load as many hashes as there are clients (up to the
    worker pool) run at once and compete for the cores and their caches: the same count of
    threads here gives the CPU a hash costs in those conditions.
    """
    stored = passwords.hash_password(PASSWORD)
    results: list[tuple[int, float]] = []
    deadline = time.perf_counter() + seconds

    def verify() -> None:
        count, cpu = 0, time.thread_time()
        while time.perf_counter() < deadline:
            assert passwords.verify_password(stored, PASSWORD)
            count += 1
        results.append((count, time.thread_time() - cpu))

    started = time.perf_counter()
    workers = [threading.Thread(target=verify) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    count = sum(n for n, _ in results)
    return count / (time.perf_counter() - started), 1000 * sum(c for _, c in results) / count


async def one_login(session: aiohttp.ClientSession, base: str) -> None:
    session.cookie_jar.clear()
    async with session.get(base + FLOW) as r:
        await r.read()
    async with session.post(base + FLOW, json={"uid_field": "akadmin"}) as r:
        await r.read()
    async with session.post(base + FLOW, json={"password": PASSWORD}) as r:
        body = await r.json()
    if body.get("component") != "xak-flow-redirect":
        raise RuntimeError(f"login failed: {body}")


async def load(base: str, concurrency: int, seconds: float) -> tuple[int, list[float]]:
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker() -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await one_login(session, base)
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


def reference_loop_ms(port: int, concurrency: int, seconds: float) -> float:
    """The bare aiohttp server's event-loop CPU per three-request "login", in milliseconds."""
    ref = Path(__file__).with_name("ref_app.py")
    proc = subprocess.Popen([sys.executable, str(ref), "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base)
        before = cpu_seconds(proc.pid, proc.pid)
        count, _ = asyncio.run(load(base, concurrency, seconds))
        return 1000 * (cpu_seconds(proc.pid, proc.pid) - before) / count
    finally:
        proc.terminate()
        proc.wait()


def _wait_until_serving(base: str) -> None:
    deadline = time.time() + 30
    while True:
        try:
            asyncio.run(load(base, 1, 0.1))  # also a warm-up
            return
        except (aiohttp.ClientError, RuntimeError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of a process (all threads), or of one of its threads."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=19100)
    args = parser.parse_args()
    hash_rate, hash_ms = hash_cost(3.0, 1)
    hash_ms_loaded = hash_cost(3.0, args.concurrency)[1] if args.concurrency > 1 else hash_ms
    with tempfile.TemporaryDirectory() as work:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "TESSERA_"))}
        env.update(
            PYTHONSAFEPATH="1",
            AUTHENTIK_BOOTSTRAP_PASSWORD=PASSWORD,
            AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{args.port}",
            AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{args.port + 1}",
            AUTHENTIK_LOG_LEVEL="warning",
            AUTHENTIK_LOGIN_THROTTLE__PER_IP="1000000",
        )
        proc = subprocess.Popen([TESSERA, "server"], cwd=work, env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{args.port}"
        try:
            _wait_until_serving(base)
            # The main thread runs the event loop: HTTP, the flow and (embedded) SQLite. The
            # argon2 hashes run in worker threads.
            cpu_before, loop_before = cpu_seconds(proc.pid), cpu_seconds(proc.pid, proc.pid)
            count, latencies = asyncio.run(load(base, args.concurrency, args.duration))
            cpu_used = cpu_seconds(proc.pid) - cpu_before
            loop_used = cpu_seconds(proc.pid, proc.pid) - loop_before
        finally:
            proc.terminate()
            proc.wait()
    reference_ms = reference_loop_ms(args.port + 2, args.concurrency, args.duration)
    latencies.sort()
    result: dict[str, Any] = {
        "logins": count,
        "logins_per_second": count / args.duration,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "server_cpu_ms_per_login": 1000 * cpu_used / count,
        "event_loop_cpu_ms_per_login": 1000 * loop_used / count,
        "bare_aiohttp_loop_cpu_ms_per_3_requests": reference_ms,
        "worker_threads_cpu_ms_per_login": 1000 * (cpu_used - loop_used) / count,
        "hashes_per_second_one_core": hash_rate,
        "hash_ms": hash_ms,
        f"hash_ms_{args.concurrency}_threads_at_once": hash_ms_loaded,
    }
    # The flow's own cost: everything but the hash runs on the event loop (HTTP, the flow,
    # embedded SQLite, the cache); take away what bare aiohttp spends on the same requests.
    result["flow_overhead_ms_per_login"] = result["event_loop_cpu_ms_per_login"] - reference_ms
    result["ratio_logins_per_cpu_second_vs_hashes"] = (count / cpu_used) / hash_rate
    result["load_average_1min"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
