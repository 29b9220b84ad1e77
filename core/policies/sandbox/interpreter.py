"""The expression half of the sandbox's interpreter: evaluates the `ast.expr` nodes of a tree.

`statements.Executor` extends it with statements; `Program.run` creates one per run. Every node
evaluated ticks the run's `Budget` (steps and deadline). Names resolve in the local scopes, then
the caller's variables, then the built-ins; attributes go through `attributes.get`; operators
through `operators`; a lambda becomes a `Function`, callable by sandboxed and by native code
(`sorted(key=...)`); comprehensions get their own scope, as in Python.
"""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

from tessera.core.policies.sandbox import attributes, builtins, comprehensions, helpers, operators
from tessera.core.policies.sandbox.budget import CONTAINERS, Budget, Printable
from tessera.core.policies.sandbox.errors import Forbidden, LimitExceeded
from tessera.core.policies.sandbox.scope import Scope

MAX_SPEC = 100  # characters of a format spec in an f-string
_P = inspect.Parameter


class Function(Printable):
    """A sandboxed lambda. It exposes no attributes; calling it evaluates its body."""

    __slots__ = ("_interpreter", "_node", "_scope", "_signature")

    def __init__(
        self, interpreter: Interpreter, node: ast.Lambda, scope: Scope, signature: inspect.Signature
    ) -> None:
        self._interpreter = interpreter
        self._node = node
        self._scope = scope
        self._signature = signature

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self._interpreter.call_lambda(self._node, self._scope, bound.arguments)

    def __repr__(self) -> str:
        return "<lambda>"


