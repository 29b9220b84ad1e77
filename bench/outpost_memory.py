"""Resident memory of `tessera outpost proxy` at idle: after start, after a login, after 1,000
forward-auth checks and after a bearer token, against a bare aiohttp process in the same run.

Run from the repository root: `.venv/bin/python bench/outpost_memory.py` (`--help` for
options). Not part of the test suite; it reuses the test suite's harness (`tests/helpers.py`,
`tests/proxykit.py`) to start a core on SQLite, make three proxy providers (forward_single,
forward_domain, proxy) with their applications and one outpost serving them through the admin
API, and then, `--runs` times, a fresh `tessera outpost proxy` process with the outpost's token.

Each run reads the outpost's `VmRSS` (and its anonymous and file-backed parts) from
`/proc/<pid>/status`, every reading after `--idle` seconds without requests:

1. **start**: ready (its port accepts), its first config fetch and control channel done;
2. **login**: one browser login through the outpost's `start`, the core's flow and the
   outpost's callback (code exchange, ID token verified against the provider's key set);
3. **checks**: `--checks` (1,000) `GET /outpost.goauthentik.io/auth/traefik` with the session
   cookie, one keep-alive connection, every answer 200 with the identity headers;
4. **bearer**: one check with `Authorization: Bearer <the session's access token>` (verified and
   introspected at the core), then `--checks` more with it.

Reference in the same run: `bench/ref_app.py` (Python and aiohttp, nothing else) at idle.
Goal (issue 17): the outpost under 60 MiB idle, after start and after the checks.
The JSON result goes to `bench/results/outpost_memory-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent / "tests"), str(BENCH)]

import aiohttp  # noqa: E402
import proxykit  # noqa: E402
from helpers import (  # noqa: E402
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    SECRET_KEY,
    Server,
    base_env,
    free_port,
)
from startup_memory import RESULTS, reference_app  # noqa: E402

CHECK = "/outpost.goauthentik.io/auth/traefik"
PHASES = ("start", "login", "checks", "bearer")
GOAL_MIB = 60.0


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of `pid`, in MiB."""
    wanted = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file"}
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in wanted:
            out[wanted[fields[0]]] = int(fields[1]) / 1024
    return out


