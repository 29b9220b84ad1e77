"""The statement half of the sandbox's interpreter: runs the body of an expression.

`Program.run` creates an `Executor` per run and calls `run(tree)`. A statement returns an
`Outcome`: nothing, a loop signal (`break`, `continue`) or a `Return`. Supported: expression
statements, assignments (chained, tuple unpacking with `*rest`, items of lists and dicts,
annotated), augmented assignments, `return`, `if`/`elif`/`else`, `for` and `while` (with `else`,
`break`, `continue`), `pass`, `del`, `assert`, `import` and `from ... import` of the modules the
sandbox offers, `try`/`except`/`else` and `raise`.

# SECURITY: an `except` clause never sees the sandbox's own errors (`SandboxError`) nor
# `RecursionError` or `MemoryError`: a limit that was hit stays hit.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.core.policies.sandbox import modules, operators
from tessera.core.policies.sandbox.errors import Forbidden, SandboxError
from tessera.core.policies.sandbox.interpreter import Interpreter
from tessera.core.policies.sandbox.scope import Scope

_UNCATCHABLE = (SandboxError, RecursionError, MemoryError)


class Signal(enum.Enum):
    BREAK = "break"
    CONTINUE = "continue"


@dataclass
class Return:
    value: Any


Outcome = Signal | Return | None


class Executor(Interpreter):
    _handling: list[BaseException]

    def run(self, tree: ast.Module) -> Any:
        self._handling = []
        outcome = self.block(tree.body, self.top)
        return outcome.value if isinstance(outcome, Return) else None

    def block(self, body: list[ast.stmt], scope: Scope) -> Outcome:
        for statement in body:
            self.budget.tick(statement)
            method = _STATEMENTS.get(type(statement))
            if method is None:
                raise Forbidden(f"{type(statement).__name__} statements are not supported")
            outcome = method(self, statement, scope)
            if outcome is not None:
                return outcome
        return None

    def _expr(self, node: ast.Expr, scope: Scope) -> Outcome:
        self.eval(node.value, scope)
        return None

    def _assign(self, node: ast.Assign, scope: Scope) -> Outcome:
        value = self.eval(node.value, scope)
        for target in node.targets:
            self.assign(target, value, scope)
        return None

    def _annassign(self, node: ast.AnnAssign, scope: Scope) -> Outcome:
        if node.value is not None:
            self.assign(node.target, self.eval(node.value, scope), scope)
        return None

    def _augassign(self, node: ast.AugAssign, scope: Scope) -> Outcome:
        op, target = type(node.op), node.target
        if isinstance(target, ast.Name):
            current = self.lookup(target.id, scope)
            value = self.eval(node.value, scope)
            scope.names[target.id] = operators.in_place(self.budget, op, current, value)
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value, scope)
            key = self.eval(target.slice, scope)
            current = container[key]
            value = self.eval(node.value, scope)
            self.store_item(container, key, operators.in_place(self.budget, op, current, value))
        else:
            raise Forbidden("only names and items can be updated with an augmented assignment")
        return None

    def _delete(self, node: ast.Delete, scope: Scope) -> Outcome:
        for target in node.targets:
            if isinstance(target, ast.Name):
                if target.id not in scope.names:
                    raise NameError(f"name {target.id!r} is not defined")
                del scope.names[target.id]
            elif isinstance(target, ast.Subscript):
                container = self.eval(target.value, scope)
                if type(container) not in (list, dict):
                    raise Forbidden("only the items of lists and dicts can be deleted")
                del container[self.eval(target.slice, scope)]
            else:
                raise Forbidden(f"cannot delete {type(target).__name__}")
        return None

    def _return(self, node: ast.Return, scope: Scope) -> Outcome:
        return Return(None if node.value is None else self.eval(node.value, scope))

    def _if(self, node: ast.If, scope: Scope) -> Outcome:
        return self.block(node.body if self.eval(node.test, scope) else node.orelse, scope)

    def _for(self, node: ast.For, scope: Scope) -> Outcome:
        for item in self.budget.iterate(self.eval(node.iter, scope), loop=True):
            self.budget.tick(node)
            self.assign(node.target, item, scope)
            outcome = self.block(node.body, scope)
            if outcome is Signal.BREAK:
                return None
            if outcome is not None and outcome is not Signal.CONTINUE:
                return outcome
        return self.block(node.orelse, scope)

    def _while(self, node: ast.While, scope: Scope) -> Outcome:
        while self.eval(node.test, scope):
            self.budget.tick(node)
            outcome = self.block(node.body, scope)
            if outcome is Signal.BREAK:
                return None
            if outcome is not None and outcome is not Signal.CONTINUE:
                return outcome
        return self.block(node.orelse, scope)

    def _break(self, node: ast.Break, scope: Scope) -> Outcome:
        return Signal.BREAK

    def _continue(self, node: ast.Continue, scope: Scope) -> Outcome:
        return Signal.CONTINUE

    def _pass(self, node: ast.Pass, scope: Scope) -> Outcome:
        return None

    def _import(self, node: ast.Import, scope: Scope) -> Outcome:
        for alias in node.names:
            scope.names[alias.asname or alias.name] = modules.load(alias.name, self.budget)
        return None

    def _importfrom(self, node: ast.ImportFrom, scope: Scope) -> Outcome:
        module = modules.load(node.module or "", self.budget)
        for alias in node.names:
            scope.names[alias.asname or alias.name] = module.sandbox_get(alias.name)
        return None

    def _assert(self, node: ast.Assert, scope: Scope) -> Outcome:
        if not self.eval(node.test, scope):
            message = () if node.msg is None else (self.budget.text(self.eval(node.msg, scope)),)
            raise AssertionError(*message)
        return None

    def _raise(self, node: ast.Raise, scope: Scope) -> Outcome:
        if node.exc is None:
            if not self._handling:
                raise RuntimeError("no active exception to re-raise")
            raise self._handling[-1]
        error = _exception(self.eval(node.exc, scope))
        cause = None if node.cause is None else _exception(self.eval(node.cause, scope))
        raise error from cause

    def _try(self, node: ast.Try, scope: Scope) -> Outcome:
        try:
            outcome = self.block(node.body, scope)
        except Exception as error:  # offered to the expression's own except clauses, as Python does
            if isinstance(error, _UNCATCHABLE):
                raise
            handler = self._handler(node.handlers, error, scope)
            if handler is None:
                raise
            return self._handle(handler, error, scope)
        return self.block(node.orelse, scope) if outcome is None else outcome

    def _handler(
        self, handlers: list[ast.ExceptHandler], error: Exception, scope: Scope
    ) -> ast.ExceptHandler | None:
        for handler in handlers:
            if handler.type is None or isinstance(error, _classes(self.eval(handler.type, scope))):
                return handler
        return None

    def _handle(self, handler: ast.ExceptHandler, error: Exception, scope: Scope) -> Outcome:
        if handler.name:
            scope.names[handler.name] = error
        self._handling.append(error)
        try:
            return self.block(handler.body, scope)
        finally:
            self._handling.pop()


def _exception(value: Any) -> Exception:
    if isinstance(value, type) and issubclass(value, Exception):
        value = value()
    if not isinstance(value, Exception):
        raise TypeError("exceptions must derive from Exception")
    return value


def _classes(value: Any) -> type[Exception] | tuple[type[Exception], ...]:
    """The classes an `except` clause names: exception classes or a tuple of them."""
    kinds = value if type(value) is tuple else (value,)
    if not all(isinstance(kind, type) and issubclass(kind, Exception) for kind in kinds):
        raise TypeError("an except clause must name exception classes")
    return tuple(kinds)


_STATEMENTS: dict[type[ast.stmt], Callable[[Executor, Any, Scope], Outcome]] = {
    ast.Expr: Executor._expr,
    ast.Assign: Executor._assign,
    ast.AnnAssign: Executor._annassign,
    ast.AugAssign: Executor._augassign,
    ast.Delete: Executor._delete,
    ast.Return: Executor._return,
    ast.If: Executor._if,
    ast.For: Executor._for,
    ast.While: Executor._while,
    ast.Break: Executor._break,
    ast.Continue: Executor._continue,
    ast.Pass: Executor._pass,
    ast.Import: Executor._import,
    ast.ImportFrom: Executor._importfrom,
    ast.Assert: Executor._assert,
    ast.Raise: Executor._raise,
    ast.Try: Executor._try,
}
