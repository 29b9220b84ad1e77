"""Classic escapes from Python sandboxes, one test each: every one fails with `SandboxError`.

Each test runs the attack as an expression would (compile, then run with a policy's variables)
and requires a `SandboxError`, never another exception and never a result. Attacks that the
static check stops are also tried against the run-time gate (`attributes.get`) where it applies.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tessera.core.policies import sandbox, views
from tessera.core.policies.sandbox import attributes, budget, modules


def refused(source: str, **variables: Any) -> sandbox.SandboxError:
    user = views.UserView({"pk": 1, "username": "alice"}, [{"name": "Admins", "pk": "g"}])
    names = {**views.policy_variables(user), **variables}
    with pytest.raises(sandbox.SandboxError) as caught:
        sandbox.compile(source).run(names)
    return caught.value


def _budget() -> budget.Budget:
    return budget.Budget(budget.Limits(), steps=1000, timeout=5)


def test_class_mro_subclasses_walk() -> None:
    error = refused("return ().__class__.__mro__[1].__subclasses__()")
    assert isinstance(error, sandbox.Forbidden) and error.line == 1


def test_class_walk_refused_at_run_time_too() -> None:
    for obj, name in (((), "__class__"), (type, "mro"), (object, "__subclasses__")):
        with pytest.raises(sandbox.Forbidden):
            attributes.get(_budget(), obj, name)


def test_dunder_import() -> None:
    refused("return __import__('os')")


def test_import_os() -> None:
    assert "cannot be imported" in str(refused("import os"))


def test_from_os_import_system() -> None:
    refused("from os import system")


def test_import_submodule_and_relative_and_star() -> None:
    for source in ("import os.path", "from . import x", "from re import *", "import re._parser"):
        refused(source)


def test_private_names_even_as_locals() -> None:
    for source in ("_x = 1", "return [__x for __x in [1]]", "return (lambda _a: 1)(1)"):
        refused(source)
    assert sandbox.compile("_ = 1\nreturn [0 for _ in range(2)]").run().value == [0, 0]


def test_str_format_attribute_walk() -> None:
    refused('return "{0.__class__}".format(1)')


def test_str_format_map_attribute_walk() -> None:
    refused('return "{x.__class__}".format_map({"x": 1})')


def test_str_format_refused_at_run_time_too() -> None:
    with pytest.raises(sandbox.Forbidden):
        attributes.get(_budget(), "{0.__class__}", "format")


def test_getattr_private_name() -> None:
    refused('return getattr(user, "_x")')


def test_open_etc_passwd() -> None:
    refused('return open("/etc/passwd").read()')


def test_eval() -> None:
    refused('return eval("1")')


def test_exec() -> None:
    refused('exec("x=1")')


def test_compile_vars_super_object() -> None:
    for source in ('compile("1", "", "eval")', "vars()", "super()", "object()", "locals()"):
        refused(source)


def test_globals() -> None:
    refused("return globals()")


def test_type_of_a_value() -> None:
    refused("return type(1)")


def test_lambda_code_object() -> None:
    refused("return (lambda: 1).__code__")


def test_lambda_has_no_attributes_at_run_time() -> None:
    refused("f = lambda: 1\nreturn f.func_globals")
    with pytest.raises(sandbox.Forbidden):
        attributes.get(_budget(), sandbox.compile("return lambda: 1").run().value, "body")


def test_user_dict() -> None:
    refused("return user.__dict__")


def test_view_internals_are_not_exposed() -> None:
    assert "no attribute" in str(refused("return user.groups.first().matches"))
    refused("return request.user._all")


def test_generator_gi_frame_walk() -> None:
    refused("g = (x for x in [1])\nreturn g.gi_frame.f_back.f_globals")


def test_generator_frame_refused_at_run_time_too() -> None:
    generator = sandbox.compile("return (x for x in [1])").run().value
    for name in ("gi_frame", "gi_code", "send", "close"):
        with pytest.raises(sandbox.Forbidden):
            attributes.get(_budget(), generator, name)


def test_map_object_has_no_attributes() -> None:
    refused("return map(str, [1]).gi_frame")
    refused("m = map(str, [1])\nreturn m.send")


def test_datetime_class_walk() -> None:
    refused("import datetime\nreturn datetime.datetime.now().__class__")


def test_datetime_class_attributes_are_allow_listed() -> None:
    error = refused("import datetime\nreturn datetime.datetime.now().fromordinal")
    assert isinstance(error, sandbox.Forbidden)
    with pytest.raises(sandbox.Forbidden):
        attributes.get(_budget(), dt.datetime, "mro")


def test_module_attribute_datetime_sys() -> None:
    assert "no attribute 'sys'" in str(refused("import datetime\nreturn datetime.sys"))


def test_module_attribute_re_private_compile() -> None:
    refused("import re\nreturn re._compile")


def test_module_attributes_beyond_the_table() -> None:
    refused("import re\nreturn re.enum")
    refused("import json\nreturn json.decoder")
    refused("from math import sys")
    with pytest.raises(sandbox.Forbidden):
        modules.load("re", _budget()).sandbox_get("sre_compile")


def test_function_attributes() -> None:
    refused("return len.self")
    refused("return ak_message.closure")
    refused("return regex_match.globals")
    refused("return ak_logger.add")


def test_constructor_internals() -> None:
    refused("return str.type")
    refused("return dict.fromkeys")


def test_exception_traceback_walk() -> None:
    source = "try:\n    1/0\nexcept Exception as e:\n    return e.with_traceback"
    refused(source)
    refused("try:\n    1/0\nexcept Exception as e:\n    return e.__traceback__")


def test_def_class_global_nonlocal_with_yield() -> None:
    for source in (
        "def f():\n    return 1",
        "class X:\n    pass",
        "global x",
        "nonlocal x",
        "with open('x') as f:\n    pass",
        "x = yield 1",
        "return lambda: (yield)",
        "try:\n    pass\nfinally:\n    pass",
    ):
        refused(source)


def test_attribute_assignment() -> None:
    refused('user.username = "root"')
    refused("del user.username")


def test_item_assignment_on_non_data() -> None:
    refused('request.user["x"] = 1')


def test_views_hand_out_copies() -> None:
    row = {"pk": 1, "username": "alice", "attributes": {"role": "user"}}
    user = views.UserView(row)
    sandbox.compile('user.attributes["role"] = "admin"').run({"user": user})
    assert row["attributes"] == {"role": "user"}


def test_regex_quadratic_search_on_a_long_subject() -> None:
    refused('return regex_match(" " * 100000, r"\\s*x")')
    refused('import re\nreturn re.compile(r"\\s*x").search(" " * 100000)')
    refused('import re\nreturn re.compile(r"x").findall(" " * 100000)')
    refused('return regex_replace(" " * 100000, r"\\s*x", "")')


def test_regex_patterns_people_write_still_work() -> None:
    run = sandbox.compile(
        'return [regex_match("bob@mail.example.org", r"^[\\w.+-]+@([\\w-]+\\.)+[\\w-]{2,}$"),'
        ' regex_match("user123", r"^[a-z]+[0-9]+$"),'
        ' regex_match("CN=x,OU=y", r"^CN=([^,]+),OU=(.*)$"),'
        ' regex_match("foo bar", r"^(foo|bar)( (foo|bar))*$"),'
        ' regex_match(" x ", r"^\\s*x\\s*$"), regex_replace("a  b", r"\\s+", " ")]'
    ).run()
    assert run.value == [True, True, True, True, True, "a b"]


def test_json_loads_hooks_are_not_offered() -> None:
    refused('import json\nreturn json.loads("{}", cls=ValueError)')
    refused('import json\nreturn json.loads("[1]", object_hook=print)')
    assert sandbox.compile('import json\nreturn json.loads("[1]")').run().value == [1]