class Interpreter:
    def __init__(
        self,
        budget: Budget,
        variables: Mapping[str, Any],
        hooks: helpers.Hooks,
        output: helpers.Output,
    ) -> None:
        self.budget = budget
        self.variables = variables
        self.builtins = builtins.make(budget, self.call, hooks, output)
        self.top = Scope()

    def eval(self, node: ast.expr, scope: Scope) -> Any:
        self.budget.tick(node)
        method = _EXPRESSIONS.get(type(node))
        if method is None:
            raise Forbidden(f"{type(node).__name__} is not supported here")
        return method(self, node, scope)

    def lookup(self, name: str, scope: Scope) -> Any:
        names = scope.find(name)
        if names is not None:
            return names[name]
        if name in self.variables:
            return self.variables[name]
        if name in self.builtins:
            return self.builtins[name]
        raise NameError(f"name {name!r} is not defined")

    def call(self, function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = function(*args, **kwargs)
        return result if isinstance(function, Function) else self.budget.produced(result)

    def call_lambda(self, node: ast.Lambda, scope: Scope, arguments: Mapping[str, Any]) -> Any:
        budget = self.budget
        if budget.depth >= budget.limits.max_depth:
            raise LimitExceeded(
                f"lambdas called each other more than {budget.limits.max_depth} deep"
            )
        budget.depth += 1
        try:
            return self.eval(node.body, Scope(scope, dict(arguments)))
        finally:
            budget.depth -= 1

    def assign(self, target: ast.expr, value: Any, scope: Scope) -> None:
        if isinstance(target, ast.Name):
            scope.names[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            self._unpack(target.elts, value, scope)
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value, scope)
            self.store_item(container, self.eval(target.slice, scope), value)
        else:
            raise Forbidden(f"cannot assign to {type(target).__name__}")

    def store_item(self, container: Any, key: Any, value: Any) -> None:
        if type(container) not in (list, dict):
            raise Forbidden("only the items of lists and dicts can be assigned")
        if isinstance(key, CONTAINERS):
            self.budget.weigh(key)
        if isinstance(key, slice):
            value = self.budget.materialize(value)
            self.budget.size(len(container) + len(value))
        container[key] = value

    def _unpack(self, targets: list[ast.expr], value: Any, scope: Scope) -> None:
        items = self.budget.materialize(value)
        stars = [i for i, target in enumerate(targets) if isinstance(target, ast.Starred)]
        if not stars:
            if len(items) != len(targets):
                raise ValueError(f"expected {len(targets)} values to unpack, got {len(items)}")
            for target, item in zip(targets, items, strict=True):
                self.assign(target, item, scope)
            return
        star, after = stars[0], len(targets) - stars[0] - 1
        if len(items) < len(targets) - 1:
            raise ValueError(
                f"expected at least {len(targets) - 1} values to unpack, got {len(items)}"
            )
        rest = len(items) - after
        for target, item in zip(targets[:star], items[:star], strict=True):
            self.assign(target, item, scope)
        starred = targets[star]
        assert isinstance(starred, ast.Starred)
        self.assign(starred.value, items[star:rest], scope)
        for target, item in zip(targets[star + 1 :], items[rest:], strict=True):
            self.assign(target, item, scope)

    def items(self, nodes: list[ast.expr], scope: Scope) -> list[Any]:
        """The values of a display or an argument list, with `*iterable` spread."""
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, ast.Starred):
                out.extend(self.budget.materialize(self.eval(node.value, scope)))
                self.budget.size(len(out))
            else:
                out.append(self.eval(node, scope))
        return out

    # Expressions, one method per node type.

    def _constant(self, node: ast.Constant, scope: Scope) -> Any:
        return node.value

    def _name(self, node: ast.Name, scope: Scope) -> Any:
        return self.lookup(node.id, scope)

    def _attribute(self, node: ast.Attribute, scope: Scope) -> Any:
        return attributes.get(self.budget, self.eval(node.value, scope), node.attr)

    def _subscript(self, node: ast.Subscript, scope: Scope) -> Any:
        container = self.eval(node.value, scope)
        key = self.eval(node.slice, scope)
        if isinstance(key, CONTAINERS):
            self.budget.weigh(key)
        result = container[key]
        return self.budget.produced(result) if isinstance(key, slice) else result

    def _slice(self, node: ast.Slice, scope: Scope) -> slice:
        lower, upper, step = (
            None if n is None else self.eval(n, scope) for n in (node.lower, node.upper, node.step)
        )
        return slice(lower, upper, step)

    def _binop(self, node: ast.BinOp, scope: Scope) -> Any:
        left = self.eval(node.left, scope)
        return operators.binary(self.budget, type(node.op), left, self.eval(node.right, scope))

    def _unaryop(self, node: ast.UnaryOp, scope: Scope) -> Any:
        return operators.UNARY[type(node.op)](self.eval(node.operand, scope))

    def _boolop(self, node: ast.BoolOp, scope: Scope) -> Any:
        conjunction = isinstance(node.op, ast.And)
        for part in node.values[:-1]:
            value = self.eval(part, scope)
            if bool(value) != conjunction:
                return value
        return self.eval(node.values[-1], scope)

    def _compare(self, node: ast.Compare, scope: Scope) -> Any:
        left, result = self.eval(node.left, scope), True
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator, scope)
            result = operators.compare(self.budget, type(op), left, right)
            if not result:
                return result
            left = right
        return result

    def _ifexp(self, node: ast.IfExp, scope: Scope) -> Any:
        return self.eval(node.body if self.eval(node.test, scope) else node.orelse, scope)

    def _namedexpr(self, node: ast.NamedExpr, scope: Scope) -> Any:
        value = self.eval(node.value, scope)
        scope.binding().names[node.target.id] = value
        return value

    def _lambda(self, node: ast.Lambda, scope: Scope) -> Function:
        return Function(self, node, scope, self._signature(node.args, scope))

    def _signature(self, args: ast.arguments, scope: Scope) -> inspect.Signature:
        positional = [*args.posonlyargs, *args.args]
        defaults = [self.eval(default, scope) for default in args.defaults]
        first_default = len(positional) - len(defaults)
        params = [
            _P(
                arg.arg,
                _P.POSITIONAL_ONLY if i < len(args.posonlyargs) else _P.POSITIONAL_OR_KEYWORD,
                default=defaults[i - first_default] if i >= first_default else _P.empty,
            )
            for i, arg in enumerate(positional)
        ]
        if args.vararg:
            params.append(_P(args.vararg.arg, _P.VAR_POSITIONAL))
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            value = _P.empty if default is None else self.eval(default, scope)
            params.append(_P(arg.arg, _P.KEYWORD_ONLY, default=value))
        if args.kwarg:
            params.append(_P(args.kwarg.arg, _P.VAR_KEYWORD))
        return inspect.Signature(params)

    def _call(self, node: ast.Call, scope: Scope) -> Any:
        function = self.eval(node.func, scope)
        args = tuple(self.items(node.args, scope))
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            given = (
                {keyword.arg: self.eval(keyword.value, scope)}
                if keyword.arg is not None
                else self.eval(keyword.value, scope)
            )
            if not isinstance(given, dict):
                raise TypeError("the argument after ** must be a dict")
            if given.keys() & kwargs.keys():
                raise TypeError(
                    f"keyword arguments repeated: {sorted(given.keys() & kwargs.keys())}"
                )
            kwargs.update(given)
        return self.call(function, args, kwargs)

    def _list(self, node: ast.List, scope: Scope) -> list[Any]:
        return self.budget.produced(self.items(node.elts, scope))  # type: ignore[no-any-return]

    def _tuple(self, node: ast.Tuple, scope: Scope) -> tuple[Any, ...]:
        return self.budget.produced(tuple(self.items(node.elts, scope)))  # type: ignore[no-any-return]

    def _set(self, node: ast.Set, scope: Scope) -> set[Any]:
        values = self.items(node.elts, scope)
        self.budget.weigh(values)
        return self.budget.produced(set(values))  # type: ignore[no-any-return]

    def _dict(self, node: ast.Dict, scope: Scope) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in zip(node.keys, node.values, strict=True):
            if key_node is None:
                mapping = self.eval(value_node, scope)
                if not isinstance(mapping, dict):
                    raise TypeError("only dicts can be unpacked with ** in a dict display")
                self.budget.size(len(out) + len(mapping))
                out.update(mapping)
                continue
            key = self.eval(key_node, scope)
            if isinstance(key, CONTAINERS):
                self.budget.weigh(key)
            out[key] = self.eval(value_node, scope)
        return self.budget.produced(out)  # type: ignore[no-any-return]

    def _joinedstr(self, node: ast.JoinedStr, scope: Scope) -> str:
        return self.budget.joined([self.eval(value, scope) for value in node.values], "")

    def _formattedvalue(self, node: ast.FormattedValue, scope: Scope) -> str:
        value = self.eval(node.value, scope)
        conversion = _CONVERSIONS.get(node.conversion)
        if conversion is not None:
            value = self.budget.text(value, conversion)
        if node.format_spec is None:
            return self.budget.text(value)
        spec = self.eval(node.format_spec, scope)
        if spec == "":
            return self.budget.text(value)
        if len(spec) > MAX_SPEC:
            raise LimitExceeded(f"a format spec is longer than {MAX_SPEC} characters")
        self.budget.size(
            sum(int(digits) for digits in re.findall(r"\d+", spec)), "a formatted value"
        )
        if isinstance(value, (dt.date, dt.time)):  # the spec is a strftime format
            attributes.strftime_size(self.budget, spec)
        elif not isinstance(value, _FORMATTED):
            # SECURITY: `object.__format__` would name the runtime's type (a module path).
            raise TypeError("a format spec applies to numbers, text and dates only")
        self.budget.weigh(value)
        return self.budget.produced(format(value, spec))  # type: ignore[no-any-return]

    def _starred(self, node: ast.Starred, scope: Scope) -> Any:
        raise Forbidden("a starred expression is not allowed here")


