"""`tessera server` with several serving processes (`AUTHENTIK_WEB__WORKERS`), on PostgreSQL
without Redis: what one worker does, the others see; a worker that dies is started again.

Every request here opens a connection of its own (urllib), so the kernel spreads them over the
workers; the supervisor's metrics (`worker` label) show that each worker served some.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, Server, base_env, pg_env

FLOW = "/api/v3/flows/executor/default-authentication-flow/"


class Browser:
    """A cookie jar and a new connection for every request."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def call(self, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server.url + path, data=data)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def log_in(self, password: str) -> dict[str, Any]:
        assert self.call(FLOW)[0] == 200
        self.call(FLOW, {"component": "ak-stage-identification", "uid_field": "akadmin"})
        return dict(self.call(FLOW, {"component": "ak-stage-password", "password": password})[1])


def served_by_worker(server: Server, route: str) -> dict[str, float]:
    """Requests of routes starting with `route` each worker served (supervisor's metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        text = r.read().decode()
    counts: dict[str, float] = {}
    pattern = r"^tessera_http_requests_total\{(.*)\} (\S+)$"
    for labels, value in re.findall(pattern, text, re.M):
        if f'route="{route}' in labels:
            worker = re.search(r'worker="(\d+)"', labels)
            assert worker is not None
            counts[worker[1]] = counts.get(worker[1], 0) + float(value)
    return counts


def metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as r:
        found = re.search(rf"^{name} (\S+)$", r.read().decode(), re.M)
    assert found is not None, name
    return float(found[1])


def workers_of(server: Server) -> set[int]:
    """The serving workers among the server's child processes (it has others: expression
    sandbox workers)."""
    pid = server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {int(c) for c in children if b"--worker-index" in _cmdline(c)}


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def wait_for_line(server: Server, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)


def _two_workers(tmp_path: Path, database: str, **extra: str) -> Server:
    env = pg_env(
        database,
        AUTHENTIK_WEB__WORKERS="2",
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        **extra,
    )
    server = Server(env, tmp_path)
    server.wait_ready(timeout=60)
    return server


def test_a_login_on_one_worker_is_seen_by_the_others(tmp_path: Path, fresh_database: str) -> None:
    server = _two_workers(tmp_path, fresh_database)
    workers: set[int] = set()
    try:
        wait_for_line(server, "(2 workers)")  # printed once both listen
        workers = workers_of(server)
        assert len(workers) == 2
        browser = Browser(server)
        assert browser.log_in(BOOTSTRAP_PASSWORD)["component"] == "xak-flow-redirect"
        for _ in range(30):  # each on a new connection, to either worker
            status, me = browser.call("/api/v3/core/users/me/")
            assert status == 200 and me["user"]["username"] == "akadmin"
        served = served_by_worker(server, "/api/v3/core/users/me/")
        assert set(served) == {"0", "1"}, served  # both workers knew the session
    finally:
        assert server.stop() == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # stopped with it


def test_the_login_throttle_counts_attempts_on_every_worker(
    tmp_path: Path, fresh_database: str
) -> None:
    server = _two_workers(tmp_path, fresh_database, AUTHENTIK_LOGIN_THROTTLE__PER_USERNAME="6")
    try:
        wait_for_line(server, "(2 workers)")
        for _ in range(6):
            body = Browser(server).log_in("wrong guess")
            assert body["component"] == "ak-stage-password"
        body = Browser(server).log_in(BOOTSTRAP_PASSWORD)  # the right one, too late
        assert body["component"] == "ak-stage-access-denied"
        served = served_by_worker(server, "/api/v3/flows/executor/")
        assert set(served) == {"0", "1"}, served  # the attempts went to both workers
    finally:
        server.stop()


def test_a_killed_worker_is_started_again(tmp_path: Path, fresh_database: str) -> None:
    server = _two_workers(tmp_path, fresh_database)
    try:
        wait_for_line(server, "(2 workers)")
        before = workers_of(server)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = workers_of(server)
            if victim not in now and len(now) == 2 and metric(server, "tessera_web_workers") == 2:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no new worker: {workers_of(server)}\n{server.output()}")
        assert metric(server, "tessera_web_worker_restarts_total") == 1
        server.wait_ready(timeout=30)
        for _ in range(10):
            status, _ = server.request("GET", "/api/v3/core/users/me/", BOOTSTRAP_TOKEN)
            assert status == 200
    finally:
        assert server.stop() == 0


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path, fresh_database: str) -> None:
    server = _two_workers(tmp_path, fresh_database)
    wait_for_line(server, "(2 workers)")
    workers = workers_of(server)
    assert len(workers) == 2
    server.stop("KILL")
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)


def test_the_embedded_default_serves_with_one_process_and_says_so(tmp_path: Path) -> None:
    server = Server(base_env(AUTHENTIK_WEB__WORKERS="4"), tmp_path)
    try:
        server.wait_ready()
        assert workers_of(server) == set()
        assert "serves with one process" in server.output()
        assert "AUTHENTIK_WEB__WORKERS=4" in server.output()
    finally:
        assert server.stop() == 0
