"""List, set and dict comprehensions and generator expressions for the sandbox's interpreter.

Called through the interpreter's dispatch table. A comprehension runs in a scope of its own;
its first iterable is evaluated in the enclosing scope at once, the rest lazily, as in Python.
Every item ticks the run's budget and is pulled through its checked iterator (charged when the
iterable makes it); set members and dict keys are weighed before they are hashed.
A generator expression is a Python generator that evaluates each item when it is asked for (by
`any`, `sum`, a `for` loop); it exposes no attributes to sandboxed code.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from tessera.core.policies.sandbox.scope import Scope

if TYPE_CHECKING:
    from tessera.core.policies.sandbox.interpreter import Interpreter


def scopes(run: Interpreter, generators: list[ast.comprehension], scope: Scope) -> Iterator[Scope]:
    """One scope per combination of loop values that passes the `if`s."""
    first = run.eval(generators[0].iter, scope)
    return _loop(run, generators, 0, first, Scope(scope, comprehension=True))


def _loop(
    run: Interpreter,
    generators: list[ast.comprehension],
    index: int,
    iterable: Iterable[Any],
    scope: Scope,
) -> Iterator[Scope]:
    generator = generators[index]
    for item in run.budget.iterate(iterable, loop=True):
        run.budget.tick(generator.target)
        run.assign(generator.target, item, scope)
        if all(run.eval(condition, scope) for condition in generator.ifs):
            if index + 1 == len(generators):
                yield scope
            else:
                inner = run.eval(generators[index + 1].iter, scope)
                yield from _loop(run, generators, index + 1, inner, scope)


def list_comp(run: Interpreter, node: ast.ListComp, scope: Scope) -> list[Any]:
    out = []
    for inner in scopes(run, node.generators, scope):
        out.append(run.eval(node.elt, inner))
        if len(out) > run.budget.limits.max_len:
            run.budget.size(len(out), "a list comprehension")
    return run.budget.produced(out)  # type: ignore[no-any-return]


def set_comp(run: Interpreter, node: ast.SetComp, scope: Scope) -> set[Any]:
    out = set()
    for inner in scopes(run, node.generators, scope):
        value = run.eval(node.elt, inner)
        run.budget.weigh(value)
        out.add(value)
    return run.budget.produced(out)  # type: ignore[no-any-return]


def dict_comp(run: Interpreter, node: ast.DictComp, scope: Scope) -> dict[Any, Any]:
    out = {}
    for inner in scopes(run, node.generators, scope):
        key = run.eval(node.key, inner)
        run.budget.weigh(key)
        out[key] = run.eval(node.value, inner)
    return run.budget.produced(out)  # type: ignore[no-any-return]


def generator(run: Interpreter, node: ast.GeneratorExp, scope: Scope) -> Iterator[Any]:
    inner_scopes = scopes(run, node.generators, scope)
    return (run.eval(node.elt, inner) for inner in inner_scopes)
