"""Constants shared by the test modules (tests/ is on sys.path; see pyproject)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

# One id per pytest process. Under pytest-xdist every worker is its own process with its own
# databases and Redis prefix: the run's shared id plus the worker's name (`gw0`, `gw1`, ...).
_XDIST_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "")
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
RUN_ID = (
    f"{_XDIST_RUN[:10]}_{_XDIST_WORKER}"
    if _XDIST_RUN.isalnum() and _XDIST_WORKER.isalnum()
    else uuid.uuid4().hex[:10]
)
PG_HOST = os.environ.get("TESSERA_TEST_PG_HOST", "127.0.0.1")
PG_USER = os.environ.get("TESSERA_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("TESSERA_TEST_REDIS_HOST", "127.0.0.1")
SECRET_KEY = "test-secret-key-" + "x" * 40
BOOTSTRAP_TOKEN = "bootstrap-token-" + uuid.uuid4().hex
BOOTSTRAP_PASSWORD = "bootstrap-password-" + uuid.uuid4().hex


# Debian's Chromium, headless, as the browser tests launch it (tests/e2e/conftest.py).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Processes -----------------------------------------------------------------------------------


TESSERA = shutil.which("tessera", path=str(Path(sys.executable).parent)) or "tessera"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHENTIK_", "TESSERA_"))}
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra)
    return env


def pg_env(database: str, **extra: str) -> dict[str, str]:
    return base_env(
        AUTHENTIK_POSTGRESQL__HOST=PG_HOST,
        AUTHENTIK_POSTGRESQL__USER=PG_USER,
        AUTHENTIK_POSTGRESQL__NAME=database,
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        **extra,
    )


class Server:
    """A `tessera server` child process on free ports."""

    def __init__(
        self, env: dict[str, str], cwd: Path, command: str = "server", port: int | None = None
    ) -> None:
        self.port, self.metrics_port = port or free_port(), free_port()
        env = {
            **env,
            "AUTHENTIK_LISTEN__HTTP": f"127.0.0.1:{self.port}",
            "AUTHENTIK_LISTEN__METRICS": f"127.0.0.1:{self.metrics_port}",
        }
        self.log = cwd / f"{command}-{self.port}.log"
        self._log_handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [TESSERA, command], env=env, cwd=cwd, stdout=self._log_handle, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self._log_handle.closed:
            self._log_handle.flush()
        return self.log.read_text()

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Seconds until /-/health/ready/ answered 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/-/health/ready/", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready in {timeout}s:\n{self.output()}")

    def request(
        self, method: str, path: str, token: str | None = None, body: Any = None
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw.startswith(b"{") else raw.decode()

    def stop(self, sig: str = "TERM") -> int:
        if self.proc.poll() is None:
            (self.proc.kill if sig == "KILL" else self.proc.terminate)()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_handle.close()
        return int(self.proc.returncode)


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TESSERA, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
