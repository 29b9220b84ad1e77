"""Property-based fuzzing of the whole admin API from its own OpenAPI document: no 500s.

Schemathesis (a third-party client) generates valid and invalid requests for every operation
of `/api/v3/schema/` against a real server on PostgreSQL, the backend least forgiving of odd
text (NUL bytes, lone surrogates, huge integers).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BOOTSTRAP_TOKEN, Server, pg_env

# Operations that would lock the fuzzer out (its own user or token deleted, password changed).
EXCLUDED = [
    "core_users_destroy",
    "core_users_set_password_post",
    "core_tokens_destroy",
    "core_tokens_update",
    "core_tokens_partial_update",
]


@pytest.mark.slow
def test_fuzzing_the_api_finds_no_server_errors(tmp_path: Path, fresh_database: str) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is part of the test extra"
    server = Server(pg_env(fresh_database, AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN), tmp_path)
    try:
        server.wait_ready()
        command = [
            st,
            "run",
            f"{server.url}/api/v3/schema/",
            "--url",
            f"{server.url}/api/v3",
            "-H",
            f"Authorization: Bearer {BOOTSTRAP_TOKEN}",
            "--checks",
            "not_a_server_error",
            "-n",
            "15",
            "--generation-allow-x00",
            "true",
            "--seed",
            "20261128",
            "--max-time",
            "60",
        ]
        for operation in EXCLUDED:
            command += ["--exclude-operation-id", operation]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
        )
        assert result.returncode == 0, result.stdout[-4000:]
        assert "passed" in result.stdout
    finally:
        server.stop()
    assert "unhandled error" not in server.output()
