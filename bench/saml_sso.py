"""Signed SAML SSO responses per second on one core, against raw RSA-SHA256 signing.

Run from the repository root: `.venv/bin/python bench/saml_sso.py` (`--help` for options). Not
part of the test suite. One `tessera server` process on a fresh SQLite data directory, pinned to
one CPU (`taskset -c <cpu>`), gets through the admin API an imported RSA-2048 key pair, a SAML
provider signing its assertions with it (RSA-SHA256, SHA-256 digests: authentik's defaults) and
an application; a user logs in through the flow executor. Then this process, pinned to another
CPU, sends SP-initiated AuthnRequests over the HTTP-Redirect binding (each with a fresh ID, as a
replay would be refused) from `--concurrency` connections for `--duration` seconds. Each answer is
the autosubmit page with a signed Response: the request is parsed, its ID remembered, the
browser's session read, the application's policies and the implicit-consent authorization flow
run, the attributes mapped, the assertion built, signed and recorded with an event.

Reference in the same run: raw RSA-2048 PKCS#1 v1.5 SHA-256 signatures per second of a 2 KiB
document with the same key, in a process pinned to the same CPU as the server, measured before
and after the load (the server idle); the ratio uses the higher of the two, so that other load on
a shared machine lowers the ratio rather than raising it. The ratio is the share of one core's
signing speed the whole SSO reaches (it cannot exceed 1: each response costs one signature).
`--sign-response` also signs the Response (two signatures per answer). Results are printed and
written as JSON to `bench/results/`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from startup_memory import RESULTS, TESSERA, Proc, clean_env, free_port, running

SLUG = "bench-saml"
ACS = "https://sp.example.com/acs"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
PASSWORD = "bench-" + secrets.token_urlsafe(16)


def key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench-idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def raw_signing_rate(key_pem: str, seconds: float) -> float:
    """Signatures per second (run in a child pinned to the server's CPU)."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    data = secrets.token_bytes(2048)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        done += 1
    return done / elapsed


def authn_request() -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    xml = (
        f'<samlp:AuthnRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" '
        f'ID="_{secrets.token_hex(16)}" Version="2.0" IssueInstant="{now}" '
        f'AssertionConsumerServiceURL="{ACS}"><saml:Issuer>https://sp.example.com</saml:Issuer>'
        "</samlp:AuthnRequest>"
    )
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(xml.encode()) + compressor.flush()
    query = urllib.parse.urlencode({"SAMLRequest": base64.b64encode(deflated).decode()})
    return f"/application/saml/{SLUG}/sso/binding/redirect/?{query}&RelayState=r"


async def api(
    http: aiohttp.ClientSession, base: str, token: str, method: str, path: str, body: Any = None
) -> Any:
    async with http.request(
        method, f"{base}/api/v3/{path}", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        answer = await response.json() if response.status != 204 else None
        if response.status not in (200, 201, 204):
            raise RuntimeError(f"{method} {path}: {response.status} {answer}")
        return answer


async def set_up(base: str, token: str, key: str, cert: str, sign_response: bool) -> None:
    async with aiohttp.ClientSession() as http:
        pair = await api(
            http,
            base,
            token,
            "POST",
            "crypto/certificatekeypairs/",
            {"name": "bench-idp", "certificate_data": cert, "key_data": key},
        )
        flows = {}
        for slug in (
            "default-provider-authorization-implicit-consent",
            "default-invalidation-flow",
        ):
            flows[slug] = (await api(http, base, token, "GET", f"flows/instances/{slug}/"))["pk"]
        mappings = await api(http, base, token, "GET", "propertymappings/provider/saml/")
        provider = await api(
            http,
            base,
            token,
            "POST",
            "providers/saml/",
            {
                "name": "bench",
                "authorization_flow": flows["default-provider-authorization-implicit-consent"],
                "invalidation_flow": flows["default-invalidation-flow"],
                "acs_url": ACS,
                "audience": "https://sp.example.com",
                "signing_kp": pair["pk"],
                "sign_response": sign_response,
                "property_mappings": [m["pk"] for m in mappings["results"]],
            },
        )
        await api(
            http,
            base,
            token,
            "POST",
            "core/applications/",
            {"name": "bench", "slug": SLUG, "provider": provider["pk"]},
        )
        user = await api(
            http,
            base,
            token,
            "POST",
            "core/users/",
            {"username": "bench", "name": "Bench User", "email": "bench@example.com"},
        )
        await api(
            http,
            base,
            token,
            "POST",
            f"core/users/{user['pk']}/set_password/",
            {"password": PASSWORD},
        )


async def log_in(http: aiohttp.ClientSession, base: str) -> None:
    flow = f"{base}/api/v3/flows/executor/default-authentication-flow/"
    await (await http.get(flow)).read()

    def csrf() -> dict[str, str]:
        value = next((c.value for c in http.cookie_jar if c.key == "authentik_csrf"), "")
        return {"X-authentik-CSRF": value}

    await (await http.post(flow, json={"uid_field": "bench"}, headers=csrf())).read()
    answer = await (await http.post(flow, json={"password": PASSWORD}, headers=csrf())).json()
    if answer.get("component") != "xak-flow-redirect":
        raise RuntimeError(f"login failed: {answer}")


async def load(base: str, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
        await log_in(http, base)
        async with http.get(base + authn_request(), allow_redirects=False) as first:
            page = await first.text()
            if first.status != 200 or 'name="SAMLResponse"' not in page:
                raise RuntimeError(f"SSO answered {first.status}: {page[:500]}")
        latencies: list[float] = []
        errors = 0
        counting = False
        stop_at = time.perf_counter() + warmup + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                path = authn_request()
                started = time.perf_counter()
                async with http.get(base + path, allow_redirects=False) as response:
                    body = await response.read()
                ok = response.status == 200 and b"SAMLResponse" in body
                if counting:
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        counting, measured_from = True, time.perf_counter()
        await asyncio.gather(*tasks)
        measured = time.perf_counter() - measured_from
    latencies.sort()
    return {
        "responses": len(latencies),
        "errors": errors,
        "seconds": round(measured, 2),
        "per_second": round(len(latencies) / measured, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2) if latencies else None,
    }


def raw_rate(args: argparse.Namespace, key: str) -> float:
    """Raw signatures per second in a child pinned to the server's CPU."""
    raw = subprocess.run(
        [
            "taskset",
            "-c",
            str(args.server_cpu),
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import saml_sso; "
            "print(saml_sso.raw_signing_rate(sys.argv[2], float(sys.argv[3])))",
            str(Path(__file__).resolve().parent),
            key,
            str(args.raw_seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(raw.stdout.strip())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    p.add_argument("--concurrency", type=int, default=8, help="connections")
    p.add_argument("--server-cpu", type=int, default=0, help="the CPU the server runs on")
    p.add_argument("--client-cpu", type=int, default=1, help="the CPU this client runs on")
    p.add_argument("--sign-response", action="store_true", help="sign the Response as well")
    p.add_argument("--raw-seconds", type=float, default=3.0, help="seconds of raw signing")
    args = p.parse_args()
    key, cert = key_pair()
    os.sched_setaffinity(0, {args.client_cpu})
    raw_before = raw_rate(args, key)
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="tessera-bench-saml-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        port = free_port()
        env = clean_env(
            AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{port}",
            AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
            AUTHENTIK_BOOTSTRAP_TOKEN=token,
            AUTHENTIK_BOOTSTRAP_PASSWORD=secrets.token_urlsafe(24),
            AUTHENTIK_SECRET_KEY=secrets.token_urlsafe(48),
            AUTHENTIK_WEB__WORKERS="1",
            TESSERA_DATA_DIR=str(data),
        )
        argv = ["taskset", "-c", str(args.server_cpu), TESSERA, "server"]
        with running(Proc("tessera", argv, env, work, port)) as proc:
            proc.wait_ready()
            base = f"http://127.0.0.1:{port}"
            asyncio.run(set_up(base, token, key, cert, args.sign_response))
            sso = asyncio.run(load(base, args.concurrency, args.duration, args.warmup))
    raw_after = raw_rate(args, key)
    best = max(raw_before, raw_after)
    result = {
        "benchmark": "saml_sso",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
        "signatures_per_response": 2 if args.sign_response else 1,
        "raw_rsa_sha256_signs_per_second": {
            "before": round(raw_before, 1),
            "after": round(raw_after, 1),
        },
        "sso": sso,
        "ratio_to_raw_signing": round(sso["per_second"] / best, 3),
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"saml_sso-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
