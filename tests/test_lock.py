"""The lock files: every dependency pinned with hashes, in step with pyproject.toml and the venv.

`make lock` writes three files with uv (see the Makefile): `requirements-dev.lock` (everything
`make run` and `make test` install), `requirements.lock` (the runtime, for the image) and
`requirements-build.lock` (the build backend, for the image). A dependency added to
pyproject.toml and not locked, or locked and no longer declared, fails here, as does a range that
no longer admits its pin or a venv that was not installed from the lock.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DEV_EXTRAS = ("test", "dev")
_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+?)(?:\s*;\s*(?P<marker>.+?))?\s*\\?$"
)
_HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}\s*\\?$")
_VIA = re.compile(r"^\s+#\s+(?:via\s+)?(?P<source>\S.*)$")


@dataclass
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: int = 0
    via: list[str] = field(default_factory=list)

    @property
    def declared(self) -> bool:
        """Required by pyproject.toml itself, not only by another dependency."""
        return "tessera (pyproject.toml)" in self.via

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def _read_lock(name: str) -> dict[str, Pin]:
    """A `uv pip compile` output: pins, each followed by its hashes and `# via` lines."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for line in (ROOT / f"{name}.lock").read_text().splitlines():
        if pin := _PIN.match(line):
            marker = Marker(pin["marker"]) if pin["marker"] else None
            current = Pin(canonicalize_name(pin["name"]), Version(pin["version"]), marker)
            assert current.name not in pins, f"{name}: {current.name} is pinned twice"
            pins[current.name] = current
        elif _HASH.match(line):
            assert current is not None, f"{name}: a hash before any pin"
            current.hashes += 1
        elif (via := _VIA.match(line)) and current is not None:
            current.via.append(via["source"].strip())
        else:
            assert not line.strip() or line.startswith("#"), f"{name}: unexpected line {line!r}"
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(text) for text in texts]


LOCKS = {n: _read_lock(n) for n in ("requirements-dev", "requirements", "requirements-build")}
DEV, RUNTIME, BUILD = LOCKS.values()


def _check_declared_and_locked(requirements: list[Requirement], pins: dict[str, Pin]) -> None:
    names = {canonicalize_name(r.name) for r in requirements}
    not_locked = sorted(names - pins.keys())
    assert not_locked == [], f"declared in pyproject.toml, missing from the lock: {not_locked}"
    undeclared = sorted(n for n, pin in pins.items() if pin.declared and n not in names)
    assert undeclared == [], f"locked as a direct dependency, not in pyproject.toml: {undeclared}"
    outside = [
        f"{r.name}{r.specifier} locks {pins[canonicalize_name(r.name)].version}"
        for r in requirements
        if not r.specifier.contains(pins[canonicalize_name(r.name)].version, prereleases=True)
    ]
    assert outside == [], f"pyproject.toml's range no longer admits the locked version: {outside}"


def test_every_dependency_of_pyproject_is_in_the_dev_lock_within_its_range() -> None:
    _check_declared_and_locked(_declared(*DEV_EXTRAS), DEV)


def test_the_runtime_lock_holds_the_runtime_dependencies_at_the_dev_lock_versions() -> None:
    _check_declared_and_locked(_declared(), RUNTIME)
    differ = {
        n: (p.version, DEV[n].version) for n, p in RUNTIME.items() if DEV[n].version != p.version
    }
    assert differ == {}, f"the image would run other versions than the tests: {differ}"
    test_only = {"pytest", "mypy", "ruff", "playwright", "uv"} & RUNTIME.keys()
    assert test_only == set(), f"test and dev tools do not belong in the image: {test_only}"


def test_the_build_lock_holds_the_build_backend_at_the_dev_lock_version() -> None:
    requires = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    _check_declared_and_locked(requires, BUILD)
    for name, pin in BUILD.items():
        assert DEV[name].version == pin.version, f"{name}: the image builds with another version"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_hashes(lock: str) -> None:
    pins = LOCKS[lock]
    assert pins, f"{lock}.lock pins nothing"
    unhashed = sorted(name for name, pin in pins.items() if pin.hashes == 0)
    assert unhashed == [], f"{lock}.lock: pins without a hash: {unhashed}"


def test_this_venv_holds_exactly_the_dev_lock_versions() -> None:
    """`make test` installs from the lock: nothing newer or older crept in.

    Under `make test-latest` the venv holds the newest versions on purpose: the drift is listed.
    """
    wrong = {}
    for name, pin in DEV.items():
        if not pin.applies():
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = (str(pin.version), None)
            continue
        if installed != pin.version:
            wrong[name] = (str(pin.version), str(installed))
    if os.environ.get("TESSERA_TEST_DEPS") == "latest":
        drift = ", ".join(f"{n} {locked} -> {now}" for n, (locked, now) in sorted(wrong.items()))
        pytest.skip(f"make test-latest: newer than the lock: {drift or 'nothing'}")
    assert wrong == {}, f"locked against installed: {wrong}"


def test_sqlalchemy_range_admits_one_minor_version_only() -> None:
    """core/store/sqlite.py reads SQLAlchemy's compiler internals, which move between minors."""
    (sqlalchemy,) = (r for r in _declared() if canonicalize_name(r.name) == "sqlalchemy")
    locked = DEV["sqlalchemy"].version
    assert sqlalchemy.specifier.contains(locked)
    next_minor = Version(f"{locked.major}.{locked.minor + 1}.0")
    assert not sqlalchemy.specifier.contains(next_minor, prereleases=True), sqlalchemy
    assert not sqlalchemy.specifier.contains(Version(f"{locked.major + 1}.0.0"), prereleases=True)
