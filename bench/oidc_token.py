"""OAuth2 token endpoint and userinfo throughput of `tessera server`, against references.

Run from the repository root: `.venv/bin/python bench/oidc_token.py` (`--help` for options). It
needs `wrk` and, for the second reference, `nginx` (Debian: `apt-get install -y wrk nginx-light`).
Not part of the test suite. One `tessera server` process on a fresh SQLite data directory gets,
through the admin API, an EC P-256 certificate-key pair, a confidential OAuth2 provider signing
with it (ES256) and an application. Then wrk, at a fixed concurrency for a fixed duration, loads:

1. `POST /application/o/token/` with `grant_type=client_credentials` and client_secret_basic:
   every request authenticates the client, evaluates the application's policies and signs an
   ES256 access token (no ID token: no end user logged in; RFC 6749 §4.4.3).
2. `GET /application/o/userinfo/` with a bearer access token from the same provider: the first
   request verifies the JWT's ES256 signature and builds the claims; the next ones are answered
   from the claim cache (`providers.oauth2.claimcache`) until the token expires or a commit
   touches users, memberships, revocations or grants.
3. `POST /application/o/introspect/` of that access token by its client (client_secret_basic):
   the client is authenticated on every request; the answer comes from the same cache.

`--backend postgresql` runs the server on a fresh PostgreSQL database (one serving process, so
that the figures compare with SQLite's) instead of SQLite.

References measured in the same run, with the same wrk settings: `bench/ref_app.py` (a bare
aiohttp handler answering 200 with a small JSON document, the framework's ceiling) and nginx, one
worker, serving the same document as a static file (the machine's ceiling). Each Tessera figure is
reported as requests/s and as a ratio to both. Results are printed and written as JSON to
`bench/results/`; docs/benchmarks.md explains them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from startup_memory import (
    READY_PATH,
    RESULTS,
    WRK_REPORT,
    Load,
    Proc,
    _family,
    _sbin_path,
    _version,
    nginx_server,
    reference_app,
    running,
    tessera_server,
)

GRANT_PATH = "/application/o/token/"
USERINFO_PATH = "/application/o/userinfo/"
INTROSPECT_PATH = "/application/o/introspect/"
SLUG = "bench-oidc"


def call(
    proc: Proc, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    """One request to `proc`; the status and the decoded JSON answer (or its text)."""
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def api(proc: Proc, token: str, method: str, path: str, body: Any = None) -> Any:
    """One admin API call; the decoded answer, or an error with the server's answer."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    status, answer = call(proc, method, "/api/v3/" + path, data, headers)
    if status not in (200, 201):
        raise RuntimeError(f"{method} /api/v3/{path} answered {status}: {answer}")
    return answer


