"""Static checks of an expression's syntax tree, made once when the expression is compiled.

Called by `sandbox.compile`. Refuses, with the line: syntax errors, statements and expressions
the interpreter does not offer (`def`, `class`, `global`, `with`, `yield`, `await`, `match`,
`finally`), every name, attribute, parameter, keyword or alias starting with `_`, the built-ins
that reach into the runtime (`eval`, `getattr`, `type`, ...), `str.format` and the attributes that
walk into frames, imports of modules outside the allow-list, `break`/`continue` outside a loop,
and sources too long or nested too deeply.

# SECURITY: this is the first of two gates. The interpreter checks names, attributes and modules
# again at run time, so that a value that reaches code by another path is refused as well.
"""

from __future__ import annotations

import ast

from tessera.core.policies.sandbox import modules
from tessera.core.policies.sandbox.errors import Forbidden, LimitExceeded, SandboxError

MAX_SOURCE = 100_000  # characters
MAX_NESTING = 100  # levels of the syntax tree


def _words(text: str) -> list[str]:
    return text.split()


FORBIDDEN_NAMES = frozenset(
    _words(
        "open exec eval compile getattr setattr delattr hasattr vars globals locals type object"
        " super dir breakpoint input help memoryview bytearray classmethod staticmethod property"
        " exit quit"
    )
)
FORBIDDEN_ATTRIBUTES = {
    "format": "str.format is not allowed; use an f-string",
    "format_map": "str.format_map is not allowed; use an f-string",
    **dict.fromkeys(
        _words(
            "gi_frame gi_code gi_yieldfrom cr_frame cr_code ag_frame ag_code f_globals f_locals"
            " f_builtins f_back f_code tb_frame tb_next func_globals func_code mro"
        ),
        "this attribute reaches into the interpreter",
    ),
}
STATEMENTS = (
    ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.If, ast.For, ast.While,
    ast.Break, ast.Continue, ast.Pass, ast.Import, ast.ImportFrom, ast.Try, ast.Raise, ast.Assert,
    ast.Delete,
)  # fmt: skip
EXPRESSIONS = (
    ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp, ast.Lambda, ast.IfExp, ast.Dict, ast.Set,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Compare, ast.Call,
    ast.FormattedValue, ast.JoinedStr, ast.Constant, ast.Attribute, ast.Subscript, ast.Starred,
    ast.Name, ast.List, ast.Tuple, ast.Slice,
)  # fmt: skip
PARTS = (
    ast.Module, ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop,
    ast.comprehension, ast.ExceptHandler, ast.arguments, ast.arg, ast.keyword, ast.alias,
)  # fmt: skip
REFUSED = {
    ast.FunctionDef: "def statements are not allowed; use a lambda",
    ast.AsyncFunctionDef: "def statements are not allowed; use a lambda",
    ast.ClassDef: "class statements are not allowed",
    ast.Global: "global statements are not allowed",
    ast.Nonlocal: "nonlocal statements are not allowed",
    ast.With: "with statements are not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Await: "await is not allowed",
}


def check(source: str) -> ast.Module:
    """Parse `source` (the body of a function) and check it; raise `SandboxError`."""
    if len(source) > MAX_SOURCE:
        raise LimitExceeded(f"the expression is longer than {MAX_SOURCE} characters")
    try:
        tree = ast.parse(source, "<expression>")
    except SyntaxError as exc:
        raise SandboxError(f"syntax error: {exc.msg}", exc.lineno) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise SandboxError(f"the expression cannot be parsed: {type(exc).__name__}") from None
    _walk(tree)
    _loops(tree.body, in_loop=False)
    return tree


def _walk(tree: ast.Module) -> None:
    stack: list[tuple[ast.AST, int, int | None]] = [(tree, 0, None)]
    while stack:
        node, depth, line = stack.pop()
        line = getattr(node, "lineno", line)
        if depth > MAX_NESTING:
            raise LimitExceeded(f"the expression is nested more than {MAX_NESTING} levels", line)
        try:
            _node(node)
        except SandboxError as exc:
            raise exc.at(line) from None
        stack.extend((child, depth + 1, line) for child in ast.iter_child_nodes(node))


def _node(node: ast.AST) -> None:
    if not isinstance(node, (*STATEMENTS, *EXPRESSIONS, *PARTS)):
        what = REFUSED.get(type(node), f"{type(node).__name__} is not supported in expressions")
        raise Forbidden(what)
    if isinstance(node, ast.Name):
        _name(node.id)
    elif isinstance(node, ast.Attribute):
        _attribute(node)
    elif isinstance(node, ast.arg):
        _name(node.arg)
    elif isinstance(node, ast.keyword) and node.arg is not None:
        _private(node.arg)  # `ak_user_by(type="internal")` names no built-in
    elif isinstance(node, ast.ExceptHandler) and node.name is not None:
        _name(node.name)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        _import(node)
    elif isinstance(node, ast.Try) and node.finalbody:
        raise Forbidden("try/finally is not supported")
    elif isinstance(node, ast.comprehension) and node.is_async:
        raise Forbidden("async comprehensions are not allowed")


def _private(name: str) -> None:
    if name.startswith("_") and name != "_":  # a bare `_` is the usual throwaway variable
        raise Forbidden(f"{name!r}: names starting with '_' are not allowed")


def _name(name: str) -> None:
    _private(name)
    if name in FORBIDDEN_NAMES:
        raise Forbidden(f"{name!r} is not available in expressions")


def _attribute(node: ast.Attribute) -> None:
    if node.attr.startswith("_"):
        raise Forbidden(f"attribute {node.attr!r}: names starting with '_' are not allowed")
    if node.attr in FORBIDDEN_ATTRIBUTES:
        raise Forbidden(f"attribute {node.attr!r}: {FORBIDDEN_ATTRIBUTES[node.attr]}")
    if not isinstance(node.ctx, ast.Load):
        raise Forbidden("attributes cannot be assigned or deleted")


def _import(node: ast.Import | ast.ImportFrom) -> None:
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module not in modules.NAMES:
            raise Forbidden(f"module {node.module!r} cannot be imported; {_offered()}")
        if any(alias.name == "*" for alias in node.names):
            raise Forbidden("'from ... import *' is not allowed")
    for alias in node.names:
        if isinstance(node, ast.Import) and alias.name not in modules.NAMES:
            raise Forbidden(f"module {alias.name!r} cannot be imported; {_offered()}")
        _name(alias.name)
        if alias.asname is not None:
            _name(alias.asname)


def _offered() -> str:
    return "the modules offered are " + ", ".join(sorted(modules.NAMES))


def _loops(body: list[ast.stmt], *, in_loop: bool) -> None:
    for stmt in body:
        if isinstance(stmt, (ast.Break, ast.Continue)) and not in_loop:
            keyword = "break" if isinstance(stmt, ast.Break) else "continue"
            raise SandboxError(f"'{keyword}' outside a loop", stmt.lineno)
        if isinstance(stmt, (ast.For, ast.While)):
            _loops(stmt.body, in_loop=True)
            _loops(stmt.orelse, in_loop=in_loop)
        elif isinstance(stmt, ast.If):
            _loops(stmt.body, in_loop=in_loop)
            _loops(stmt.orelse, in_loop=in_loop)
        elif isinstance(stmt, ast.Try):
            for part in (stmt.body, stmt.orelse, *(h.body for h in stmt.handlers)):
                _loops(part, in_loop=in_loop)
