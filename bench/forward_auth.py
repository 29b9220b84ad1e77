"""Forward-auth checks per second with a valid session cookie: the standalone proxy outpost
(`tessera outpost proxy`) and the core's embedded outpost, against references in the same run.

Run from the repository root: `.venv/bin/python bench/forward_auth.py` (`--help` for options).
It needs `wrk` and, for the second reference, `nginx` (Debian: `apt-get install -y wrk nginx`).
Not part of the test suite; it reuses the test suite's harness (`tests/helpers.py`,
`tests/proxykit.py`) to start a core on SQLite, make a proxy provider, an application and an
outpost through the admin API, start the outpost process with the outpost's token, and log in
once through the outpost's `start` endpoint and the core's flow, as a browser would.

Then wrk (one thread, `--concurrency` connections, default 50) loads
`GET /outpost.goauthentik.io/auth/traefik` with the session cookie and the `X-Forwarded-*`
headers Traefik sends, on:

1. **standalone**: the outpost process (one event loop);
2. **embedded**: the core (`AUTHENTIK_WEB__WORKERS=1`), for a second provider assigned to the
   managed embedded outpost (skipped with a note when the core does not serve it).

Every answer must be 200 (wrk's non-2xx count is reported; a run with any is marked invalid).
References with the same wrk settings, measured before and after Tessera and averaged:
`bench/ref_app.py` (a bare aiohttp handler answering 200, the framework's ceiling) and nginx
with one worker serving a static file (the machine's ceiling). Reported: requests/s, p50 and
p99 latency, and ratios to both references; each server's CPU time per request during the
measured load (its process and children, from /proc) and the same ratios of those (reference's
CPU a request over Tessera's: the rate's sense, and much less moved by other load on a shared
machine than the rate); the outpost's RSS idle (after start and its first
config fetch, before any load) and after the load. Goals (issue 17): at least 0.6 x the aiohttp
rate, p99 < 5 ms at 50 connections, idle RSS < 60 MiB. The JSON result goes to
`bench/results/forward_auth-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

import oidc_token  # noqa: E402
import proxykit  # noqa: E402
from helpers import (  # noqa: E402
    BOOTSTRAP_PASSWORD,
    BOOTSTRAP_TOKEN,
    SECRET_KEY,
    Server,
    base_env,
    free_port,
)
from startup_memory import RESULTS  # noqa: E402

CHECK = "/outpost.goauthentik.io/auth/traefik"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def log_in(core: Server, external: str) -> str:
    """A browser login through the outpost at `external`; the outpost's session cookie."""
    original = f"{external}/page"
    async with proxykit.browser() as browser:
        start = f"{external}/outpost.goauthentik.io/start?rd=" + urllib.parse.quote(original)
        _final, visited = await proxykit.browse(browser, start, core.url)
        if visited[-1] != original:
            raise RuntimeError(f"the login did not come back to {original}: {visited}")
        return proxykit.cookie_header(browser)


def check_lua(external: str, cookie: str) -> str:
    original = f"{external}/page"
    headers = {**proxykit.check_headers(0, original), "Cookie": cookie}
    return oidc_token.lua_request("GET", headers)


def verify_once(url: str, external: str, cookie: str) -> None:
    """One check before the load: it must be 200 with the identity headers."""
    import http.client

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {**proxykit.check_headers(0, f"{external}/page"), "Cookie": cookie}
    conn.request("GET", parts.path, headers=headers)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 200 or answer.getheader("X-authentik-username") != "akadmin":
        raise RuntimeError(f"the check answered {answer.status}: {answer.getheaders()}")