def form_post(proc: Proc, path: str, form: dict[str, str], basic: str) -> tuple[int, Any]:
    headers = {
        "Authorization": f"Basic {basic}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return call(proc, "POST", path, urllib.parse.urlencode(form).encode(), headers)


def set_up_provider(proc: Proc, admin_token: str) -> tuple[str, str]:
    """An ES256 provider and its application; (client_id, client_secret)."""
    key = api(
        proc,
        admin_token,
        "POST",
        "crypto/certificatekeypairs/generate/",
        {"common_name": "bench-es256", "alg": "ecdsa", "validity_days": 30},
    )

    def flow(slug: str) -> str:
        return str(api(proc, admin_token, "GET", f"flows/instances/{slug}/")["pk"])

    provider = api(
        proc,
        admin_token,
        "POST",
        "providers/oauth2/",
        {
            "name": "bench provider",
            "authorization_flow": flow("default-provider-authorization-implicit-consent"),
            "invalidation_flow": flow("default-invalidation-flow"),
            "client_type": "confidential",
            "redirect_uris": [{"matching_mode": "strict", "url": "http://127.0.0.1/cb"}],
            "signing_key": key["pk"],
        },
    )
    api(
        proc,
        admin_token,
        "POST",
        "core/applications/",
        {"name": SLUG, "slug": SLUG, "provider": provider["pk"]},
    )
    return str(provider["client_id"]), str(provider["client_secret"])


def wrk(work: Path, args: argparse.Namespace, url: str, seconds: float, prelude: str = "") -> Load:
    script = work / "oidc-report.lua"
    script.write_text(prelude + WRK_REPORT)
    argv = [args.wrk, f"-t{args.threads}", f"-c{args.concurrency}", f"-d{seconds:g}s"]
    argv += ["--timeout", "10s", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in out.stdout.splitlines() if x.startswith("BENCHJSON "))
    r = json.loads(line.removeprefix("BENCHJSON "))
    took = r["duration_us"] / 1e6
    ms = {f"{k}_ms": r[f"{k}_us"] / 1000 for k in ("p50", "p90", "p99", "max", "mean")}
    counts = [int(r[k]) for k in ("requests", "socket_errors", "non_2xx")]
    return Load(counts[0], took, counts[0] / took, counts[1], counts[2], **ms)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time used so far by `pid` and its descendants."""
    total = 0
    for member in _family(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def measure(
    work: Path,
    args: argparse.Namespace,
    name: str,
    url: str,
    prelude: str = "",
    pid: int | None = None,
) -> dict[str, Any]:
    """wrk's figures for `url`; with the server's `pid`, also the server's CPU time per
    request (a figure a shared machine's other load moves much less than the rate)."""
    wrk(work, args, url, args.warmup, prelude)
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    result = wrk(work, args, url, args.duration, prelude)
    out: dict[str, Any] = asdict(result)
    cpu = ""
    if pid is not None and result.requests:
        out["cpu_us_per_request"] = (cpu_seconds(pid) - cpu_before) / result.requests * 1e6
        cpu = f", {out['cpu_us_per_request']:.1f} us CPU a request"
    if result.socket_errors or result.non_2xx:
        print(f"  warning: {name}: {result.socket_errors} socket errors, {result.non_2xx} non-2xx")
    print(
        f"  {name}: {result.requests_per_s:.1f} req/s, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms{cpu}",
        flush=True,
    )
    return out


def lua_request(method: str, headers: dict[str, str], body: str = "") -> str:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body:
        lines.append(f'wrk.body = "{body}"')
    return "\n".join(lines) + "\n"


async def _pg_admin(host: str, user: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=host, user=user, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def backend_env(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The server's storage settings: SQLite (none needed) or a fresh PostgreSQL database."""
    if args.backend == "sqlite":
        yield {}
        return
    name = f"tessera_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(args.pg_host, args.pg_user, f'CREATE DATABASE "{name}"'))
    try:
        yield {
            "AUTHENTIK_POSTGRESQL__HOST": args.pg_host,
            "AUTHENTIK_POSTGRESQL__USER": args.pg_user,
            "AUTHENTIK_POSTGRESQL__NAME": name,
            "AUTHENTIK_WEB__WORKERS": "1",
        }
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(_pg_admin(args.pg_host, args.pg_user, drop))


def bench_tessera(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    admin_token = secrets.token_urlsafe(32)
    data = work / "data"
    data.mkdir()
    with backend_env(args) as storage:
        server = tessera_server(
            "tessera",
            work,
            data,
            admin_token,
            AUTHENTIK_SECRET_KEY=secrets.token_urlsafe(48),
            **storage,
        )
        with running(server) as proc:
            return _load(work, args, proc, admin_token)


def _load(work: Path, args: argparse.Namespace, proc: Proc, admin_token: str) -> dict[str, Any]:
    proc.wait_ready()
    client_id, client_secret = set_up_provider(proc, admin_token)
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    form = {"grant_type": "client_credentials", "scope": "openid profile email"}
    status, answer = form_post(proc, GRANT_PATH, form, basic)
    if status != 200:
        raise RuntimeError(f"client_credentials answered {status}: {answer}")
    header = json.loads(base64.urlsafe_b64decode(answer["access_token"].split(".")[0] + "=="))
    if header.get("alg") != "ES256":
        raise RuntimeError(f"expected an ES256 access token, got {header}")
    bearer = answer["access_token"]
    token_lua = lua_request(
        "POST",
        {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        urllib.parse.urlencode(form),
    )
    out = {
        "token": measure(work, args, "token (client_credentials)", proc.url + GRANT_PATH, token_lua)
    }
    userinfo_lua = lua_request("GET", {"Authorization": f"Bearer {bearer}"})
    out["userinfo"] = measure(work, args, "userinfo", proc.url + USERINFO_PATH, userinfo_lua)
    status, answer = form_post(proc, INTROSPECT_PATH, {"token": bearer}, basic)
    if status != 200 or answer.get("active") is not True:
        raise RuntimeError(f"introspection answered {status}: {answer}")
    introspect_lua = lua_request(
        "POST",
        {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        urllib.parse.urlencode({"token": bearer}),
    )
    out["introspection"] = measure(
        work, args, "introspection", proc.url + INTROSPECT_PATH, introspect_lua
    )
    out["rss_after_load_mib"] = proc.rss_mib()
    return out


def bench_references(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    body = work / "ready.json"
    body.write_text('{"status":"ok"}')
    with running(reference_app(work)) as ref:
        ref.wait_ready()
        out["aiohttp"] = measure(work, args, "aiohttp", ref.url + READY_PATH, pid=ref.proc.pid)
    nginx = None if args.skip_nginx else shutil.which("nginx", path=_sbin_path())
    if nginx:
        with running(nginx_server(work, nginx, body)) as web:
            web.wait_ready()
            out["nginx"] = measure(work, args, "nginx", web.url + READY_PATH, pid=web.proc.pid)
    elif not args.skip_nginx:
        print("  nginx not found: its reference is left out")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--wrk", default="wrk", help="the wrk binary (Debian: apt-get install wrk)")
    p.add_argument("--skip-nginx", action="store_true", help="no nginx reference")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and logs")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory of the JSON result")
    p.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-user", default="postgres")
    args = p.parse_args()
    if shutil.which(args.wrk) is None:
        sys.exit(f"{args.wrk} not found (Debian: apt-get install -y wrk)")
    work = Path(tempfile.mkdtemp(prefix="tessera-oidc-bench-"))
    try:
        print(f"Tessera, one server process, {args.backend}:", flush=True)
        tessera = bench_tessera(work, args)
        print("References:", flush=True)
        refs = bench_references(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ratios = {
        f"{figure}_per_{ref}": tessera[figure]["requests_per_s"] / refs[ref]["requests_per_s"]
        for figure in ("token", "userinfo", "introspection")
        for ref in refs
    }
    for name, value in ratios.items():
        print(f"  {name}: {value:.3f}")
    goals = {
        "token at least 0.16 x aiohttp": ratios["token_per_aiohttp"] >= 0.16,
        "userinfo at least 0.25 x aiohttp": ratios["userinfo_per_aiohttp"] >= 0.25,
        "introspection at least 0.25 x aiohttp": ratios["introspection_per_aiohttp"] >= 0.25,
    }
    for name, met in goals.items():
        print(f"  goal ({name}): {'met' if met else 'NOT met'}")
    goal = all(goals.values())
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu_count": _cpu_count()},
        "versions": {"wrk": _version([args.wrk, "-v"]), "nginx": _nginx_version(args)},
        "settings": {
            k: getattr(args, k) for k in ("concurrency", "duration", "warmup", "threads", "backend")
        },
        "tessera": tessera,
        "references": refs,
        "ratios": ratios,
        "goals": goals,
        "goal_met": goal,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = args.output / f"oidc_token-{stamp}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target}")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _nginx_version(args: argparse.Namespace) -> str:
    nginx = shutil.which("nginx", path=_sbin_path())
    return _version([nginx, "-v"]) if nginx and not args.skip_nginx else "unavailable"


if __name__ == "__main__":
    main()