_FORMATTED = (str, int, float, complex, bool)
_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
_EXPRESSIONS: dict[type[ast.AST], Callable[[Interpreter, Any, Scope], Any]] = {
    ast.Constant: Interpreter._constant,
    ast.Name: Interpreter._name,
    ast.Attribute: Interpreter._attribute,
    ast.Subscript: Interpreter._subscript,
    ast.Slice: Interpreter._slice,
    ast.BinOp: Interpreter._binop,
    ast.UnaryOp: Interpreter._unaryop,
    ast.BoolOp: Interpreter._boolop,
    ast.Compare: Interpreter._compare,
    ast.IfExp: Interpreter._ifexp,
    ast.NamedExpr: Interpreter._namedexpr,
    ast.Lambda: Interpreter._lambda,
    ast.Call: Interpreter._call,
    ast.List: Interpreter._list,
    ast.Tuple: Interpreter._tuple,
    ast.Set: Interpreter._set,
    ast.Dict: Interpreter._dict,
    ast.ListComp: comprehensions.list_comp,
    ast.SetComp: comprehensions.set_comp,
    ast.DictComp: comprehensions.dict_comp,
    ast.GeneratorExp: comprehensions.generator,
    ast.JoinedStr: Interpreter._joinedstr,
    ast.FormattedValue: Interpreter._formattedvalue,
    ast.Starred: Interpreter._starred,
}
