"""Revision 0014 on a database at 0013, on SQLite and PostgreSQL: the SAML tables appear as
`store.tables` declares them (columns, keys, indexes), with the references the code relies on:
deleting a provider drops its SAML settings and sessions, deleting a key pair or a mapping a
provider names leaves the provider without it. Back to 0013 they are gone, and up again they
return."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest

from tessera.core import config, store
from tessera.core.store import crud

NEW = ("saml_providers", "saml_property_mappings", "saml_sessions")
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
MAPPING = "00000000-0000-4000-8000-0000000000bb"
KEY = "00000000-0000-4000-8000-0000000000cc"
FLOW = "00000000-0000-4000-8000-0000000000dd"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


async def _seed(db: store.Store) -> dict[str, Any]:
    async with db.transaction() as tx:
        user = await crud.insert(
            tx,
            "users",
            {
                "uuid": "00000000-0000-4000-8000-000000000004",
                "username": "saml-user",
                "username_folded": "saml-user",
                "attributes": {},
                "date_joined": CREATED,
            },
        )
        await crud.insert(
            tx,
            "flows",
            {
                "pk": FLOW,
                "slug": "authz",
                "name": "authz",
                "title": "authz",
                "designation": "authorization",
                "created": CREATED,
            },
        )
        await crud.insert(
            tx,
            "certificate_keypairs",
            {
                "pk": KEY,
                "name": "k",
                "certificate_data": "x",
                "fingerprint_sha256": "x",
                "fingerprint_sha1": "x",
                "cert_expiry": CREATED,
                "cert_subject": "x",
                "created": CREATED,
            },
        )
        await crud.insert(
            tx,
            "saml_property_mappings",
            {
                "pk": MAPPING,
                "name": "m",
                "saml_name": "m",
                "expression": "return 1",
                "created": CREATED,
            },
        )
        pks = []
        for name in ("kept", "dropped"):
            base = await crud.insert(
                tx, "providers", {"name": name, "component": "saml", "created": CREATED}
            )
            pks.append(base["pk"])
            await crud.insert(
                tx,
                "saml_providers",
                {
                    "pk": base["pk"],
                    "authorization_flow": FLOW,
                    "acs_url": "https://sp.example.com/acs",
                    "digest_algorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                    "signature_algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                    "default_name_id_policy": UNSPECIFIED,
                    "property_mappings": [MAPPING],
                    "signing_kp": KEY,
                    "name_id_mapping": MAPPING,
                },
            )
            await crud.insert(
                tx,
                "saml_sessions",
                {
                    "session_index": f"_{name}",
                    "provider": base["pk"],
                    "user_pk": user["pk"],
                    "session_digest": "d" * 64,
                    "name_id": "n",
                    "name_id_format": "f",
                    "expires": CREATED,
                },
            )
    return {"kept": pks[0], "dropped": pks[1]}


async def _delete_and_read(db: store.Store, seeded: dict[str, Any]) -> dict[str, Any]:
    async with db.transaction() as tx:
        await crud.delete(tx, "providers", pk=seeded["dropped"])
        await crud.delete(tx, "certificate_keypairs", pk=KEY)
        await crud.delete(tx, "saml_property_mappings", pk=MAPPING)
    async with db.read() as tx:
        rows = await crud.all_rows(tx, "saml_providers")
        sessions = [r["provider"] for r in await crud.all_rows(tx, "saml_sessions")]
        defaults = rows[0]
    return {
        "providers": [r["pk"] for r in rows],
        "sessions": sessions,
        "signing_kp": defaults["signing_kp"],
        "name_id_mapping": defaults["name_id_mapping"],
        "sign_assertion": defaults["sign_assertion"],
        "sp_binding": defaults["sp_binding"],
        "not_before": defaults["assertion_valid_not_before"],
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0013(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0014_creates_the_saml_tables_as_declared(settings_0013: config.Settings) -> None:
    async def exercise(db: store.Store) -> tuple[Any, Any]:
        seeded = await _seed(db)
        return seeded, await _delete_and_read(db, seeded)

    outcome = await migrationkit.new_tables(settings_0013, "0013", "0014", NEW, exercise)
    before, differences, gone, again = (
        outcome["before"],
        outcome["differences"],
        outcome["gone"],
        outcome["again"],
    )
    seeded, after = outcome["after"]
    assert before == set()
    assert differences == []
    assert after == {
        "providers": [seeded["kept"]],
        "sessions": [seeded["kept"]],
        "signing_kp": None,
        "name_id_mapping": None,
        "sign_assertion": True,
        "sp_binding": "redirect",
        "not_before": "minutes=-5",
    }
    assert gone == set()
    assert again == set(NEW)
