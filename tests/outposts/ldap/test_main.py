"""`tessera outpost ldap` as a command: its help, a bad listen address refused at start naming
the key, and a core that cannot be reached with no earlier configuration on disk."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers import TESSERA, base_env, free_port


def outpost(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TESSERA, "outpost", "ldap"],
        env=base_env(AUTHENTIK_STATE_DIR=str(tmp_path / "state"), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help() -> None:
    done = subprocess.run(
        [TESSERA, "outpost", "ldap", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "LDAP|LDAPS" in done.stdout


def test_a_bad_listen_address_names_the_key(tmp_path: Path) -> None:
    done = outpost(
        tmp_path,
        AUTHENTIK_HOST="http://127.0.0.1:1",
        AUTHENTIK_TOKEN="t",
        AUTHENTIK_LISTEN__LDAP="nowhere",
    )
    assert done.returncode == 2
    assert "AUTHENTIK_LISTEN__LDAP" in done.stderr


def test_no_core_and_no_earlier_configuration(tmp_path: Path) -> None:
    done = outpost(tmp_path, AUTHENTIK_HOST=f"http://127.0.0.1:{free_port()}", AUTHENTIK_TOKEN="t")
    assert done.returncode == 1
    assert "cannot reach the core" in done.stderr
