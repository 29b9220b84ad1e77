"""The `tessera` command: help texts, configuration errors, migrate, admin tasks."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from helpers import SECRET_KEY, Server, base_env, free_port, pg_env, run_cli

SUBCOMMANDS = [
    [],
    ["server"],
    ["worker"],
    ["migrate"],
    ["healthcheck"],
    ["dump-config"],
    ["admin"],
    ["admin", "create-recovery-key"],
    ["admin", "create-token"],
    ["admin", "test-email"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w) or "tessera")
def test_every_command_explains_itself(words: list[str], tmp_path: Path) -> None:
    result = run_cli(*words, "--help", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: tessera" in result.stdout and len(result.stdout.splitlines()) >= 3


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"AUTHENTIK_POSTGRESQL__HOST": "127.0.0.1"}, "AUTHENTIK_SECRET_KEY"),
        ({"AUTHENTIK_SECRET_KEY": "short"}, "AUTHENTIK_SECRET_KEY"),
        ({"AUTHENTIK_POSTGRESQL__PORT": "not-a-port"}, "AUTHENTIK_POSTGRESQL__PORT"),
        ({"AUTHENTIK_LOG_LEVEL": "chatty"}, "AUTHENTIK_LOG_LEVEL"),
        (
            {
                "AUTHENTIK_POSTGRESQL__HOST": "127.0.0.1",
                "AUTHENTIK_POSTGRESQL__PORT": str(free_port()),
                "AUTHENTIK_SECRET_KEY": SECRET_KEY,
            },
            "AUTHENTIK_POSTGRESQL__HOST",
        ),
    ],
    ids=[
        "missing-secret-key",
        "short-secret-key",
        "malformed-port",
        "bad-log-level",
        "unreachable-db",
    ],
)
def test_bad_configuration_stops_with_one_line_naming_the_key(
    env: dict[str, str], key: str, tmp_path: Path
) -> None:
    result = run_cli("migrate", env=base_env(**env), cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0]
    assert SECRET_KEY not in result.stderr


def test_tessera_prefix_and_yaml_config(tmp_path: Path) -> None:
    config = tmp_path / "tessera.yaml"
    config.write_text("postgresql:\n  port: notanumber\n")
    result = run_cli("--config", str(config), "migrate", env=base_env(), cwd=tmp_path)
    assert result.returncode == 2 and "AUTHENTIK_POSTGRESQL__PORT" in result.stderr
    result = run_cli(
        "--config",
        str(config),
        "migrate",
        env=base_env(TESSERA_POSTGRESQL__PORT="5432"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_migrate_then_admin_tasks_against_a_running_server(
    tmp_path: Path, fresh_database: str
) -> None:
    env = pg_env(fresh_database)
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 0 and "Migrations applied." in result.stdout
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        result = run_cli(
            "admin", "create-token", "akadmin", "--expires", "30m", env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        status, me = server.request("GET", "/api/v3/core/users/me/", token)
        assert status == 200 and me["user"]["username"] == "akadmin"

        result = run_cli("admin", "create-recovery-key", "10", "akadmin", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        match = re.search(r"(/recovery/use-token/[A-Za-z0-9]+/)", result.stdout)
        assert match is not None
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as first:
            opener.open(server.url + match[1])
        assert first.value.code == 302
        assert "authentik_session=" in first.value.headers["Set-Cookie"]
        with pytest.raises(urllib.error.HTTPError) as second:
            opener.open(server.url + match[1])
        assert second.value.code == 404

        missing = run_cli("admin", "create-token", "nobody", env=env, cwd=tmp_path)
        assert missing.returncode == 1 and "nobody" in missing.stderr
        bad = run_cli(
            "admin", "create-token", "akadmin", "--expires", "soon", env=env, cwd=tmp_path
        )
        assert bad.returncode == 2 and "--expires" in bad.stderr
    finally:
        server.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_healthcheck_follows_the_listen_setting(tmp_path: Path) -> None:
    server = Server(base_env(AUTHENTIK_SECRET_KEY=SECRET_KEY), tmp_path)
    try:
        server.wait_ready()
        env = base_env(
            AUTHENTIK_LISTEN__HTTP=f"0.0.0.0:{server.port}", http_proxy="http://127.0.0.1:9"
        )
        assert run_cli("healthcheck", env=env, cwd=tmp_path).returncode == 0
    finally:
        server.stop()
    assert run_cli("healthcheck", env=env, cwd=tmp_path).returncode == 1
