"""docker-compose.yml: authentik's compose layout (server, worker, PostgreSQL; no Redis), read as
Compose reads it, its settings read by the core, its commands started against a real PostgreSQL,
its health checks run, and its Traefik labels the ones the Traefik tests drive."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import proxykit
import pytest
import yaml
from helpers import PG_HOST, PG_USER, Server, base_env, run_cli

from tessera.core import config
from tessera.core.cli import commands

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
DOTENV = {"PG_PASS": "a-database-password", "AUTHENTIK_SECRET_KEY": "k" * 60}
# Compose's interpolation: $$, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ...
_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


class Missing(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`value` with every variable replaced as `docker compose config` does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if present:
            return env[name]
        if op and op.endswith("?"):
            raise Missing(f"{name}: {arg}")
        return arg if op else ""

    return _VARIABLE.sub(one, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(interpolate(raw, DOTENV if env is None else env))


def test_authentiks_layout_server_worker_postgresql() -> None:
    services = compose()["services"]
    assert set(services) == {"postgresql", "server", "worker"}  # no Redis, as authentik 2025.10+
    assert services["server"]["image"] == services["worker"]["image"]
    for name in ("server", "worker"):
        args = commands.parser().parse_args([services[name]["command"]])
        assert args.func.__name__ == f"cmd_{name}"
        assert services[name]["depends_on"] == {"postgresql": {"condition": "service_healthy"}}
    # The worker's health check is a command of the image.
    test = services["worker"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "tessera"]
    assert commands.parser().parse_args(test[2:]).func.__name__ == "cmd_healthcheck"
    pg = services["postgresql"]
    assert pg["healthcheck"]["test"][1] == "pg_isready -d ${POSTGRES_DB} -U ${POSTGRES_USER}"


@pytest.mark.parametrize(
    ("unset", "message"),
    [("PG_PASS", "database password required"), ("AUTHENTIK_SECRET_KEY", "secret key required")],
)
def test_the_secrets_must_be_given(unset: str, message: str) -> None:
    env = {k: v for k, v in DOTENV.items() if k != unset}
    with pytest.raises(Missing, match=message):
        compose(env)
    with pytest.raises(Missing, match=message):
        compose({**env, unset: ""})  # an empty value is as good as none


def _settings_of(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> config.Settings:
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, str(value))
    return config.load()


@pytest.mark.parametrize("name", ["server", "worker"])
def test_every_setting_is_read_by_the_core(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose()["services"]
    service = services[name]
    settings = _settings_of(service, monkeypatch)
    assert not settings.embedded  # PostgreSQL, not the embedded SQLite
    for key, value in service["environment"].items():
        current: Any = settings
        for part in key.removeprefix("AUTHENTIK_").lower().split("__"):
            assert hasattr(current, part), f"{key}: no such setting"
            current = getattr(current, part)
        shown = current.get_secret_value() if hasattr(current, "get_secret_value") else current
        assert str(shown).lower() == str(value).lower(), key
    # The same database, user and password as the PostgreSQL service's.
    pg = services["postgresql"]["environment"]
    assert settings.postgresql.user == pg["POSTGRES_USER"] == "authentik"
    assert settings.postgresql.name == pg["POSTGRES_DB"]
    assert settings.postgresql.password.get_secret_value() == pg["POSTGRES_PASSWORD"]
    if name == "server":
        assert settings.worker.embedded is False  # the worker service runs the tasks


def test_the_traefik_labels_are_the_ones_the_traefik_tests_run() -> None:
    """tests/outposts/proxy/test_real_proxies.py and the embedded outpost's tests drive a real
    Traefik with `proxykit.COMPOSE_LABELS` (authentik's); the compose file carries the same."""
    labels = compose()["services"]["server"]["labels"]
    middleware = [line for line in labels if ".middlewares.authentik." in line]
    expected = proxykit.COMPOSE_LABELS.format(target="server:9000").strip().splitlines()
    assert middleware == expected
    assert "traefik.http.services.authentik.loadbalancer.server.port=9000" in labels


def test_the_commands_start_and_pass_their_health_checks(
    tmp_path: Path, fresh_database: str
) -> None:
    """`server` and `worker` as the compose file starts them, against a real PostgreSQL (the
    host, user and database of this test run instead of the `postgresql` service)."""
    services = compose()["services"]
    started: list[Server] = []
    try:
        for name in ("server", "worker"):
            env = {
                **base_env(),
                **{k: str(v) for k, v in services[name]["environment"].items()},
                "AUTHENTIK_POSTGRESQL__HOST": PG_HOST,
                "AUTHENTIK_POSTGRESQL__USER": PG_USER,
                "AUTHENTIK_POSTGRESQL__NAME": fresh_database,
            }
            server = Server(env, tmp_path, command=services[name]["command"])
            started.append(server)
            if name == "server":
                server.wait_ready(60)
                assert (
                    run_cli(
                        "healthcheck",
                        "--url",
                        f"{server.url}/-/health/live/",
                        env=env,
                        cwd=tmp_path,
                    ).returncode
                    == 0
                )
            else:
                # The worker's compose health check, pointed at this process's metrics port.
                url = f"http://127.0.0.1:{server.metrics_port}/metrics"
                deadline = time.monotonic() + 60
                while run_cli("healthcheck", "--url", url, env=env, cwd=tmp_path).returncode:
                    assert server.proc.poll() is None, server.output()
                    assert time.monotonic() < deadline, server.output()
                    time.sleep(0.2)
        for server in started:
            assert server.proc.poll() is None, server.output()
    finally:
        for server in started:
            server.stop()
