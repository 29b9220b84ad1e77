"""The operator at scale: OAuth2Provider + Application pairs until all are Ready, its memory, and
the latency from `apply` to a usable credentials Secret.

Run from the repository root: `.venv/bin/python bench/operator_reconcile.py` (`--help` for
options). Not part of the test suite. It starts, on this machine: the emulated Kubernetes API
server of the tests (kmock + tests/kmockkit.py, in this process), a real `tessera server` on a
fresh SQLite data directory (or PostgreSQL with `--postgresql`), and `tessera operator` as its own
process (as the Helm chart runs it), then

1. applies `--pairs` OAuth2Provider + Application pairs at once and waits until every one is
   Ready; reports the time, pairs/s, and the operator's peak RSS (VmHWM);
2. applies one pair at a time, `--single` times, and measures apply → credentials Secret holding
   the issuer (checked usable once with a client_credentials grant); reports p50/p95.

Reference measured in the same run: the same core writes made directly by this script (look up
the flows and scope mappings, create provider and application), one pair at a time; the ratio
tells what the operator adds (Kubernetes watch, status, Secret, Events) over the bare API calls.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import kmock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import kmockkit  # the tests' emulator (tests/kmockkit.py), found through the path above

TESSERA = shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"
TOKEN = "bench-token-" + uuid.uuid4().hex
PROVIDERS = "/apis/tessera.dev/v1alpha1/namespaces/{ns}/oauth2providers"
APPLICATIONS = "/apis/tessera.dev/v1alpha1/namespaces/{ns}/applications"


def manifests(ns: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = {"name": name, "namespace": ns}
    prov = {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "OAuth2Provider",
        "metadata": meta,
        "spec": {
            "redirectURIs": [{"url": f"https://{name}.example/cb", "matchingMode": "strict"}],
            "credentialsSecret": {"name": f"{name}-oidc"},
        },
    }
    app = {
        "apiVersion": "tessera.dev/v1alpha1",
        "kind": "Application",
        "metadata": meta,
        "spec": {"name": name, "slug": f"{ns}-{name}", "providerRef": {"name": name}},
    }
    return prov, app


async def apply(api: kmockkit.Emulator, ns: str, name: str) -> None:
    prov, app = manifests(ns, name)
    for url, body in ((PROVIDERS, prov), (APPLICATIONS, app)):
        answer = await api.post(url.format(ns=ns), json=body)
        if answer.status not in (200, 201):
            raise RuntimeError(await answer.text())


def is_ready(api: kmockkit.Emulator, resource: str, ns: str, name: str) -> bool:
    try:
        conditions = api.get(resource, ns, name).get("status", {}).get("conditions", [])
    except KeyError:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def secret_data(api: kmockkit.Emulator, ns: str, name: str) -> dict[str, str]:
    try:
        raw = api.get("v1/secrets", ns, name)
    except KeyError:
        return {}
    return {k: base64.b64decode(v).decode() for k, v in (raw.get("data") or {}).items()}


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_now_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def settle(metrics_url: str, quiet: float = 2.0, limit: float = 120.0) -> float:
    """Seconds until the operator's reconcile count stops moving for `quiet` seconds."""
    started, last, since = time.monotonic(), -1.0, time.monotonic()
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - started < limit:
            async with http.get(metrics_url) as answer:
                text = await answer.text()
            count = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("tessera_operator_reconciles_total{")
            )
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            await asyncio.sleep(0.2)
    return round(since - started, 2)


async def usable(data: dict[str, str]) -> bool:
    async with aiohttp.ClientSession() as http:
        async with http.get(data["discovery_url"]) as answer:
            token_url = (await answer.json())["token_endpoint"]
        auth = aiohttp.BasicAuth(data["client_id"], data["client_secret"])
        form = {"grant_type": "client_credentials", "scope": "openid"}
        async with http.post(token_url, data=form, auth=auth) as answer:
            return answer.status == 200


