"""The container image recipe: the Dockerfile's shape, its build context, and the wheel it builds.

No Docker engine runs where the tests run, so the Dockerfile is read as text (stages, user,
environment, entrypoint, healthcheck) and checked against the code it relies on (the settings
names in `tessera.core.config`, the `tessera` CLI); and the builder stage's step is repeated with
this virtual environment's Python: the build context that `.dockerignore` lets through is copied
to a temporary folder and `pip wheel` builds the project there, as `docker build` would.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tessera.core import cli, config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WHEEL_MUST_CONTAIN = (
    "tessera/core/app/__init__.py",
    "tessera/core/cli/__init__.py",
    "tessera/core/store/migrations/env.py",
    "tessera/core/store/migrations/script.py.mako",
    "tessera/core/store/migrations/versions/0001_initial_schema.py",
    "tessera/core/store/migrations/versions/0002_flows_stages_policies.py",
    "tessera/core/web/templates/flow.html",
    "tessera/core/web/static/tessera.css",
)


# Reading the Dockerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def _instructions(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comments and blank lines dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _stages() -> list[list[Instruction]]:
    """The build stages, each starting with its FROM (anything before the first is left out)."""
    stages: list[list[Instruction]] = []
    for ins in _instructions(DOCKERFILE.read_text()):
        if ins.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _final() -> list[Instruction]:
    return _stages()[-1]


def _all(stage: list[Instruction], keyword: str) -> list[str]:
    return [ins.args for ins in stage if ins.keyword == keyword]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all(stage, "ENV"):
        for item in shlex.split(args):
            name, sep, value = item.partition("=")
            assert sep, f"use ENV NAME=value, not the legacy form: {args}"
            env[name] = value
    return env


def _stage_name(stage: list[Instruction]) -> str | None:
    words = stage[0].args.split()
    return words[2] if len(words) == 3 and words[1].upper() == "AS" else None


# The shape of the image ----------------------------------------------------------------------


def test_a_builder_stage_and_a_slim_final_stage_that_copies_the_venv_only() -> None:
    stages = _stages()
    assert len(stages) >= 2
    builder = _stage_name(stages[0])
    assert builder is not None, "the builder stage needs a name (FROM ... AS builder)"
    assert any("pip wheel" in run for run in _all(stages[0], "RUN"))
    final = _final()
    assert final[0].args.split()[0] == "python:3.11-slim"
    copies = _all(final, "COPY")
    assert copies and all(c.startswith(f"--from={builder} ") for c in copies), copies
    assert not any("pip" in run for run in _all(final, "RUN")), "install in the builder stage"


def test_the_final_stage_runs_as_a_non_root_user() -> None:
    users = _all(_final(), "USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0", ""}
    assert user == "1000", "numeric, so that Kubernetes' runAsNonRoot can check it"


def test_the_environment_keeps_the_cwd_off_sys_path_and_listens_on_all_interfaces() -> None:
    env = _env(_final())
    assert env["PYTHONSAFEPATH"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["AUTHENTIK_LISTEN__HTTP"] == "0.0.0.0:9000"
    assert env["AUTHENTIK_LISTEN__METRICS"] == "0.0.0.0:9300"
    assert env["TESSERA_DATA_DIR"] == "/data"
    assert _env(_stages()[0]).get("PYTHONSAFEPATH") == "1", "the builder runs setup.py too"


def test_every_setting_the_image_sets_is_a_real_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    # A misspelt name would be ignored silently (extra="ignore"), so read each back by its path.
    for name in list(os.environ):
        if name.startswith(config.ENV_PREFIXES):
            monkeypatch.delenv(name)
    image_env = {k: v for k, v in _env(_final()).items() if k.startswith(config.ENV_PREFIXES)}
    for name, value in image_env.items():
        monkeypatch.setenv(name, value)
    settings = config.Settings()
    for name, value in image_env.items():
        prefix = next(p for p in config.ENV_PREFIXES if name.startswith(p))
        current: Any = settings
        for part in name[len(prefix) :].lower().split("__"):
            assert hasattr(current, part), f"{name}: no such setting"
            current = getattr(current, part)
        assert str(current) == value, name
    assert settings.data_dir == Path("/data")


def test_the_data_volume_belongs_to_the_user() -> None:
    final = _final()
    assert any(
        json.loads(v) == ["/data"] if v.startswith("[") else v == "/data"
        for v in _all(final, "VOLUME")
    )
    runs = " ".join(_all(final, "RUN"))
    assert re.search(r"chown (1000:1000|tessera:tessera) /data", runs)


def test_the_ports_of_every_process_are_exposed() -> None:
    ports = {p.split("/")[0] for args in _all(_final(), "EXPOSE") for p in args.split()}
    assert {"9000", "9300", "9443", "3389", "6636"} <= ports


def test_the_entrypoint_is_tessera_and_the_default_command_is_server() -> None:
    final = _final()
    assert _exec_form(_all(final, "ENTRYPOINT")[-1]) == ["tessera"]
    command = _exec_form(_all(final, "CMD")[-1])
    assert command == ["server"]
    assert cli.parser().parse_args(command).func is cli.cmd_server


def test_the_healthcheck_asks_the_cli_for_the_live_endpoint_of_the_http_listener(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    final = _final()
    checks = _all(final, "HEALTHCHECK")
    assert checks, "the final stage needs a HEALTHCHECK"
    _, sep, command = checks[-1].partition("CMD ")
    assert sep
    assert _exec_form(command) == ["tessera", "healthcheck"]
    listen = _env(final)["AUTHENTIK_LISTEN__HTTP"]
    monkeypatch.setenv("AUTHENTIK_LISTEN__HTTP", listen)
    assert cli.parser().parse_args(["healthcheck"]).url is None
    assert cli._local_health_url() == f"http://127.0.0.1:{listen.rpartition(':')[2]}/-/health/live/"


def test_the_builder_installs_only_what_the_lock_files_pin() -> None:
    """Hash-checked locks for the runtime and the build backend; the wheel adds no dependency."""
    runs = _all(_stages()[0], "RUN")
    installs = [
        command.strip()
        for run in runs
        for command in run.split("&&")
        if re.search(r"pip (install|wheel)", command)
    ]
    assert installs, "the builder installs nothing"
    for command in installs:
        words = command.split()
        if "-r" in words:
            assert "--require-hashes" in words, command
            assert words[words.index("-r") + 1] in {"requirements.lock", "requirements-build.lock"}
        else:
            assert "--no-deps" in words, f"resolves unlocked dependencies: {command}"
        if "wheel" in words:
            assert "--no-build-isolation" in words, f"an unlocked build backend: {command}"
    venv_installs = [c for c in installs if c.startswith("/opt/tessera/bin/python")]
    assert any("requirements.lock" in c.split() for c in venv_installs)
    copies = " ".join(_all(_stages()[0], "COPY")).split()
    assert {"requirements.lock", "requirements-build.lock"} <= set(copies)


# The build context ---------------------------------------------------------------------------


def _pattern(line: str) -> tuple[bool, re.Pattern[str]]:
    """One .dockerignore line as (negated, regex over root-relative paths), Docker's rules."""
    negated = line.startswith("!")
    text = line[1:].strip() if negated else line
    text = text.strip("/")
    regex, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif text[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif text[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            regex, i = regex + text[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(text[i]), i + 1
    return negated, re.compile(regex)


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [_pattern(line) for line in lines if line and not line.startswith("#")]


def _ignored(patterns: list[tuple[bool, re.Pattern[str]]], relative: str) -> bool:
    """Docker's rule: the last matching pattern wins; a folder's match covers its contents."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_leaves_out_local_state_and_keeps_the_sources() -> None:
    patterns = _dockerignore()
    for junk in (
        ".git/HEAD",
        ".venv/bin/python",
        "build/lib/tessera/core/app/__init__.py",
        "data/tessera.sqlite3",
        "data/secret_key",
        "tessera.egg-info/PKG-INFO",
        "core/store/__pycache__/crud.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/content",
        "tests/conftest.py",
    ):
        assert _ignored(patterns, junk), junk
    for needed in (
        "pyproject.toml",
        "requirements.lock",
        "requirements-build.lock",
        "setup.py",
        "README.md",
        "core/app/__init__.py",
        "core/store/migrations/env.py",
        "core/store/migrations/script.py.mako",
        "core/store/migrations/versions/0001_initial_schema.py",
        "core/py.typed",
        "operator/handlers.py",
        "outposts/common/client.py",
    ):
        assert not _ignored(patterns, needed), needed


def _copy_build_context(dest: Path) -> None:
    patterns = _dockerignore()
    for folder, subfolders, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        subfolders[:] = [s for s in subfolders if not _ignored(patterns, (here / s).as_posix())]
        for name in files:
            relative = (here / name).as_posix()
            if not _ignored(patterns, relative):
                (dest / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, dest / relative)


@pytest.mark.slow
def test_the_builder_stage_builds_a_wheel_with_the_migrations(tmp_path: Path) -> None:
    builder_runs = " ".join(_all(_stages()[0], "RUN"))
    assert "mkdir -p operator outposts" in builder_runs
    assert "pip wheel --no-deps --no-build-isolation" in builder_runs
    context, wheels = tmp_path / "context", tmp_path / "wheels"
    context.mkdir()
    _copy_build_context(context)
    for folder in ("operator", "outposts"):  # as the builder stage does
        (context / folder).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(PYTHONSAFEPATH="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--wheel-dir", str(wheels), str(context)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = wheels.glob("tessera-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    missing = [name for name in WHEEL_MUST_CONTAIN if name not in names]
    assert missing == [], f"the wheel lacks {missing}"
    assert re.search(r"^tessera = tessera\.core\.cli:main$", entry_points, re.M), entry_points
    strays = sorted(n for n in names if not n.startswith(("tessera/", f"{dist_info}/")))
    assert strays == [], "everything installs under the one import package `tessera`"
