"""Policies: the engine that evaluates bindings, and the policy kinds it runs."""

from tessera.core.policies import checks, engine, expression, kinds, reputation

kinds.KINDS.update(
    {kind.kind: kind for kind in (*checks.KINDS, expression.Expression, reputation.Reputation)}
)

__all__ = ["checks", "engine", "expression", "kinds", "reputation"]
