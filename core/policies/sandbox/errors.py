"""The errors of the expression sandbox, each carrying the source line where it happened.

Raised by every module of the sandbox; the policy engine receives them as `kinds.PolicyError`
(the binding's failure result) and the admin API's policy test shows their text.
"""

from __future__ import annotations

from typing import Self

from tessera.core.policies import kinds


class SandboxError(kinds.PolicyError):
    """An expression was refused or stopped; `line` is its 1-based source line, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message

    def at(self, line: int | None) -> Self:
        """Set the line unless a more precise one is already known."""
        if self.line is None:
            self.line = line
        return self


class Forbidden(SandboxError):
    """The code uses a construct, name, attribute or module that the sandbox does not offer."""


class LimitExceeded(SandboxError):
    """The code went over a budget: steps, time, size of a value, memory, or call depth."""


class ExpressionError(SandboxError):
    """The code itself failed (a `KeyError`, a division by zero, a failing helper)."""
