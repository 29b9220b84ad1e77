"""The LDAP provider's tests run on PostgreSQL (the production store, and the one whose journal
triggers are deferred to the commit); the journal and directory tests also run on SQLite
(`test_ldap_directory` widens `backend` again)."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend() -> str:
    return "postgresql"
