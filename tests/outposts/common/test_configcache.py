"""The last good configuration on disk: sealed under the token, private, atomic; a file that
does not open is ignored; an unwritable state directory is logged once, never fatal."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from tessera.outposts.common import client, configcache

SECRET = "client-secret-canary-8c1f"


def _snapshot(**provider: object) -> configcache.Snapshot:
    return configcache.Snapshot(
        outpost=client.OutpostInfo(pk="6f7c", name="edge", type="proxy", providers=(1,)),
        providers=({"pk": 1, "name": "wiki", "client_secret": SECRET, **provider},),
        extras={"jwks": {"keys": []}},
        fetched_at=dt.datetime.now(dt.UTC),
    )


def test_round_trip(tmp_path: Path) -> None:
    cache = configcache.ConfigCache(tmp_path / "state", "http://core", "token-1")
    assert cache.load() is None
    saved = _snapshot()
    assert cache.save(saved)
    loaded = cache.load()
    assert loaded is not None and loaded.from_disk and loaded.same_config(saved)
    assert not saved.same_config(_snapshot(name="other"))


def test_sealed_private_and_bound_to_the_token(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cache = configcache.ConfigCache(state, "http://core", "token-1")
    cache.save(_snapshot())
    assert SECRET.encode() not in cache.path.read_bytes()  # a provider's client secret
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    other = configcache.ConfigCache(state, "http://core", "token-2")
    assert other.path != cache.path and other.load() is None
    other.path.write_bytes(cache.path.read_bytes())  # the file moved under another token
    assert other.load() is None


def test_attack_a_tampered_or_truncated_file_is_ignored(tmp_path: Path) -> None:
    cache = configcache.ConfigCache(tmp_path, "http://core", "token-1")
    cache.save(_snapshot())
    blob = bytearray(cache.path.read_bytes())
    blob[-1] ^= 1
    cache.path.write_bytes(bytes(blob))
    assert cache.load() is None
    cache.path.write_bytes(b"short")
    assert cache.load() is None
    cache.path.write_bytes(b"")
    assert cache.load() is None


def test_an_unwritable_state_dir_is_not_fatal(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the state directory should be")  # refused even to root
    cache = configcache.ConfigCache(blocked / "state", "http://core", "token-1")
    assert cache.save(_snapshot()) is False
    assert cache.save(_snapshot()) is False
    assert cache.load() is None
    assert list(tmp_path.iterdir()) == [blocked]