def make_outpost(core: Server, port: int) -> tuple[str, str]:
    """Three proxy providers and one outpost serving them; the forward_single provider's
    external URL and the outpost's token."""
    single = f"http://app.{proxykit.DOMAIN}:{port}"
    providers = [
        proxykit.make_proxy_provider(core, single, intercept_header_auth=True),
        proxykit.make_proxy_provider(
            core,
            f"http://auth.{proxykit.DOMAIN}:{port}",
            mode="forward_domain",
            cookie_domain=proxykit.DOMAIN,
        ),
        proxykit.make_proxy_provider(
            core,
            f"http://proxied.{proxykit.DOMAIN}:{port}",
            mode="proxy",
            internal_host=f"http://127.0.0.1:{free_port()}",
        ),
    ]
    outpost = proxykit.admin(
        core,
        "POST",
        "outposts/instances/",
        {
            "name": "memory-bench",
            "type": "proxy",
            "providers": [p["pk"] for p in providers],
            "config": {},
        },
    )
    key = proxykit.admin(core, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/")
    return single, str(key["key"])


async def exercise(
    core: Server, outpost: proxykit.OutpostProcess, external: str, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    pid = outpost.process.proc.pid
    readings: dict[str, dict[str, float]] = {}

    async def settle(phase: str) -> None:
        await asyncio.sleep(args.idle)
        readings[phase] = memory(pid)

    original = f"{external}/page"
    await outpost.ready()
    await settle("start")
    async with proxykit.browser() as browser:
        start = f"{external}/outpost.goauthentik.io/start?rd=" + urllib.parse.quote(original)
        _final, visited = await proxykit.browse(browser, start, core.url)
        if visited[-1] != original:
            raise RuntimeError(f"the login did not come back to {original}: {visited}")
        cookie = proxykit.cookie_header(browser)
    await settle("login")
    headers = {**proxykit.check_headers(0, original), "Cookie": cookie}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as client:
        token = ""
        for _ in range(args.checks):
            async with client.get(outpost.check, headers=headers, allow_redirects=False) as r:
                await r.read()
                if r.status != 200 or r.headers.get("X-authentik-username") != "akadmin":
                    raise RuntimeError(f"a check answered {r.status}: {dict(r.headers)}")
                token = r.headers["X-authentik-jwt"]
        await settle("checks")
        bearer = {**proxykit.check_headers(0, original), "Authorization": f"Bearer {token}"}
        for _ in range(args.checks + 1):
            async with client.get(outpost.check, headers=bearer, allow_redirects=False) as r:
                await r.read()
                if r.status != 200 or r.headers.get("X-authentik-username") != "akadmin":
                    raise RuntimeError(f"a bearer check answered {r.status}")
        await settle("bearer")
    return readings


def reference_rss(work: Path, idle: float) -> float:
    ref = reference_app(work)
    try:
        ref.wait_ready()
        time.sleep(idle)
        return memory(ref.proc.pid)["rss"]
    finally:
        ref.stop()


def bench(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    core_port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{core_port}",
        AUTHENTIK_WEB__WORKERS="1",
        AUTHENTIK_LOG_LEVEL="warning",
    )
    core = Server(env, work, port=core_port)
    runs: list[dict[str, Any]] = []
    references: list[float] = []
    try:
        core.wait_ready()
        port = free_port()
        external, token = make_outpost(core, port)
        for index in range(args.runs):
            references.append(reference_rss(work, args.idle))
            outpost = proxykit.OutpostProcess(core, token, work, port)
            try:
                readings = asyncio.run(exercise(core, outpost, external, args))
            finally:
                outpost.stop()
            runs.append({"outpost": readings, "aiohttp_rss_mib": references[-1]})
            line = ", ".join(f"{p} {readings[p]['rss']:.1f}" for p in PHASES)
            print(f"  run {index + 1}: outpost RSS MiB {line}; aiohttp {references[-1]:.1f}")
    finally:
        core.stop()
    medians = {
        phase: {
            part: statistics.median(r["outpost"][phase][part] for r in runs)
            for part in ("rss", "anon", "file")
        }
        for phase in PHASES
    }
    reference = statistics.median(references)
    return {
        "runs": runs,
        "median": medians,
        "aiohttp_rss_mib": reference,
        "ratio_to_aiohttp": {p: medians[p]["rss"] / reference for p in PHASES},
        "goals": {f"{p}: under {GOAL_MIB:.0f} MiB": medians[p]["rss"] < GOAL_MIB for p in PHASES},
    }


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=BENCH.parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3, help="outpost processes in turn (default 3)")
    p.add_argument("--checks", type=int, default=1000, help="checks per phase (default 1000)")
    p.add_argument("--idle", type=float, default=3.0, help="seconds idle before each reading")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory of the JSON result")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tessera-outpost-memory-bench-"))
    try:
        figures = bench(work, args)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"Median over {args.runs} runs (aiohttp alone: {figures['aiohttp_rss_mib']:.1f} MiB):")
    for phase in PHASES:
        m = figures["median"][phase]
        print(
            f"  {phase:>6}: {m['rss']:.1f} MiB (anonymous {m['anon']:.1f}, files {m['file']:.1f}),"
            f" {figures['ratio_to_aiohttp'][phase]:.2f} x aiohttp"
        )
    for name, met in figures["goals"].items():
        print(f"  goal ({name}): {'met' if met else 'NOT met'}")
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": len(os.sched_getaffinity(0)),
            "load_average_1min": os.getloadavg()[0],
        },
        "settings": {k: getattr(args, k) for k in ("runs", "checks", "idle")},
        **figures,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.output / f"outpost_memory-{stamp}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
