"""`tessera outpost <type>` and `entry.main` against a real `tessera server`: a type's `serve`
runs inside a started runtime with metrics served; a wrong token, an unreachable core or a bad
setting end the process with one clear line and its exit status."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from helpers import BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port, run_cli

from tessera.outposts.common import entry


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """`entry.main` configures logging for its process: put the test process's back."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = base_env(AUTHENTIK_SECRET_KEY=SECRET_KEY, AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN)
    running = Server(env, tmp_path_factory.mktemp("core"))
    running.wait_ready()
    yield running
    running.stop()


def _outpost_key(server: Server) -> tuple[str, str]:
    name = f"entry-{uuid.uuid4().hex[:6]}"
    body = {"name": name, "type": "proxy", "providers": [], "config": {}}
    status, outpost = server.request("POST", "/api/v3/outposts/instances/", BOOTSTRAP_TOKEN, body)
    assert status == 201, outpost
    identifier = outpost["token_identifier"]
    status, key = server.request(
        "GET", f"/api/v3/core/tokens/{identifier}/view_key/", BOOTSTRAP_TOKEN
    )
    assert status == 200, key
    return str(outpost["pk"]), str(key["key"])


def _env(server: Server, tmp_path: Path, **extra: str) -> dict[str, str]:
    return base_env(
        AUTHENTIK_HOST=server.url,
        AUTHENTIK_STATE_DIR=str(tmp_path / "state"),
        AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{free_port()}",
        AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{free_port()}",
        **extra,
    )


def test_attack_a_wrong_token_stops_the_outpost_with_one_line(
    server: Server, tmp_path: Path
) -> None:
    result = run_cli(
        "outpost", "proxy", env=_env(server, tmp_path, AUTHENTIK_TOKEN="wrong"), cwd=tmp_path
    )
    assert result.returncode == entry.EXIT_REFUSED
    assert result.stderr.startswith("tessera outpost proxy: the core at ")
    assert "refused the token (HTTP 401" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreachable_core_at_first_start_is_one_line(tmp_path: Path) -> None:
    env = base_env(
        AUTHENTIK_HOST=f"http://127.0.0.1:{free_port()}",
        AUTHENTIK_TOKEN="some-token",
        AUTHENTIK_STATE_DIR=str(tmp_path / "state"),
    )
    result = run_cli("outpost", "proxy", env=env, cwd=tmp_path)
    assert result.returncode == entry.EXIT_REFUSED
    assert "cannot reach the core at http://127.0.0.1:" in result.stderr
    assert "no earlier configuration in" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_token_is_a_configuration_error(tmp_path: Path) -> None:
    env = base_env(AUTHENTIK_HOST="http://127.0.0.1:1")
    result = run_cli("outpost", "proxy", env=env, cwd=tmp_path)
    assert result.returncode == entry.EXIT_CONFIG
    assert result.stderr.strip() == (
        "tessera outpost proxy: configuration error: AUTHENTIK_TOKEN: required, but not set"
    )


def test_an_unknown_outpost_type(tmp_path: Path) -> None:
    result = run_cli("outpost", "gopher", env=base_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "no outpost of type 'gopher'" in result.stderr


def test_main_runs_serve_in_a_started_runtime(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outpost_pk, key = _outpost_key(server)
    env = _env(server, tmp_path, AUTHENTIK_TOKEN=key)
    for name, value in env.items():
        if name.startswith("AUTHENTIK_"):
            monkeypatch.setenv(name, value)
    metrics_port = int(env["AUTHENTIK_LISTEN__METRICS"].rsplit(":", 1)[1])
    seen: dict[str, object] = {}

    async def serve(ctx: entry.Context) -> None:
        seen["outpost"] = ctx.runtime.snapshot.outpost.pk
        seen["kind"] = ctx.kind
        for _ in range(100):
            if ctx.runtime.connected:
                break
            await asyncio.sleep(0.05)
        seen["connected"] = ctx.runtime.connected
        registry = ctx.metrics.registry

        def refreshes() -> float:
            found = registry.get_sample_value(
                "tessera_outpost_refreshes_total", {"result": "unchanged"}
            )
            return found or 0.0

        await asyncio.sleep(0.3)  # the refresh after connecting
        before = refreshes()
        os.kill(os.getpid(), signal.SIGUSR1)  # refetch now, as authentik's outposts do
        for _ in range(100):
            if refreshes() > before:
                break
            await asyncio.sleep(0.05)
        seen["refreshed"] = refreshes() > before
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        seen["metrics"] = text.decode()
        ctx.stopping.set()
        await ctx.stopping.wait()

    assert entry.main("proxy", [], serve) == entry.EXIT_OK
    assert seen["outpost"] == outpost_pk and seen["kind"] == "proxy"
    assert seen["connected"] is True
    assert seen["refreshed"] is True
    assert "tessera_outpost_connection{" in str(seen["metrics"])
    assert f'uuid="{outpost_pk}"' in str(seen["metrics"])


def test_a_failing_serve_is_exit_status_1(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = _outpost_key(server)
    for name, value in _env(server, tmp_path, AUTHENTIK_TOKEN=key).items():
        if name.startswith("AUTHENTIK_"):
            monkeypatch.setenv(name, value)

    async def serve(ctx: entry.Context) -> None:
        raise OSError("address in use")

    assert entry.main("proxy", [], serve) == entry.EXIT_REFUSED


def test_help_names_the_settings(tmp_path: Path) -> None:
    result = run_cli("outpost", "--help", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0 and "usage: tessera outpost" in result.stdout
    result = run_cli("outpost", "proxy", "--help", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: tessera outpost proxy" in result.stdout
    assert "AUTHENTIK_TOKEN" in result.stdout and "AUTHENTIK_STATE_DIR" in result.stdout
