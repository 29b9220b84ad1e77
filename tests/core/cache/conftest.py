"""Fixtures of the Cache tests (tests/pgcachekit.py)."""

from pgcachekit import make_pg_cache, pg_cache_settings

__all__ = ["make_pg_cache", "pg_cache_settings"]
