"""The in-process LDAP server of the protocol and fuzz tests: one per test process (Twisted's
reactor is installed once per process), 2,100 users (enough for paging over 2,000)."""

from __future__ import annotations

import pytest
from ldapkit import LDAPThread, records


@pytest.fixture(scope="session")
def ldap_server() -> LDAPThread:
    return LDAPThread(records(2100)).start()
