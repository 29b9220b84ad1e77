"""The expression sandbox runs authentik's expressions unchanged: helpers, syntax, API, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from tessera.core.policies import kinds, sandbox, views

ADMIN = {"name": "Admins", "pk": "g-admins", "is_superuser": False, "attributes": {"level": 2}}


def _user() -> views.UserView:
    row = {"pk": 7, "username": "alice", "email": "alice@example.com", "name": "Alice"}
    return views.UserView({**row, "attributes": {"team": "blue"}}, [ADMIN])


def run(source: str, variables: dict[str, Any] | None = None, **options: Any) -> sandbox.RunResult:
    """Run `source` with a policy's variables (user alice, member of Admins) plus `variables`."""
    context = {"ip": "10.0.0.5", "prompt_data": {"email": "bob@example.com"}}
    http = views.HttpRequestView("192.0.2.10", headers={"X-Forwarded-Proto": "https"})
    names = views.policy_variables(_user(), context=context, http_request=http)
    hooks = options.pop("hooks", sandbox.Hooks(is_group_member=views.is_group_member))
    return sandbox.compile(source).run({**names, **(variables or {})}, hooks=hooks, **options)


def value(source: str, variables: dict[str, Any] | None = None, **options: Any) -> Any:
    return run(source, variables, **options).value


# authentik's examples, unchanged


def test_ak_is_group_member() -> None:
    assert value('return ak_is_group_member(request.user, name="Admins")') is True
    assert value('return ak_is_group_member(request.user, name="Others")') is False


def test_user_groups_filter_exists() -> None:
    assert value('return user.groups.filter(name="Admins").exists()') is True
    assert value('return request.user.ak_groups.filter(name="Nope").exists()') is False


def test_office_hours_with_datetime() -> None:
    result = value("import datetime\nnow = datetime.datetime.now()\nreturn 9 <= now.hour < 17")
    assert result is (9 <= dt.datetime.now().hour < 17)


def test_context_lookup_against_a_variable() -> None:
    source = 'return request.context.get("ip") not in blocked_ips'
    assert value(source, {"blocked_ips": ["10.0.0.9"]}) is True
    assert value(source, {"blocked_ips": ["10.0.0.5"]}) is False


def test_ak_message_collects_messages() -> None:
    result = run('ak_message("x"); return False')
    assert result.value is False and result.messages == ["x"]


def test_regex_helpers() -> None:
    assert value('return regex_match(request.user.email, "@example\\\\.com$")') is True
    assert value('return regex_replace("a-b-c", "-", "+")') == "a+b+c"
    email = 'return regex_match("bob@mail.example.org", r"^[\\w.+-]+@([\\w-]+\\.)+[\\w-]{2,}$")'
    assert value(email) is True


def test_ip_address_in_network() -> None:
    assert value('return ip_address("10.1.2.3") in ip_network("10.0.0.0/8")') is True
    assert value('return ak_client_ip in ip_network("192.0.2.0/24")') is True
    assert value('return ip_address(request.context["ip"]).is_private') is True


def test_scope_mapping_with_a_comprehension() -> None:
    source = 'return {"groups": [group.name for group in request.user.ak_groups.all()]}'
    assert value(source) == {"groups": ["Admins"]}


def test_prompt_data_and_attributes() -> None:
    assert value('return request.context["prompt_data"]["email"].endswith("@example.com")')
    assert value('return user.attributes.get("team", "none") == "blue"') is True


def test_f_strings() -> None:
    source = 'n = 3\nreturn f"{user.username}:{n:>4}|{n!r}|{user.name.upper()}|{2.5:.1f}"'
    assert value(source) == "alice:   3|3|ALICE|2.5"


def test_ak_logger_and_print_go_to_the_log() -> None:
    result = run('ak_logger.info("checked", user=user.username)\nprint("hi", 2)\nreturn True')
    assert [(e.level, e.message, e.attributes) for e in result.log] == [
        ("info", "checked", {"user": "alice"}),
        ("info", "hi 2", {}),
    ]


def test_http_request_view() -> None:
    source = 'return (http_request.client_ip, request.http_request.META["HTTP_X_FORWARDED_PROTO"])'
    assert value(source) == ("192.0.2.10", "https")


def test_hooks_for_user_lookup_and_policy_calls() -> None:
    hooks = sandbox.Hooks(
        user_by=lambda filters: filters.get("username") == "bob",
        call_policy=lambda name, variables: (name, variables),
        extra={"double": lambda x: 2 * x},
    )
    source = 'return ak_user_by(username="bob"), ak_call_policy("p", a=1), double(21)'
    assert value(source, hooks=hooks) == (True, ("p", {"a": 1}), 42)
    assert value('return ak_user_by(type="internal")', hooks=hooks) is False
    with pytest.raises(sandbox.Forbidden, match="ak_user_by is not available"):
        run('return ak_user_by(username="bob")', hooks=sandbox.Hooks())


# the syntax the sandbox supports


