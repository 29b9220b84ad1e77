"""An LDAP source's sync against a real slapd: users and groups created and then updated in
place, a second run changes nothing, nested groups become parent links, malformed entries are
skipped and reported without stopping the rest, objects the source did not create are never
touched, StartTLS with the directory's CA works (and fails without it), a wrong bind password is
a clear error in the status, several servers are tried in order, and `delete_not_found_objects`
deletes only what the source created."""

from __future__ import annotations

from typing import Any

import ldap3
import slapdkit
from ldapsourcekit import LONG_UID, add_person, root_connection, run_sync
from slapdkit import SUFFIX

from tessera.core import store
from tessera.core.crypto import Keyring
from tessera.core.store import crud


async def _users(db: store.Store) -> dict[str, dict[str, Any]]:
    async with db.read() as tx:
        return {r["username"]: r for r in await crud.all_rows(tx, "users")}


async def _groups(db: store.Store) -> dict[str, dict[str, Any]]:
    async with db.read() as tx:
        return {r["name"]: r for r in await crud.all_rows(tx, "groups")}


async def _members(db: store.Store, group_pk: str) -> set[str]:
    async with db.read() as tx:
        pks = (await crud.users_of_groups(tx, [group_pk]))[group_pk]
        return {r["username"] for r in await crud.find_many(tx, "users", "pk", pks)}


async def _parents(db: store.Store, group_pk: str) -> list[str]:
    async with db.read() as tx:
        return (await crud.group_links(tx, "group_pk", [group_pk]))[group_pk]


