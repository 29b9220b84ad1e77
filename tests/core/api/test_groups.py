"""`/api/v3/core/groups/`: nesting, superuser inheritance, membership actions, cycles."""

from __future__ import annotations

from typing import Any

API = Any


async def test_nested_groups_and_superuser_inheritance(
    api: API, make_user: Any, make_group: Any
) -> None:
    admins = await make_group("admins", is_superuser=True)
    ops = await make_group("ops", parent=admins["pk"])
    user = await make_user("ivy", groups=[ops["pk"]])
    assert user["is_superuser"] is True
    status, body = await api("GET", f"core/groups/{ops['pk']}/")
    assert status == 200 and body["parent"] == admins["pk"] and body["parent_name"] == "admins"
    assert body["users"] == [user["pk"]]
    status, body = await api("GET", f"core/groups/?parent={admins['pk']}")
    assert [g["name"] for g in body["results"]] == ["ops"]


async def test_cycle_in_parents_is_refused(api: API, make_group: Any) -> None:
    a = await make_group("a")
    b = await make_group("b", parent=a["pk"])
    c = await make_group("c", parent=b["pk"])
    status, body = await api("PATCH", f"core/groups/{a['pk']}/", json={"parent": c["pk"]})
    assert status == 400 and "parent" in body
    status, body = await api("PATCH", f"core/groups/{a['pk']}/", json={"parent": a["pk"]})
    assert status == 400 and "parent" in body
    status, body = await api("GET", f"core/groups/{a['pk']}/")
    assert body["parent"] is None


async def test_dangling_parent_and_users_are_400(api: API) -> None:
    missing = "00000000-0000-4000-8000-000000000001"
    status, body = await api("POST", "core/groups/", json={"name": "x", "parent": missing})
    assert status == 400 and "parent" in body
    status, body = await api("POST", "core/groups/", json={"name": "x", "users": [999999]})
    assert status == 400 and "users" in body
    status, body = await api("POST", "core/groups/", json={"name": "x", "parent": "not-a-uuid"})
    assert status == 400 and "parent" in body


async def test_duplicate_name_is_400(api: API, make_group: Any) -> None:
    await make_group("dup")
    status, body = await api("POST", "core/groups/", json={"name": "dup"})
    assert status == 400 and "name" in body


async def test_add_and_remove_user(api: API, make_user: Any, make_group: Any) -> None:
    group = await make_group("team")
    user = await make_user("jack")
    status, _ = await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": user["pk"]})
    assert status == 204
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["groups"] == [group["pk"]]
    status, body = await api("GET", "core/groups/?members_by_username=jack")
    assert [g["name"] for g in body["results"]] == ["team"]
    status, _ = await api(
        "POST", f"core/groups/{group['pk']}/remove_user/", json={"pk": user["pk"]}
    )
    assert status == 204
    status, body = await api("GET", f"core/users/{user['pk']}/")
    assert body["groups"] == []
    status, body = await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": 424242})
    assert status == 400 and "pk" in body


async def test_deleting_parent_detaches_children(api: API, make_group: Any) -> None:
    parent = await make_group("parent")
    child = await make_group("child", parent=parent["pk"])
    status, _ = await api("DELETE", f"core/groups/{parent['pk']}/")
    assert status == 204
    status, body = await api("GET", f"core/groups/{child['pk']}/")
    assert status == 200 and body["parent"] is None
