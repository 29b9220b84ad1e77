"""The views expressions get of users, groups and requests (authentik's model API, read-only)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tessera.core.policies import sandbox, views

STAFF = {"name": "Staff", "pk": "g1", "attributes": {"a": 1, "b": 1}}
ROOT = {"name": "Root", "pk": "g0", "is_superuser": True, "attributes": {"a": 0}}


def make_user(**fields: Any) -> views.UserView:
    row = {"pk": 3, "username": "carol", "email": "c@example.com", "type": "external", **fields}
    return views.UserView(row, [STAFF], [STAFF, ROOT])


def evaluate(source: str, user: views.UserView) -> Any:
    hooks = sandbox.Hooks(is_group_member=views.is_group_member)
    return sandbox.compile(source).run(views.policy_variables(user), hooks=hooks).value


def test_user_fields() -> None:
    user = make_user(attributes={"x": 1})
    source = "u = request.user\nreturn u.pk, u.username, u.email, u.name, u.is_active, u.type"
    assert evaluate(source, user) == (3, "carol", "c@example.com", "", True, "external")
    assert evaluate("return user.attributes, user.is_authenticated", user) == ({"x": 1}, True)


def test_direct_and_inherited_groups() -> None:
    user = make_user()
    assert evaluate("return [g.name for g in user.groups.all()]", user) == ["Staff"]
    assert evaluate("return [g.name for g in user.all_groups()]", user) == ["Staff", "Root"]
    assert evaluate('return ak_is_group_member(user, name="Root")', user) is True
    assert evaluate("return user.is_superuser", user) is True


def test_group_set_lookups() -> None:
    user = make_user()
    source = """
groups = user.all_groups()
return (groups.filter(name__iexact="staff").count(), groups.filter(name__in=["Root"]).first().pk,
        groups.exclude(is_superuser=True).values_list("name", flat=True),
        groups.filter(name__startswith="R", is_superuser=True).exists(), len(groups))
"""
    assert evaluate(source, user) == (1, "g0", ["Staff"], True, 2)


def test_unknown_lookups_fail_the_expression() -> None:
    with pytest.raises(sandbox.ExpressionError, match="cannot be filtered by 'password'"):
        evaluate('return user.groups.filter(password="x").exists()', make_user())
    with pytest.raises(sandbox.ExpressionError, match="unsupported lookup"):
        evaluate('return user.groups.filter(name__regex=".*").exists()', make_user())


def test_group_attributes_merge_groups_then_user() -> None:
    user = make_user(attributes={"b": 2})
    assert evaluate("return user.group_attributes()", user) == {"a": 1, "b": 2}


def test_anonymous_user() -> None:
    anonymous = views.UserView.anonymous()
    source = 'return user.is_authenticated, user.username, ak_is_group_member(user, name="Staff")'
    assert evaluate(source, anonymous) == (False, "AnonymousUser", False)


def test_policy_variables() -> None:
    http = views.HttpRequestView("2001:db8::1", method="POST", path="/if/flow/x/")
    variables = views.policy_variables(make_user(), context={"is_sso": True}, http_request=http)
    assert variables["ak_client_ip"] == ipaddress.ip_address("2001:db8::1")
    assert variables["ak_is_sso_flow"] is True
    assert variables["request"].context is variables["context"]
    unknown = views.policy_variables(make_user())
    assert str(unknown["ak_client_ip"]) == "255.255.255.255" and "http_request" not in unknown


def test_only_listed_attributes_are_exposed() -> None:
    for source in ("return user.groups.first().matches", "return request.user.anonymous"):
        with pytest.raises(sandbox.Forbidden):
            evaluate(source, make_user())
