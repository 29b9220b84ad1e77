"""Password logins per second through the JSON flow executor, against the hash alone.

Run from the repository root: `.venv/bin/python bench/login.py` (`--help` for options). Not part
of the test suite. It starts `tessera server` on a fresh SQLite data directory with a bootstrap
password, then logs `akadmin` in again and again through `default-authentication-flow` (GET the
identification challenge, POST the username, POST the password: three requests, ending in a
new session) from `--concurrency` clients for `--duration` seconds.

References measured in the same run: argon2id verifications per second with Tessera's own
parameters in this process (one core), the floor that the hash sets; and `ref_app.py`, a bare
aiohttp server answering the same three requests with challenges of the same shape and no flow
behind them, the floor that HTTP sets. Reported: logins/s, the ratio logins/s ÷ hashes/s, the
server's CPU per login beyond the hash, and the event loop thread's CPU per login (HTTP, the flow
and SQLite; the hashes run in worker threads) next to the bare server's for the same requests.
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
import time
from pathlib import Path
from typing import Any

import aiohttp

from tessera.core.crypto import passwords

TESSERA = shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"
FLOW = "/api/v3/flows/executor/default-authentication-flow/"
PASSWORD = "bench-password-" + "x" * 10


def hashes_per_second(seconds: float) -> float:
    stored = passwords.hash_password(PASSWORD)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        assert passwords.verify_password(stored, PASSWORD)
        count += 1
    return count / (time.perf_counter() - started)


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
    hash_rate = hashes_per_second(3.0)
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
        "hashes_per_second_one_core": hash_rate,
        "hash_ms": 1000 / hash_rate,
    }
    result["flow_overhead_ms_per_login"] = result["server_cpu_ms_per_login"] - result["hash_ms"]
    result["event_loop_ms_beyond_bare_http"] = result["event_loop_cpu_ms_per_login"] - reference_ms
    result["ratio_logins_per_cpu_second_vs_hashes"] = (count / cpu_used) / hash_rate
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
