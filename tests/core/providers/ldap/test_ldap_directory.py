"""`GET directory/` (whole, and `?since=` a generation: only what the change journal names) and
`POST search/` (direct mode: a searcher without "search full directory" sees only themselves and
their groups; with it, the filter narrows what is read), on SQLite and PostgreSQL: the journal
is written by triggers on both."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from authentik_client.models import LDAPProvider
from ldapcorekit import Served, serve, user_with_password

from tessera.core import store
from tessera.core.providers.ldap import directory
from tessera.core.store import crud

BASE = "dc=directory,dc=example,dc=com"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def world(api: Any) -> dict[str, Any]:
    """alice in staff (a child of everyone), bob in nothing; the provider, served."""
    served = await serve(api, "directory")
    alice = await user_with_password(api, "alice", email="alice@example.com", name="Alice A")
    bob = await user_with_password(api, "bob", email="bob@example.com")
    status, everyone = await api("POST", "core/groups/", json={"name": "everyone"})
    status, staff = await api(
        "POST",
        "core/groups/",
        json={"name": "staff", "parents": [everyone["pk"]], "attributes": {"room": "3"}},
    )
    await api("POST", f"core/groups/{staff['pk']}/add_user/", json={"pk": alice["pk"]})
    return {"served": served, "alice": alice, "bob": bob, "staff": staff, "everyone": everyone}


async def _directory(served: Served, since: int | None = None) -> dict[str, Any]:
    params = {"since": str(since)} if since is not None else None
    status, body = await served.call("GET", "directory", params=params)
    assert status == 200, body
    return dict(body)


async def test_the_whole_directory_and_what_changed_since(world: dict[str, Any], api: Any) -> None:
    served, alice, bob, staff = world["served"], world["alice"], world["bob"], world["staff"]
    whole = await _directory(served)
    names = {u["username"] for u in whole["users"]}
    assert {"akadmin", "alice", "bob"} <= names
    assert not any(n.startswith("ak-outpost-") for n in names)  # service accounts are not in it
    by_name = {g["name"]: g for g in whole["groups"]}
    assert by_name["staff"]["users"] == [alice["pk"]]
    assert by_name["staff"]["parents"] == [world["everyone"]["pk"]]
    assert by_name["staff"]["attributes"] == {"room": "3"}
    generation = whole["generation"]
    assert generation > 0 and whole["partial"] is False
    # A bind writes last_login and a session: no change to the directory.
    await served.bound("alice")
    assert (await _directory(served, generation)) == {
        "generation": generation,
        "partial": True,
        "users": [],
        "groups": [],
        "deleted_users": [],
        "deleted_groups": [],
    }
    await api("PATCH", f"core/users/{bob['pk']}/", json={"name": "Bob B"})
    changed = await _directory(served, generation)
    assert changed["partial"] is True and changed["generation"] > generation
    assert [u["name"] for u in changed["users"]] == ["Bob B"] and changed["groups"] == []
    generation = changed["generation"]
    await api("POST", f"core/groups/{staff['pk']}/add_user/", json={"pk": bob["pk"]})
    changed = await _directory(served, generation)
    # (a membership write may rewrite the group's other rows: those members may come too)
    by_user = {u["username"]: u for u in changed["users"]}
    assert "bob" in by_user and by_user["bob"]["groups"] == [staff["pk"]]
    assert [g["name"] for g in changed["groups"]] == ["staff"]
    assert sorted(changed["groups"][0]["users"]) == sorted([alice["pk"], bob["pk"]])
    generation = changed["generation"]
    await api("PATCH", f"core/groups/{world['everyone']['pk']}/", json={"is_superuser": True})
    changed = await _directory(served, generation)
    assert [g["name"] for g in changed["groups"]] == ["everyone"]
    # Members of the groups below a changed group come too: their superuser flag follows it.
    assert {u["username"]: u["is_superuser"] for u in changed["users"]} == {
        "alice": True,
        "bob": True,
    }
    generation = changed["generation"]
    await api("DELETE", f"core/users/{bob['pk']}/")
    await api("DELETE", f"core/groups/{staff['pk']}/")
    changed = await _directory(served, generation)
    assert changed["deleted_users"] == [bob["pk"]]
    assert changed["deleted_groups"] == [staff["pk"]]
    ahead = await _directory(served, changed["generation"] + 100)
    assert ahead["partial"] is False  # a generation the core never had: everything


async def test_an_old_generation_gets_everything(
    world: dict[str, Any], api: Any, bootstrapped: store.Store
) -> None:
    served = world["served"]
    first = (await _directory(served))["generation"]
    await api("PATCH", f"core/users/{world['bob']['pk']}/", json={"name": "Later"})
    async with bootstrapped.transaction() as tx:
        pruned = await directory.prune(tx, dt.datetime.now(dt.UTC) + dt.timedelta(days=3))
        assert pruned > 0
        left = await crud.all_rows(tx, "directory_changes")
    assert len(left) == 1  # the newest row stays: it is the generation
    answer = await _directory(served, first - 1)
    assert answer["partial"] is False and len(answer["users"]) >= 3


async def test_a_searcher_without_the_permission_sees_only_self_and_own_groups(
    world: dict[str, Any],
) -> None:
    served = world["served"]
    session = (await served.bound("alice"))["session_id"]
    status, seen = await served.call(
        "POST", "search", {"session_id": session, "filter": "(objectClass=*)"}
    )
    assert status == 200, seen
    assert [u["username"] for u in seen["users"]] == ["alice"]
    assert sorted(g["name"] for g in seen["groups"]) == ["everyone", "staff"]
    assert all(g["users"] in ([], [world["alice"]["pk"]]) for g in seen["groups"])
    session = (await served.bound("bob"))["session_id"]
    status, seen = await served.call(
        "POST", "search", {"session_id": session, "filter": "(uid=alice)"}
    )
    assert [u["username"] for u in seen["users"]] == ["bob"] and seen["groups"] == []


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_a_searcher_with_the_permission_gets_what_the_filter_can_match(
    world: dict[str, Any], api: Any
) -> None:
    served, alice = world["served"], world["alice"]
    await api("PUT", f"providers/ldap/{served.pk}/search_access/", json={"users": [alice["pk"]]})
    session = (await served.bound("alice"))["session_id"]

    async def search(text: str, **extra: Any) -> tuple[set[str], set[str]]:
        status, found = await served.call(
            "POST", "search", {"session_id": session, "filter": text, **extra}
        )
        assert status == 200, found
        return {u["username"] for u in found["users"]}, {g["name"] for g in found["groups"]}

    everybody = await search("(objectClass=*)")
    assert {"alice", "bob", "akadmin"} <= everybody[0]
    # Jellyfin, Gitea: one user by name; alice's groups come along for her memberOf.
    assert await search("(&(objectClass=inetOrgPerson)(uid=ALICE))") == (
        {"alice"},
        {"staff", "everyone"},
    )
    # (staff has custom attributes, which may override mail: it and its members come along)
    mailed = await search("(|(mail=bob@example.com)(cn=nobody))")
    assert "bob" in mailed[0] and "akadmin" not in mailed[0]
    # Nextcloud, SSSD: a group's members, and the groups a user is in.
    members = f"(memberOf=cn=staff,ou=groups,{BASE})"
    assert (await search(f"(&(objectClass=user){members})"))[0] == {"alice"}
    assert (await search(f"(member=cn=alice,ou=users,{BASE})"))[1] >= {"staff"}
    assert (await search("(&(objectClass=posixGroup)(cn=staff))"))[1] >= {"staff"}
    # A group by number: any group may match, so every member of every group comes along.
    by_number = await search("(&(objectClass=posixGroup)(gidNumber=4001))", want_users=False)
    assert {"staff", "everyone"} <= by_number[1] and "alice" in by_number[0]
    assert await search(f"(entryUUID={alice['uuid']})") == ({"alice"}, {"staff", "everyone"})
    assert (await search("(!(uid=alice))"))[0] >= {"alice", "bob"}  # not narrowed: a superset
    assert await search("(uid=alice)", want_users=False, want_groups=False) == (set(), set())
    status, answer = await served.call(
        "POST", "search", {"session_id": session, "filter": "(uid=alice"}
    )
    assert status == 400 and "filter" in answer
    status, answer = await served.call(
        "POST", "search", {"session_id": session, "filter": "(" * 40 + "uid=a" + ")" * 40}
    )
    assert status == 400 and "filter" in answer


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_provider_api_parses_in_authentiks_client(api: Any) -> None:
    served = await serve(api, "client-parse")
    status, page = await api("GET", "providers/ldap/")
    for found in page["results"]:
        LDAPProvider.from_dict(found)
    assert served.pk in {p["pk"] for p in page["results"]}
