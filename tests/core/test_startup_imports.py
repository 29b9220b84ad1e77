"""What the core leaves unimported until a feature needs it: start-up time and idle memory.

Each of these costs tens of milliseconds or several MiB at start (docs/benchmarks.md) and serves
only some installations: Redis and PostgreSQL drivers when configured, Alembic when the schema is
behind, Jinja2 on the first HTML page, zxcvbn for password policies, aiosmtplib for mail,
py_webauthn for passkeys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

LAZY = ("webauthn", "redis", "asyncpg", "sqlalchemy.ext.asyncio", "alembic", "jinja2", "zxcvbn")
LAZY += ("aiosmtplib",)


def test_the_server_modules_leave_optional_libraries_unimported() -> None:
    code = (
        "import json, sys\n"
        "from tessera.core import app, cli\n"
        f"print(json.dumps([m for m in {LAZY!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout) == []


def test_passkey_ceremonies_import_py_webauthn_on_first_use() -> None:
    code = (
        "import sys\n"
        "from tessera.core.crypto import webauthn\n"
        "assert 'webauthn' not in sys.modules\n"
        "print(webauthn.encode_id(b'\\xff\\x00'), webauthn.normalised_id('_wA'))\n"
        "assert 'webauthn' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.split() == ["_wA", "_wA"]
