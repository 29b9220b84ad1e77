"""`identity.outposts`: the control channel's check of an outpost's token (`outpost_for_token`),
the service account and token kept whole, and the embedded outpost made once."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from helpers import BOOTSTRAP_TOKEN, SECRET_KEY

from tessera.core import store, wire
from tessera.core.crypto import Keyring
from tessera.core.identity import outposts, tokens
from tessera.core.store import crud

KEYRING = Keyring(SECRET_KEY)


async def _outpost(db: store.Store, name: str) -> tuple[dict[str, Any], str]:
    async with db.transaction() as tx:
        row = await outposts.create(
            tx, KEYRING, name=name, type="proxy", config=outposts.default_config(), providers=[]
        )
        key = await outposts.token_key(tx, KEYRING, row)
    assert key is not None
    return row, key


async def _for(db: store.Store, outpost_uuid: str, key: str) -> dict[str, Any] | None:
    async with db.read() as tx:
        return await outposts.outpost_for_token(tx, KEYRING, outpost_uuid, key)


async def test_the_outposts_own_token_finds_it(bootstrapped: store.Store) -> None:
    row, key = await _outpost(bootstrapped, "edge")
    found = await _for(bootstrapped, str(row["pk"]), key)
    assert found is not None and found["pk"] == row["pk"]
    # Without hyphens, or in capitals, the UUID is the same outpost.
    assert await _for(bootstrapped, uuid.UUID(str(row["pk"])).hex.upper(), key) is not None


async def test_attack_another_outposts_token(bootstrapped: store.Store) -> None:
    a, _ = await _outpost(bootstrapped, "a")
    _, key_b = await _outpost(bootstrapped, "b")
    assert await _for(bootstrapped, str(a["pk"]), key_b) is None


async def test_attack_an_admins_token(bootstrapped: store.Store) -> None:
    row, _ = await _outpost(bootstrapped, "edge")
    assert await _for(bootstrapped, str(row["pk"]), BOOTSTRAP_TOKEN) is None


async def test_attack_another_token_of_the_service_account(bootstrapped: store.Store) -> None:
    row, _ = await _outpost(bootstrapped, "edge")
    async with bootstrapped.transaction() as tx:
        body = wire.core.TokenRequest(identifier="side-door", intent="api", expiring=False)
        _, extra = await tokens.create(tx, KEYRING, body, user_pk=int(row["user_pk"]))
    assert await _for(bootstrapped, str(row["pk"]), extra) is None


async def test_an_expired_or_other_intent_token_is_refused(bootstrapped: store.Store) -> None:
    row, key = await _outpost(bootstrapped, "edge")
    identifier = outposts.token_identifier(str(row["pk"]))
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with bootstrapped.transaction() as tx:
        await crud.update(
            tx, "tokens", {"identifier": identifier}, {"expiring": True, "expires": past}
        )
    assert await _for(bootstrapped, str(row["pk"]), key) is None
    async with bootstrapped.transaction() as tx:
        await crud.update(
            tx, "tokens", {"identifier": identifier}, {"expiring": False, "intent": "app_password"}
        )
    assert await _for(bootstrapped, str(row["pk"]), key) is None


async def test_an_inactive_service_account_is_refused(bootstrapped: store.Store) -> None:
    row, key = await _outpost(bootstrapped, "edge")
    async with bootstrapped.transaction() as tx:
        await crud.update(tx, "users", {"pk": row["user_pk"]}, {"is_active": False})
    assert await _for(bootstrapped, str(row["pk"]), key) is None


@pytest.mark.parametrize(
    ("outpost_uuid", "key"),
    [
        ("not-a-uuid", "x"),
        ("", "x"),
        ("5b0e2d4c-1f0a-4c36-9d8e-6f1f3a7c2b90", "x"),  # a well-formed uuid of no outpost
        ("{pk}", ""),
        ("{pk}", "k" * 513),
        ("{pk}", "\x00"),
    ],
)
async def test_malformed_input_is_none(
    bootstrapped: store.Store, outpost_uuid: str, key: str
) -> None:
    row, _ = await _outpost(bootstrapped, "edge")
    assert await _for(bootstrapped, outpost_uuid.format(pk=row["pk"]), key) is None


async def test_a_missing_account_and_token_are_made_again(bootstrapped: store.Store) -> None:
    row, key = await _outpost(bootstrapped, "edge")
    async with bootstrapped.transaction() as tx:
        await crud.delete(tx, "users", pk=row["user_pk"])  # the token goes with it
    assert await _for(bootstrapped, str(row["pk"]), key) is None
    async with bootstrapped.transaction() as tx:
        current = await crud.get(tx, outposts.TABLE, pk=row["pk"])
        assert current["user_pk"] is None
        repaired = await outposts.ensure_credentials(tx, KEYRING, current)
        new_key = await outposts.token_key(tx, KEYRING, repaired)
    assert new_key is not None and new_key != key
    assert await _for(bootstrapped, str(row["pk"]), new_key) is not None


async def test_a_token_squatting_the_identifier_is_replaced(bootstrapped: store.Store) -> None:
    row, _ = await _outpost(bootstrapped, "edge")
    identifier = outposts.token_identifier(str(row["pk"]))
    async with bootstrapped.transaction() as tx:
        admin = await crud.find(tx, "users", username="akadmin")
        assert admin is not None
        await crud.delete(tx, "tokens", identifier=identifier)
        body = wire.core.TokenRequest(identifier=identifier, intent="api", expiring=False)
        _, squatter = await tokens.create(tx, KEYRING, body, user_pk=admin["pk"], system=True)
        await outposts.ensure_credentials(tx, KEYRING, row)
        key = await outposts.token_key(tx, KEYRING, row)
    assert key is not None and key != squatter
    assert await _for(bootstrapped, str(row["pk"]), squatter) is None
    assert await _for(bootstrapped, str(row["pk"]), key) is not None


async def test_the_embedded_outpost_is_made_once(bootstrapped: store.Store) -> None:
    async with bootstrapped.transaction() as tx:
        first = await outposts.ensure_embedded(tx, KEYRING, "")
    async with bootstrapped.transaction() as tx:
        again = await outposts.ensure_embedded(tx, KEYRING, "https://auth.example.com")
    assert again["pk"] == first["pk"]
    assert again["config"]["authentik_host"] == "https://auth.example.com"  # filled once known
    async with bootstrapped.transaction() as tx:
        kept = await outposts.ensure_embedded(tx, KEYRING, "https://other.example.com")
    assert kept["config"]["authentik_host"] == "https://auth.example.com"
    async with bootstrapped.read() as tx:
        rows = await crud.all_rows(tx, outposts.TABLE)
    assert [r["managed"] for r in rows] == [outposts.EMBEDDED_MANAGED]
    assert rows[0]["name"] == "authentik Embedded Outpost" and rows[0]["type"] == "proxy"