async def direct_pairs(core: str, count: int) -> list[float]:
    """The reference: the operator's core writes for one pair, made directly, `count` times."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    async with aiohttp.ClientSession(base_url=core, headers=headers) as http:
        for i in range(count):
            started = time.perf_counter()
            flows = []
            for slug in (
                "default-provider-authorization-implicit-consent",
                "default-invalidation-flow",
            ):
                async with http.get(f"/api/v3/flows/instances/{slug}/") as r:
                    flows.append((await r.json())["pk"])
            scopes = []
            for scope in ("openid", "email", "profile"):
                url = f"/api/v3/propertymappings/provider/scope/?scope_name={scope}"
                async with http.get(url) as r:
                    scopes.append((await r.json())["results"][0]["pk"])
            name = f"direct-{i}-{uuid.uuid4().hex[:6]}"
            body = {
                "name": name,
                "authorization_flow": flows[0],
                "invalidation_flow": flows[1],
                "property_mappings": scopes,
                "redirect_uris": [{"matching_mode": "strict", "url": "https://d.example/cb"}],
                "managed": f"bench/{name}",
            }
            async with http.post("/api/v3/providers/oauth2/", json=body) as r:
                made = await r.json()
            app = {"name": name, "slug": name, "provider": made["pk"], "managed": f"bench/a/{name}"}
            async with http.post("/api/v3/core/applications/", json=app) as r:
                await r.read()
            times.append(time.perf_counter() - started)
    return times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "TESSERA_"))}
    env["PYTHONSAFEPATH"] = "1"
    core_port, health, metrics = args.port, args.port + 1, args.port + 2
    core_url = f"http://127.0.0.1:{core_port}"
    core_env = {
        **env,
        "AUTHENTIK_BOOTSTRAP_TOKEN": TOKEN,
        "AUTHENTIK_BOOTSTRAP_PASSWORD": "bench-" + uuid.uuid4().hex,
        "AUTHENTIK_SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "AUTHENTIK_LISTEN__HTTP": f"127.0.0.1:{core_port}",
        "AUTHENTIK_LISTEN__METRICS": f"127.0.0.1:{args.port + 3}",
        "AUTHENTIK_LOG_LEVEL": "warning",
        "AUTHENTIK_WEB__PUBLIC_URL": core_url,
    }
    if args.postgresql:
        core_env["AUTHENTIK_POSTGRESQL__HOST"] = "127.0.0.1"
        core_env["AUTHENTIK_POSTGRESQL__USER"] = "postgres"
        core_env["AUTHENTIK_POSTGRESQL__NAME"] = args.postgresql
    core = subprocess.Popen(
        [TESSERA, "server"],
        cwd=work,
        env=core_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    async with kmockkit.Emulator() as api, kmock.Server(api) as server:
        kmockkit.declare(api)
        kubeconfig = kmockkit.kubeconfig(work / "kubeconfig", str(server.url).rstrip("/"))
        operator = None
        try:
            await wait_http(core_url + "/-/health/ready/")
            direct = await direct_pairs(core_url, args.single)
            op_env = {
                **env,
                "AUTHENTIK_HOST": core_url,
                "AUTHENTIK_TOKEN": TOKEN,
                "KUBECONFIG": str(kubeconfig),
            }
            log_path = Path(args.operator_log) if args.operator_log else work / "operator.log"
            log = log_path.open("w")
            operator = subprocess.Popen(
                [
                    TESSERA,
                    "operator",
                    f"--health=127.0.0.1:{health}",
                    f"--metrics=127.0.0.1:{metrics}",
                    f"--retry-seconds={args.retry_seconds}",
                    f"--concurrency={args.concurrency}",
                ],
                cwd=work,
                env=op_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            await wait_http(f"http://127.0.0.1:{health}/healthz")
            idle_rss = rss_now_kib(operator.pid)
            # 1. Many pairs at once.
            started = time.perf_counter()
            for i in range(args.pairs):
                await apply(api, "bulk", f"p{i}")
            applied = time.perf_counter() - started
            pending = {f"p{i}" for i in range(args.pairs)}
            deadline = time.monotonic() + args.timeout
            while pending and time.monotonic() < deadline:
                pending = {
                    n
                    for n in pending
                    if not (
                        is_ready(api, "tessera.dev/v1alpha1/oauth2providers", "bulk", n)
                        and is_ready(api, "tessera.dev/v1alpha1/applications", "bulk", n)
                    )
                }
                await asyncio.sleep(2.0)  # reading kmock objects is costly: poll slowly
            all_ready = time.perf_counter() - started
            peak = rss_peak_kib(operator.pid)
            print(
                json.dumps(
                    {
                        "pairs": args.pairs,
                        "not_ready": len(pending),
                        "all_ready_seconds": round(all_ready, 2),
                        "rss_peak_mib": round(peak / 1024, 1),
                    }
                ),
                flush=True,
            )
            # The bulk's tail: reconciles still queued once all are Ready (Applications nudged
            # while they waited for a slot). Single applies are timed on an idle operator.
            tail = await settle(f"http://127.0.0.1:{metrics}/metrics")
            print(json.dumps({"bulk_tail_seconds": tail}), flush=True)
            # 2. One pair at a time.
            single: list[float] = []
            checked = False
            for i in range(args.single):
                name = f"s{i}"
                t0 = time.perf_counter()
                await apply(api, "single", name)
                while "issuer" not in secret_data(api, "single", f"{name}-oidc"):
                    if time.perf_counter() - t0 > 180:
                        raise RuntimeError(f"no usable Secret for {name}")
                    await asyncio.sleep(0.005)
                single.append(time.perf_counter() - t0)
                if not checked:
                    checked = await usable(secret_data(api, "single", f"{name}-oidc"))
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(30)
            core.terminate()
            core.wait(30)
    return {
        "pairs": args.pairs,
        "pairs_not_ready": len(pending),
        "apply_seconds": round(applied, 2),
        "bulk_tail_seconds": tail,
        "all_ready_seconds": round(all_ready, 2),
        "pairs_per_second": round(args.pairs / all_ready, 1),
        "operator_rss_idle_mib": round(idle_rss / 1024, 1),
        "operator_rss_peak_mib": round(peak / 1024, 1),
        "single_apply_to_secret_p50_ms": round(1000 * pct(single, 0.5), 1),
        "single_apply_to_secret_p95_ms": round(1000 * pct(single, 0.95), 1),
        "secret_usable_client_credentials": checked,
        "reference_direct_api_pair_p50_ms": round(1000 * pct(direct, 0.5), 1),
        "ratio_operator_vs_direct_p50": round(pct(single, 0.5) / pct(direct, 0.5), 2),
        "store": "postgresql" if args.postgresql else "sqlite",
        "operator_concurrency": args.concurrency,
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--single", type=int, default=30, help="one-at-a-time samples")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--retry-seconds", type=float, default=1.0, help="operator first retry")
    parser.add_argument("--concurrency", type=int, default=16, help="operator reconciles at once")
    parser.add_argument("--port", type=int, default=19300)
    parser.add_argument("--operator-log", metavar="FILE", help="keep the operator's log there")
    parser.add_argument("--postgresql", metavar="DB", help="an existing, empty database name")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        result = asyncio.run(run(args, Path(work)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
