"""`tessera outpost proxy` as a process beside `tessera server`: it connects and shows in health;
the core stopped, it keeps running; a second outpost process started while the core is away
starts from the last good configuration; the core back, both reconnect and show in health."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import BOOTSTRAP_TOKEN, SECRET_KEY, TESSERA, Server, base_env, free_port


def _until(what: Callable[[], Any], timeout: float, step: float = 0.2) -> Any:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        found = what()
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s")


class Outpost:
    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        self.log = cwd / f"{name}.log"
        self._handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [TESSERA, "outpost", "proxy"],
            env=env,
            cwd=cwd,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._handle.close()
        return int(self.proc.returncode)

    def output(self) -> str:
        if not self._handle.closed:
            self._handle.flush()
        return self.log.read_text()


@pytest.mark.slow
def test_outpost_processes_ride_out_a_core_restart(tmp_path: Path) -> None:
    port = free_port()
    core_env = base_env(AUTHENTIK_SECRET_KEY=SECRET_KEY, AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN)
    (tmp_path / "core").mkdir()
    core = Server(core_env, tmp_path / "core", port=port)
    outposts: list[Outpost] = []
    try:
        core.wait_ready(60)
        body = {"name": "edge", "type": "proxy", "providers": [], "config": {}}
        status, outpost = core.request("POST", "/api/v3/outposts/instances/", BOOTSTRAP_TOKEN, body)
        assert status == 201, outpost
        status, key = core.request(
            "GET", f"/api/v3/core/tokens/{outpost['token_identifier']}/view_key/", BOOTSTRAP_TOKEN
        )
        assert status == 200
        health = f"/api/v3/outposts/instances/{outpost['pk']}/health/"

        def env() -> dict[str, str]:
            return base_env(
                AUTHENTIK_HOST=core.url,
                AUTHENTIK_TOKEN=key["key"],
                AUTHENTIK_STATE_DIR=str(tmp_path / "state"),
                AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{free_port()}",
                AUTHENTIK_LISTEN__HTTPS=f"127.0.0.1:{free_port()}",
                AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
            )

        def instances(expected: int) -> list[dict[str, Any]] | None:
            status, shown = core.request("GET", health, BOOTSTRAP_TOKEN)
            return shown if status == 200 and len(shown) == expected else None

        outposts.append(Outpost(env(), tmp_path, "first"))
        _until(lambda: instances(1), 30)

        core.stop()
        time.sleep(2)
        assert outposts[0].proc.poll() is None, outposts[0].output()
        outposts.append(Outpost(env(), tmp_path, "second"))  # the core is away: from the cache
        time.sleep(3)
        assert outposts[1].proc.poll() is None, outposts[1].output()
        assert "outpost_starting_from_cache" in outposts[1].output()

        core = Server(core_env, tmp_path / "core", port=port)
        core.wait_ready(60)
        _until(lambda: instances(2), 45)  # both back, after their backoff
    finally:
        for running in outposts:
            code = running.stop()
            assert code == 0, running.output()
            assert "Traceback" not in running.output()
        core.stop()
    assert os.path.isdir(tmp_path / "state")
