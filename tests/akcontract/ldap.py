"""Contract case for `providers/ldap` (the outposts' `outposts/ldap/` listing is checked by the
LDAP provider's own tests, with an outpost's token)."""

from __future__ import annotations

from typing import Any

from akcontract import Case, Setup
from akcontract.apps import _pem_pair


async def _ldap_provider(setup: Setup) -> dict[str, Any]:
    bind = await setup.first("flows/instances", slug="default-authentication-flow")
    unbind = await setup.first("flows/instances", slug="default-invalidation-flow")
    certificate, key = _pem_pair(f"ldap-{setup.suffix}")
    tls = await setup.make(
        "crypto/certificatekeypairs",
        {"name": f"ldap-{setup.suffix}", "certificate_data": certificate, "key_data": key},
    )
    return {
        "name": f"gitea-{setup.suffix}",
        "authorization_flow": bind["pk"],
        "invalidation_flow": unbind["pk"],
        "base_dn": f"dc=gitea-{setup.suffix},dc=example,dc=com",
        "certificate": tls["pk"],
        "tls_server_name": f"ldap-{setup.suffix}.example.com",
        "uid_start_number": 3000,
        "gid_start_number": 5000,
        "search_mode": "cached",
        "bind_mode": "cached",
        "mfa_support": False,
    }


CASES = [
    Case(
        "providers/ldap",
        _ldap_provider,
        change={"search_mode": "direct", "mfa_support": True},
        patch={"tls_server_name": "ldap.example.org"},
    ),
]