async def test_first_sync_creates_users_groups_and_nesting(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    before = await _users(bootstrapped)
    await make_source()
    status = await run_sync(api, "corp")
    last = status["last_sync"]
    assert status["is_running"] is False and status["last_sync_status"] == "warning", status
    assert last["counts"]["users_created"] == 4 and last["counts"]["groups_created"] == 3, last
    found = await _users(bootstrapped)
    alice = found["alice"]
    assert alice["email"] == "alice@example.org" and alice["name"] == "Alice Example"
    assert alice["path"] == "goauthentik.io/sources/corp/people"
    assert alice["attributes"]["distinguishedName"] == f"uid=alice,ou=people,{SUFFIX}"
    assert alice["password"] == ""  # no local password: logins go to the directory
    groups = await _groups(bootstrapped)
    assert await _members(bootstrapped, groups["engineers"]["pk"]) == {"alice"}
    assert await _members(bootstrapped, groups["backend"]["pk"]) == {"bob"}
    assert await _members(bootstrapped, groups["admins"]["pk"]) == {"carol"}
    assert await _parents(bootstrapped, groups["backend"]["pk"]) == [groups["engineers"]["pk"]]
    # The local admin and the local admins' group are not the directory's to change.
    assert found["akadmin"] == before["akadmin"]
    assert await _members(bootstrapped, groups["authentik Admins"]["pk"]) == {"akadmin"}
    messages = "\n".join(last["messages"])
    assert "cn=No Uid" in messages and "username" in messages
    assert LONG_UID in messages
    assert "'akadmin' belongs to a user this source did not create" in messages
    assert "'authentik Admins' belongs to a group this source did not create" in messages
    assert last["counts"]["skipped"] == 4


async def test_second_sync_changes_nothing(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source()
    await run_sync(api, "corp")
    users_before, groups_before = await _users(bootstrapped), await _groups(bootstrapped)
    again = (await run_sync(api, "corp"))["last_sync"]["counts"]
    assert again["users_created"] == again["users_updated"] == 0, again
    assert again["groups_created"] == again["groups_updated"] == 0, again
    assert again["memberships_added"] == again["memberships_removed"] == 0, again
    assert again["users_unchanged"] == 4 and again["groups_unchanged"] == 3
    assert await _users(bootstrapped) == users_before
    assert await _groups(bootstrapped) == groups_before


async def test_changes_in_the_directory_update_in_place_and_local_links_stay(
    api: Any,
    make_source: Any,
    make_user: Any,
    bootstrapped: store.Store,
    slapd: Any,
    scratch_ou: str,
) -> None:
    dn = add_person(slapd, scratch_ou, "hana", "hana-pw-1")
    await make_source(additional_user_dn=f"ou={scratch_ou}", sync_groups=False)
    await run_sync(api, "corp")
    hana = (await _users(bootstrapped))["hana"]
    local = await make_user("local-only")
    status, group = await api("POST", "core/groups/", json={"name": "local-team"})
    assert status == 201
    await api("PATCH", f"core/users/{hana['pk']}/", json={"groups": [group["pk"]]})
    connection = root_connection(slapd)
    connection.modify(dn, {"mail": [(ldap3.MODIFY_REPLACE, ["hana@new.example.org"])]})
    connection.unbind()
    counts = (await run_sync(api, "corp"))["last_sync"]["counts"]
    assert counts["users_updated"] == 1 and counts["users_created"] == 0, counts
    after = (await _users(bootstrapped))["hana"]
    assert after["pk"] == hana["pk"] and after["email"] == "hana@new.example.org"
    assert await _members(bootstrapped, group["pk"]) == {"hana"}  # a local group's link stays
    assert (await _users(bootstrapped))["local-only"]["pk"] == local["pk"]


async def test_a_local_user_added_to_a_synced_group_stays(
    api: Any, make_source: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_source()
    await run_sync(api, "corp")
    groups = await _groups(bootstrapped)
    local = await make_user("contractor")
    engineers = groups["engineers"]["pk"]
    status, _ = await api(
        "PATCH",
        f"core/groups/{engineers}/",
        json={
            "users": [
                local["pk"],
                *[
                    u["pk"]
                    for u in (await _users(bootstrapped)).values()
                    if u["username"] == "alice"
                ],
            ]
        },
    )
    assert status == 200
    await run_sync(api, "corp")
    assert await _members(bootstrapped, engineers) == {"alice", "contractor"}


async def test_memberuid_groups_match_users_by_uid(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source(
        additional_group_dn="ou=posix",
        group_object_filter="(objectClass=posixGroup)",
        group_membership_field="memberUid",
        user_membership_attribute="uid",
    )
    await run_sync(api, "corp")
    devs = (await _groups(bootstrapped))["devs"]
    assert await _members(bootstrapped, devs["pk"]) == {"alice", "dave"}


async def test_sync_parent_group_holds_the_top_synced_groups(
    api: Any, make_source: Any, make_group: Any, bootstrapped: store.Store
) -> None:
    parent = await make_group("directory")
    await make_source(sync_parent_group=parent["pk"])
    await run_sync(api, "corp")
    groups = await _groups(bootstrapped)
    assert await _parents(bootstrapped, groups["engineers"]["pk"]) == [parent["pk"]]
    assert await _parents(bootstrapped, groups["backend"]["pk"]) == [groups["engineers"]["pk"]]


async def test_a_failing_mapping_skips_only_its_entry(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    expression = (
        'if list_flatten(ldap.get("uid")) == "bob":\n    return 1 / 0\n'
        'return {"attributes": {"initial": list_flatten(ldap.get("uid"))[:1]}}'
    )
    status, mapping = await api(
        "POST", "propertymappings/source/ldap/", json={"name": "initial", "expression": expression}
    )
    assert status == 201, mapping
    source = await make_source(sync_groups=False)
    mappings = [*source["user_property_mappings"], mapping["pk"]]
    await api("PATCH", "sources/ldap/corp/", json={"user_property_mappings": mappings})
    last = (await run_sync(api, "corp"))["last_sync"]
    found = await _users(bootstrapped)
    assert "bob" not in found and found["alice"]["attributes"]["initial"] == "a"
    assert any("bob" in m and "initial" in m for m in last["messages"]), last["messages"]


async def test_starttls_with_the_directorys_ca(
    api: Any, make_source: Any, ca_keypair: Any, bootstrapped: store.Store, slapd: Any
) -> None:
    ca = await ca_keypair()
    await make_source(start_tls=True, peer_certificate=ca, sync_groups=False)
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "warning" and status["last_successful_sync"], status
    assert "alice" in await _users(bootstrapped)


async def test_starttls_without_the_ca_fails_clearly(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source(start_tls=True, sync_groups=False)
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "error" and status["last_successful_sync"] is None
    message = status["last_sync"]["messages"][0]
    assert message.startswith("no LDAP server could be used") and "certificate" in message.lower()
    assert "alice" not in await _users(bootstrapped)


async def test_a_wrong_bind_password_is_a_clear_error(
    api: Any, make_source: Any, bootstrapped: store.Store, slapd: Any
) -> None:
    await make_source(bind_password="not-the-password")
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "error", status
    message = status["last_sync"]["messages"][0]
    assert f"bind as '{slapd.root_dn}' refused" in message and "invalidCredentials" in message
    assert "not-the-password" not in str(status)
    assert "alice" not in await _users(bootstrapped)


async def test_servers_are_tried_in_order(
    api: Any, make_source: Any, bootstrapped: store.Store, slapd: slapdkit.Slapd
) -> None:
    from helpers import free_port

    dead = f"ldap://127.0.0.1:{free_port()}"
    await make_source(server_uri=f"{dead}, {slapd.url}", sync_groups=False)
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "warning", status
    assert "alice" in await _users(bootstrapped)


async def test_delete_not_found_objects_deletes_only_what_the_source_made(
    api: Any,
    make_source: Any,
    make_user: Any,
    bootstrapped: store.Store,
    slapd: Any,
    scratch_ou: str,
) -> None:
    dn = add_person(slapd, scratch_ou, "ivan", "ivan-pw-1")
    add_person(slapd, scratch_ou, "jane", "jane-pw-1")
    await make_source(
        additional_user_dn=f"ou={scratch_ou}", sync_groups=False, delete_not_found_objects=True
    )
    await make_user("kept-local")
    await run_sync(api, "corp")
    assert {"ivan", "jane"} <= set(await _users(bootstrapped))
    connection = root_connection(slapd)
    assert connection.delete(dn), connection.result
    connection.unbind()
    counts = (await run_sync(api, "corp"))["last_sync"]["counts"]
    found = await _users(bootstrapped)
    assert counts["deleted"] == 1 and "ivan" not in found
    assert {"jane", "kept-local", "akadmin"} <= set(found)


async def test_a_bind_password_sealed_under_another_key_is_a_clear_error(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source()
    async with bootstrapped.transaction() as tx:
        row = await crud.get(tx, "ldap_sources", slug="corp")
        other = Keyring("another-secret-key-" + "y" * 40).seal("x", f"ldap_sources:{row['pk']}")
        await crud.update(tx, "ldap_sources", {"pk": row["pk"]}, {"bind_password_sealed": other})
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "error", status
    assert "cannot be unsealed" in status["last_sync"]["messages"][0]
    assert "alice" not in await _users(bootstrapped)


async def test_a_bind_dn_without_a_password_never_binds_anonymously(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source(bind_password="")
    status = await run_sync(api, "corp")
    assert status["last_sync_status"] == "error", status
    assert "a bind DN needs a password" in status["last_sync"]["messages"][0]


async def test_groups_can_be_looked_up_from_the_users(
    api: Any, make_source: Any, bootstrapped: store.Store, slapd: Any, scratch_ou: str
) -> None:
    # As Active Directory's memberOf: the user names its groups (seeAlso holds DNs here).
    add_person(
        slapd,
        scratch_ou,
        "mia",
        "mia-pw-1",
        seeAlso=[f"cn=engineers,ou=groups,{SUFFIX}", f"cn=admins,ou=groups,{SUFFIX}"],
    )
    await make_source(
        additional_user_dn=f"ou={scratch_ou}",
        lookup_groups_from_user=True,
        group_membership_field="seeAlso",
    )
    await run_sync(api, "corp")
    groups = await _groups(bootstrapped)
    assert await _members(bootstrapped, groups["engineers"]["pk"]) == {"mia"}
    assert await _members(bootstrapped, groups["admins"]["pk"]) == {"mia"}
    assert await _members(bootstrapped, groups["backend"]["pk"]) == set()


async def test_a_malformed_group_is_skipped_and_the_rest_synced(
    api: Any, make_source: Any, bootstrapped: store.Store, slapd: Any, scratch_ou: str
) -> None:
    connection = root_connection(slapd)
    long_name = "g" * 81  # longer than a group name may be
    for cn in (long_name, "fine"):
        dn = f"cn={cn},ou={scratch_ou},{SUFFIX}"
        member = f"uid=alice,ou=people,{SUFFIX}"
        assert connection.add(dn, ["groupOfNames"], {"cn": cn, "member": member})
    connection.unbind()
    await make_source(additional_group_dn=f"ou={scratch_ou}")
    last = (await run_sync(api, "corp"))["last_sync"]
    groups = await _groups(bootstrapped)
    assert long_name not in groups and await _members(bootstrapped, groups["fine"]["pk"]) == {
        "alice"
    }
    assert any(long_name in m and "name" in m for m in last["messages"]), last["messages"]