def test_assignments_and_unpacking() -> None:
    source = "a, *b, c = range(6)\nx = y = 2\nx += 1\nd = {}\nd['k'] = [1]\nd['k'] += [2]\n"
    assert value(source + "n: int = 4\nreturn a, b, c, x, y, d, n") == (
        0, [1, 2, 3, 4], 5, 3, 2, {"k": [1, 2]}, 4
    )  # fmt: skip


def test_control_flow() -> None:
    source = """
total = 0
for i in range(10):
    if i == 7:
        break
    elif i % 2:
        continue
    total += i
else:
    total = -1
n = 0
while n < 3:
    n += 1
else:
    n *= 10
return total, n
"""
    assert value(source) == (12, 30)


def test_comprehensions_and_generators() -> None:
    source = """
evens = [x for x in range(10) if x % 2 == 0]
pairs = {(a, b) for a in "ab" for b in (1, 2)}
index = {name: len(name) for name in ["ann", "bo"]}
return evens, len(pairs), index, any(x > 7 for x in evens), sum(x * x for x in evens)
"""
    assert value(source) == ([0, 2, 4, 6, 8], 4, {"ann": 3, "bo": 2}, True, 120)


def test_operators_slices_and_lambdas() -> None:
    source = """
s = "abcdef"
key = lambda item, *, by=1: item[by]
return (s[1:4], s[::-1], 7 // 2, 7 % 3, 2 ** 10, 6 & 3, 6 | 1, 6 ^ 3, ~0, 1 << 4, -(3),
        not 0, 1 < 2 <= 2, "b" in s, sorted([(1, "b"), (0, "c")], key=key),
        (lambda *a, **k: (a, k))(1, x=2), (n := 5) + n)
"""
    assert value(source) == (
        "bcd", "fedcba", 3, 1, 1024, 2, 7, 5, -1, 16, -3, True, True, True,
        [(1, "b"), (0, "c")], ((1,), {"x": 2}), 10,
    )  # fmt: skip


def test_imports_of_allowed_modules() -> None:
    source = """
from datetime import timedelta as td, datetime
import re, json, math, string, ipaddress
stamp = datetime(2024, 1, 2, tzinfo=datetime.now().astimezone().tzinfo)
data = json.loads(json.dumps({"a": [1]}))
return (td(hours=1).total_seconds(), re.sub(r"\\d", "#", "a1b2"), data, math.floor(2.7),
        string.digits[:3], ipaddress.ip_network("10.0.0.0/30").num_addresses, stamp.year,
        re.match(r"(\\w+)@", "bob@x").group(1), re.sub(r"(\\w)", r"\\1\\1", "ab"))
"""
    assert value(source) == (3600.0, "a#b#", {"a": [1]}, 2, "012", 4, 2024, "bob", "aabb")


def test_try_except_and_raise() -> None:
    source = """
try:
    {}["missing"]
except (KeyError, IndexError) as error:
    caught = str(error)
else:
    caught = None
try:
    raise ValueError("boom")
except Exception as error:
    again = error.args[0]
return caught, again
"""
    assert value(source) == ("'missing'", "boom")


def test_isinstance_with_builtin_types() -> None:
    assert value('return isinstance("x", str), isinstance(1, (list, dict, int))') == (True, True)


def test_no_return_gives_none_and_steps_are_counted() -> None:
    result = run("x = 1")
    assert result.value is None and 0 < result.steps < 10


# errors


def test_runtime_errors_become_expression_errors_with_line() -> None:
    with pytest.raises(sandbox.ExpressionError) as caught:
        run("x = 1\ny = 0\nreturn x / y")
    assert caught.value.line == 3 and "ZeroDivisionError" in str(caught.value)
    with pytest.raises(sandbox.ExpressionError, match="NameError"):
        run("return nothing_here")


def test_syntax_errors_are_sandbox_errors_with_line() -> None:
    with pytest.raises(sandbox.SandboxError) as caught:
        sandbox.compile("x = 1\nreturn (")
    assert caught.value.line is not None and "syntax error" in str(caught.value)


def test_break_outside_a_loop_is_refused() -> None:
    with pytest.raises(sandbox.SandboxError, match="'break' outside a loop"):
        sandbox.compile("if True:\n    break")


def test_sandbox_errors_fail_policies() -> None:
    assert issubclass(sandbox.SandboxError, kinds.PolicyError)


def test_uncatchable_limits() -> None:
    source = "try:\n    while True:\n        pass\nexcept Exception:\n    return 'escaped'"
    with pytest.raises(sandbox.LimitExceeded):
        run(source, steps=1000)


def test_variables_must_be_public_names() -> None:
    with pytest.raises(ValueError, match="variable names"):
        sandbox.compile("return 1").run({"__builtins__": {}})


async def test_runs_in_a_thread_and_in_parallel() -> None:
    program = sandbox.compile("return sum(x for x in range(n))")
    results = await asyncio.gather(
        *(asyncio.to_thread(program.run, {"n": n}) for n in (10, 100, 1000))
    )
    assert [r.value for r in results] == [45, 4950, 499500]
