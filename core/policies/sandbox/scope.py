"""Local names of sandboxed code: the expression's body, a lambda call, a comprehension.

Created by the interpreter (`interpreter`, `comprehensions`, `statements`); name lookup walks
from the innermost scope outwards, then to the caller's variables and the built-ins.
"""

from __future__ import annotations

from typing import Any


class Scope:
    __slots__ = ("comprehension", "names", "parent")

    def __init__(
        self,
        parent: Scope | None = None,
        names: dict[str, Any] | None = None,
        *,
        comprehension: bool = False,
    ) -> None:
        self.parent = parent
        self.names = {} if names is None else names
        self.comprehension = comprehension

    def find(self, name: str) -> dict[str, Any] | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names
            scope = scope.parent
        return None

    def binding(self) -> Scope:
        """Where `:=` binds: the nearest scope that is not a comprehension's."""
        scope = self
        while scope.comprehension and scope.parent is not None:
            scope = scope.parent
        return scope
