"""Secrets never reach the logs: a canary secret through the server's real log output."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import SECRET_KEY, Server, base_env


def test_canary_secrets_do_not_appear_in_server_logs(tmp_path: Path) -> None:
    canary_token = "canary-token-" + "Q" * 40
    canary_password = "canary-password-" + "Z" * 20
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_TOKEN=canary_token,
        AUTHENTIK_BOOTSTRAP_PASSWORD=canary_password,
        AUTHENTIK_LOG_LEVEL="debug",
    )
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        server.request(
            "POST",
            "/api/v3/core/users/",
            canary_token,
            {"username": "x", "attributes": {"password": canary_password}},
        )
        server.request(
            "GET", "/api/v3/core/tokens/authentik-bootstrap-token/view_key/", canary_token
        )
        server.request("GET", "/api/v3/core/users/", "wrong-" + canary_token)
        server.request(
            "POST", "/api/v3/core/users/", canary_token, {"username": canary_password * 10}
        )
        time.sleep(0.2)
    finally:
        server.stop()
    output = server.output()
    assert output  # the server did log
    for secret in (canary_token, canary_password, SECRET_KEY):
        assert secret not in output
