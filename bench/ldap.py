"""The LDAP outpost against OpenLDAP's slapd, with the same 1,000 users, in the same run.

Run from the repository root: `.venv/bin/python bench/ldap.py` (`--help` for options). Not part
of the test suite. It starts:

- a `tessera server` (SQLite in a temporary directory) with 1,000 users (`user1`..) in 20 groups
  of 50, the first `--bind-users` of them with a password; two LDAP providers (cached and direct
  bind and search modes) and one `tessera outpost ldap` serving both;
- Debian's `slapd` (`tests/slapdkit.py`, mdb, indexes on uid, cn, objectClass, member) loaded
  with the same users (`{SSHA}` passwords) and groups under the same DNs;

and drives each with a small raw-protocol load client (hand-built BER PDUs, several
connections each keeping `--depth` requests in flight, only the framing of answers parsed), so
the client is not what limits slapd. The servers (slapd; the outpost and the core) run on CPU 0,
the client on CPU 1 (`--no-pin` to leave placement to the kernel).

Measured for slapd, the outpost in cached mode and the outpost in direct mode: binds per second
(simple binds cycling over the users with passwords, on open connections), searches per second
for one user by uid (`(&(objectClass=inetOrgPerson)(uid=userN))`, cn and mail), and for all
members of a group (`(&(objectClass=groupOfNames)(cn=groupK))`, member), each with its p99
latency, and the outpost's figures as ratios to slapd's. A direct bind's p99 is also measured at
low concurrency (one request in flight on each of 4 connections), the number the issue's goal
(< 50 ms) is about.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import slapdkit

from tessera.core import config, identity, store, wire
from tessera.outposts.ldap import ber

BASE = "dc=ldap,dc=goauthentik,dc=io"
DIRECT = "dc=direct,dc=goauthentik,dc=io"
SECRET = "bench-secret-key-" + "x" * 40
TOKEN = "bench-bootstrap-token-" + "y" * 20
ADMIN_PASSWORD = "bench-admin-Passw0rd"  # noqa: S105 - the bench core's bootstrap password
PASSWORD = "bench-user-Passw0rd"  # noqa: S105 - every bench user's
TESSERA = str(Path(sys.executable).parent / "tessera")
GROUPS, MEMBERS = 20, 50


# The load client -------------------------------------------------------------------------------


@dataclass
class Stats:
    done: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


class Driver(asyncio.Protocol):
    """One connection keeping `depth` requests in flight; each answer's done message (tag in
    `done_tags`) sends the next request of that slot."""

    def __init__(
        self, table: list[list[bytes]], stats: Stats, done_tags: set[int], first: bytes = b""
    ) -> None:
        self.table = table  # table[slot][i]: request i with message id slot + 2
        self.stats = stats
        self.done_tags = done_tags
        self.first = first  # a bind sent before the load (message id 1)
        self.buf = b""
        self.sent = [0.0] * len(table)
        self.index = [0] * len(table)
        self.transport: asyncio.Transport | None = None
        self.running = True
        self.ready = not first

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.first:
            transport.write(self.first)
        else:
            self._start()

    def _start(self) -> None:
        assert self.transport is not None
        now = time.perf_counter()
        out = []
        for slot, requests in enumerate(self.table):
            self.sent[slot] = now
            out.append(requests[slot % len(requests)])
            self.index[slot] = slot % len(requests)
        self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, n = 0, len(buf)
        out = []
        now = time.perf_counter()
        stats = self.stats
        while n - pos >= 2:
            first = buf[pos + 1]
            if first < 0x80:
                head, length = 2, first
            else:
                count = first & 0x7F
                if n - pos < 2 + count:
                    break
                head, length = 2 + count, int.from_bytes(buf[pos + 2 : pos + 2 + count], "big")
            end = pos + head + length
            if end > n:
                break
            i = pos + head  # messageID INTEGER
            id_len = buf[i + 1]
            message_id = int.from_bytes(buf[i + 2 : i + 2 + id_len], "big")
            tag = buf[i + 2 + id_len]
            if message_id == 1 and not self.ready:
                self.ready = True
                self._start()
            elif tag in self.done_tags:
                # the result code: after the op's tag and length, ENUMERATED
                j = i + 3 + id_len
                j += 1 if buf[j] < 0x80 else 1 + (buf[j] & 0x7F)
                if buf[j + 2] != 0:
                    stats.errors += 1
                slot = message_id - 2
                stats.done += 1
                stats.latencies.append(now - self.sent[slot])
                if self.running:
                    requests = self.table[slot]
                    k = self.index[slot] = (self.index[slot] + len(self.table)) % len(requests)
                    self.sent[slot] = now
                    out.append(requests[k])
            pos = end
        self.buf = buf[pos:]
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def bind_once(port: int, op: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ber.message(1, op))
    await reader.read(65536)
    writer.close()


def table(ops: list[bytes], depth: int) -> list[list[bytes]]:
    return [[ber.message(slot + 2, op) for op in ops] for slot in range(depth)]


def bind_op(dn: str, password: str) -> bytes:
    return ber.element(0x60, ber.encode_int(3) + ber.octets(dn) + ber.octets(password, 0x80))


def search_op(base: str, flt: bytes, attrs: list[str]) -> bytes:
    body = ber.octets(base) + ber.encode_int(2, ber.ENUMERATED) + ber.encode_int(0, ber.ENUMERATED)
    body += ber.encode_int(0) + ber.encode_int(0) + b"\x01\x01\x00" + flt
    body += ber.element(ber.SEQUENCE, b"".join(ber.octets(a) for a in attrs))
    return ber.element(0x63, body)


def equal(attr: str, value: str) -> bytes:
    return ber.element(0xA3, ber.octets(attr) + ber.octets(value))


def both(*filters: bytes) -> bytes:
    return ber.element(0xA0, b"".join(filters))


async def drive(
    port: int,
    ops: list[bytes],
    done_tags: set[int],
    *,
    seconds: float,
    connections: int,
    depth: int,
    first: bytes = b"",
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    stats = Stats()
    drivers = []
    for _ in range(connections):
        driver = Driver(table(ops, depth), stats, done_tags, first)
        await loop.create_connection(lambda d=driver: d, "127.0.0.1", port)
        drivers.append(driver)
    await asyncio.sleep(min(1.0, seconds / 4))  # warm up
    stats.done, stats.errors, stats.latencies = 0, 0, []
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    client_cpu = (time.process_time() - cpu) / elapsed
    done, errors, latencies = stats.done, stats.errors, sorted(stats.latencies)
    for driver in drivers:
        driver.running = False
        if driver.transport is not None:
            driver.transport.close()
    p99 = latencies[int(len(latencies) * 0.99)] if latencies else float("nan")
    return {
        "per_second": round(done / elapsed),
        "p99_ms": round(p99 * 1000, 2),
        "median_ms": round(statistics.median(latencies) * 1000, 2) if latencies else float("nan"),
        "errors": errors,
        "client_cpu": round(client_cpu, 2),  # near 1.0: the client is what limits the rate
    }


# The servers -----------------------------------------------------------------------------------


def slapd_entries(users: int, bind_users: int) -> str:
    out = [
        f"dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: ldap\ndc: ldap\n\n",
        f"dn: ou=users,{BASE}\nobjectClass: organizationalUnit\nou: users\n\n",
        f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n",
    ]
    for i in range(1, users + 1):
        lines = [
            f"dn: cn=user{i},ou=users,{BASE}",
            "objectClass: inetOrgPerson",
            f"cn: user{i}",
            f"uid: user{i}",
            f"sn: User {i}",
            f"mail: user{i}@example.com",
        ]
        if i <= bind_users:
            lines.append(f"userPassword: {slapdkit.ssha(PASSWORD)}")
        out.append("\n".join(lines) + "\n\n")
    for g in range(GROUPS):
        members = [f"cn=user{g * MEMBERS + m + 1},ou=users,{BASE}" for m in range(MEMBERS)]
        out.append(slapdkit.group(f"group{g}", members, suffix=BASE))
    return "".join(out)


async def seed(data_dir: Path, users: int, bind_users: int) -> None:
    settings = config.load(data_dir=data_dir, secret_key=SECRET, outbound={"enabled": False})
    db = store.Store(settings)
    await db.open()
    try:
        async with db.transaction() as tx:
            pks = []
            for i in range(1, users + 1):
                body = wire.core.UserRequest(
                    username=f"user{i}", name=f"User {i}", email=f"user{i}@example.com"
                )
                pks.append((await identity.users.create(tx, body))["pk"])
            for g in range(GROUPS):
                members = pks[g * MEMBERS : (g + 1) * MEMBERS]
                await identity.groups.create(
                    tx, wire.core.GroupRequest(name=f"group{g}", users=members)
                )
            for pk in pks[:bind_users]:
                await identity.users.set_password(tx, pk, PASSWORD)
    finally:
        await db.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "TESSERA_"))}
    out["PYTHONSAFEPATH"] = "1"
    out.update(extra)
    return out


def api(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + "/api/v3/" + path, data=data, method=method)  # noqa: S310
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - the bench's own core
        raw = r.read()
    return json.loads(raw) if raw else None


def wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def pin(pid: int, cpu: int) -> None:
    subprocess.run(
        ["taskset", "-a", "-p", "-c", str(cpu), str(pid)], capture_output=True, check=False
    )


def start_tessera(
    work: Path, users: int, bind_users: int, pinned: bool
) -> tuple[list[subprocess.Popen[bytes]], int]:
    port = free_port()
    core_env = env(
        AUTHENTIK_SECRET_KEY=SECRET,
        AUTHENTIK_BOOTSTRAP_PASSWORD=ADMIN_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=TOKEN,
        AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{port}",
        AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
        AUTHENTIK_WEB__WORKERS="1",
        AUTHENTIK_LOG_LEVEL="warning",
        TESSERA_OUTBOUND__ENABLED="false",
    )
    url = f"http://127.0.0.1:{port}"
    core = subprocess.Popen(
        [TESSERA, "server"],
        cwd=work,
        env=core_env,
        stdout=(work / "core.log").open("wb"),
        stderr=subprocess.STDOUT,
    )

    def ready() -> bool:
        with urllib.request.urlopen(url + "/-/health/ready/", timeout=2) as r:  # noqa: S310
            return r.status == 200

    wait(ready, "the core")
    asyncio.run(seed(work / "data", users, bind_users))
    flows = {
        s: api(url, "GET", f"flows/instances/{s}/")["pk"]
        for s in ("default-authentication-flow", "default-invalidation-flow")
    }
    providers = []
    for name, base, mode in (("bench-cached", BASE, "cached"), ("bench-direct", DIRECT, "direct")):
        provider = api(
            url,
            "POST",
            "providers/ldap/",
            {
                "name": name,
                "authorization_flow": flows["default-authentication-flow"],
                "invalidation_flow": flows["default-invalidation-flow"],
                "base_dn": base,
                "search_mode": mode,
                "bind_mode": mode,
            },
        )
        api(
            url,
            "POST",
            "core/applications/",
            {"name": name, "slug": name, "provider": provider["pk"]},
        )
        providers.append(provider["pk"])
    outpost = api(
        url,
        "POST",
        "outposts/instances/",
        {"name": "bench-ldap", "type": "ldap", "providers": providers, "config": {}},
    )
    token = api(url, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/")["key"]
    ldap_port = free_port()
    process = subprocess.Popen(
        [TESSERA, "outpost", "ldap"],
        cwd=work,
        env=env(
            AUTHENTIK_HOST=url,
            AUTHENTIK_TOKEN=token,
            AUTHENTIK_LISTEN__LDAP=f"127.0.0.1:{ldap_port}",
            AUTHENTIK_LISTEN__LDAPS=f"127.0.0.1:{free_port()}",
            AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
            AUTHENTIK_STATE_DIR=str(work / "state"),
            AUTHENTIK_LOG_LEVEL="warning",
        ),
        stdout=(work / "outpost.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait(lambda: port_open(ldap_port), "the outpost")
    if pinned:
        pin(core.pid, 0)
        pin(process.pid, 0)
    return [process, core], ldap_port


# The run ---------------------------------------------------------------------------------------


async def measure(
    port: int,
    base: str,
    admin_dn: str,
    admin_pw: str,
    args: argparse.Namespace,
    *,
    direct: bool = False,
) -> dict[str, Any]:
    users = [f"cn=user{i},ou=users,{base}" for i in range(1, args.bind_users + 1)]
    binds = [bind_op(dn, PASSWORD) for dn in users]
    admin_bind = ber.message(1, bind_op(admin_dn, admin_pw))
    uid_ops = [
        search_op(
            base,
            both(equal("objectClass", "inetOrgPerson"), equal("uid", f"user{i}")),
            ["cn", "mail"],
        )
        for i in range(1, 1001, 7)
    ]
    group_ops = [
        search_op(
            base, both(equal("objectClass", "groupOfNames"), equal("cn", f"group{g}")), ["member"]
        )
        for g in range(GROUPS)
    ]
    # direct mode asks the core every time: a few requests in flight are all it can take
    # (a bind is a password hash check, tens of milliseconds of the core's CPU)
    connections, depth = (4, 1) if direct else (args.connections, args.depth)
    out: dict[str, Any] = {}
    # every user binds once first: cached bind mode then answers from its cache
    for dn in users if not direct else ():
        await bind_once(port, bind_op(dn, PASSWORD))
    # binds: one in flight per connection (slapd finishes a connection's pending operations
    # before a bind, so pipelined binds would measure that wait)
    out["bind"] = await drive(
        port, binds, {0x61}, seconds=args.seconds, connections=connections * depth, depth=1
    )
    kw = {"seconds": args.seconds, "connections": connections, "depth": depth}
    out["uid_search"] = await drive(port, uid_ops, {0x65}, first=admin_bind, **kw)
    out["group_search"] = await drive(port, group_ops, {0x65}, first=admin_bind, **kw)
    if direct:
        out["bind_one_at_a_time"] = await drive(
            port, binds, {0x61}, seconds=args.seconds, connections=1, depth=1
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--bind-users", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2
    if pinned:
        os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-ldap-"))
    processes: list[subprocess.Popen[bytes]] = []
    slapd = None
    try:
        slapd = slapdkit.start(
            work / "slapd", slapd_entries(args.users, args.bind_users), suffix=BASE
        )
        if pinned:
            pin(slapd.process.pid, 0)
        processes, ldap_port = start_tessera(work, args.users, args.bind_users, pinned)
        results: dict[str, Any] = {}
        results["slapd"] = asyncio.run(
            measure(slapd.port, BASE, slapd.root_dn, slapd.root_password, args)
        )
        results["cached"] = asyncio.run(
            measure(ldap_port, BASE, f"cn=akadmin,ou=users,{BASE}", ADMIN_PASSWORD, args)
        )
        results["direct"] = asyncio.run(
            measure(
                ldap_port,
                DIRECT,
                f"cn=akadmin,ou=users,{DIRECT}",
                ADMIN_PASSWORD,
                args,
                direct=True,
            )
        )
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        if slapd is not None:
            slapd.stop()
        shutil.rmtree(work, ignore_errors=True)
    for mode in ("cached", "direct"):
        for op in ("bind", "uid_search", "group_search"):
            reference = results["slapd"][op]["per_second"]
            results[mode][op]["ratio_to_slapd"] = (
                round(results[mode][op]["per_second"] / reference, 3) if reference else None
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    placement = "servers on CPU 0, client on CPU 1" if pinned else "unpinned"
    print(
        f"LDAP: {args.users} users, {args.connections} connections x {args.depth} in flight, "
        f"{args.seconds:.0f} s each, {placement}"
    )
    columns = ("per second", "p99 ms", "median ms", "x slapd", "errors", "client CPU")
    print(f"{'':26}" + "".join(f"{c:>12}" for c in columns))
    for target in ("slapd", "cached", "direct"):
        for op, row in results[target].items():
            ratio = row.get("ratio_to_slapd")
            cells = (
                row["per_second"],
                row["p99_ms"],
                row["median_ms"],
                "" if ratio is None else ratio,
                row["errors"],
                row["client_cpu"],
            )
            print(f"{target + ' ' + op:26}" + "".join(f"{c:>12}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