def bench_outposts(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
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
    try:
        core.wait_ready()
        # 1. the standalone outpost process
        port = free_port()
        external = f"http://app.{proxykit.DOMAIN}:{port}"
        _row, token = proxykit.make_proxy_outpost(core, external)
        outpost = proxykit.OutpostProcess(core, token, work, port)
        try:
            asyncio.run(outpost.ready())
            asyncio.run(asyncio.sleep(2))  # its first fetch and control channel settle
            idle = rss_mib(outpost.process.proc.pid)
            cookie = asyncio.run(log_in(core, external))
            verify_once(outpost.check, external, cookie)
            load = oidc_token.measure(
                work,
                args,
                "standalone outpost",
                outpost.check,
                check_lua(external, cookie),
                pid=outpost.process.proc.pid,
            )
            out["standalone"] = {
                **load,
                "idle_rss_mib": idle,
                "rss_after_load_mib": rss_mib(outpost.process.proc.pid),
            }
        finally:
            outpost.stop()
        # 2. the core's embedded outpost
        if not args.skip_embedded:
            out["embedded"] = bench_embedded(work, args, core)
    finally:
        core.stop()
    return out


def bench_embedded(work: Path, args: argparse.Namespace, core: Server) -> dict[str, Any] | None:
    external = f"http://embedded.{proxykit.DOMAIN}:{core.port}"
    flows = {
        slug: proxykit.admin(core, "GET", f"flows/instances/{slug}/")["pk"]
        for slug in ("default-provider-authorization-implicit-consent", "default-invalidation-flow")
    }
    provider = proxykit.admin(
        core,
        "POST",
        "providers/proxy/",
        {
            "name": "embedded-bench",
            "authorization_flow": flows["default-provider-authorization-implicit-consent"],
            "invalidation_flow": flows["default-invalidation-flow"],
            "external_host": external,
            "mode": "forward_single",
        },
    )
    proxykit.admin(
        core,
        "POST",
        "core/applications/",
        {"name": "embedded-bench", "slug": "embedded-bench", "provider": provider["pk"]},
    )
    listing = proxykit.admin(
        core, "GET", "outposts/instances/?managed=goauthentik.io/outposts/embedded"
    )
    embedded = next(
        (o for o in listing["results"] if o.get("managed") == "goauthentik.io/outposts/embedded"),
        None,
    )
    if embedded is None:
        print("  no embedded outpost: skipped")
        return None
    providers = [*embedded["providers"], provider["pk"]]
    proxykit.admin(core, "PATCH", f"outposts/instances/{embedded['pk']}/", {"providers": providers})
    asyncio.run(asyncio.sleep(1.5))
    try:
        cookie = asyncio.run(log_in(core, external))
    except (AssertionError, RuntimeError) as exc:
        print(f"  the core does not serve the embedded outpost here: skipped ({exc})")
        return None
    url = core.url + CHECK
    verify_once(url, external, cookie)
    return dict(
        oidc_token.measure(
            work, args, "embedded outpost", url, check_lua(external, cookie), pid=core.proc.pid
        )
    )


def _mean_of(first: dict[str, Any], second: dict[str, Any], key: str) -> float | None:
    values = [d[key] for d in (first, second) if d.get(key)]
    return sum(values) / len(values) if values else None


def bench_references(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    return oidc_token.bench_references(work, args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--wrk", default="wrk", help="the wrk binary (Debian: apt-get install wrk)")
    p.add_argument("--skip-nginx", action="store_true", help="no nginx reference")
    p.add_argument("--skip-embedded", action="store_true", help="the standalone outpost only")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory of the JSON result")
    args = p.parse_args()
    if shutil.which(args.wrk) is None:
        sys.exit(f"{args.wrk} not found (Debian: apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="tessera-forward-auth-bench-"))
    try:
        # The references are measured before and after Tessera and averaged: on a shared machine
        # a single measurement of either can be off by a factor of two.
        print("References, before:", flush=True)
        before = bench_references(work, args)
        print("Tessera (SQLite core, one serving process):", flush=True)
        tessera = bench_outposts(work, args)
        print("References, after:", flush=True)
        after = bench_references(work, args)
        refs = {
            name: {
                "requests_per_s": (before[name]["requests_per_s"] + after[name]["requests_per_s"])
                / 2,
                "cpu_us_per_request": _mean_of(before[name], after[name], "cpu_us_per_request"),
                "before": before[name],
                "after": after[name],
            }
            for name in before
            if name in after
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ratios: dict[str, float] = {}
    goals: dict[str, bool] = {}
    for name, figures in tessera.items():
        if not figures:
            continue
        for ref, measured in refs.items():
            ratios[f"{name}_per_{ref}"] = figures["requests_per_s"] / measured["requests_per_s"]
            if "cpu_us_per_request" in figures and measured.get("cpu_us_per_request"):
                # the same sense as the rate's: the reference's CPU a request over ours
                ratios[f"{name}_cpu_per_{ref}"] = (
                    measured["cpu_us_per_request"] / figures["cpu_us_per_request"]
                )
        valid = figures["non_2xx"] == 0 and figures["socket_errors"] == 0
        goals[f"{name}: every answer 200"] = valid
        goals[f"{name}: at least 0.6 x aiohttp"] = ratios[f"{name}_per_aiohttp"] >= 0.6
        goals[f"{name}: p99 under 5 ms"] = figures["p99_ms"] < 5.0
    if "idle_rss_mib" in tessera.get("standalone", {}):
        goals["standalone: idle RSS under 60 MiB"] = tessera["standalone"]["idle_rss_mib"] < 60
    for name, value in ratios.items():
        print(f"  {name}: {value:.3f}")
    for name, met in goals.items():
        print(f"  goal ({name}): {'met' if met else 'NOT met'}")
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": len(os.sched_getaffinity(0)),
            "load_average_1min": os.getloadavg()[0],
        },
        "settings": {k: getattr(args, k) for k in ("concurrency", "duration", "warmup", "threads")},
        "tessera": tessera,
        "references": refs,
        "ratios": ratios,
        "goals": goals,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.output / f"forward_auth-{stamp}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
