"""Policies: the engine that evaluates bindings, and the policy kinds it runs."""

from tessera.core.policies import checks, engine, kinds

kinds.KINDS.update({kind.kind: kind for kind in checks.KINDS})

__all__ = ["checks", "engine", "kinds"]
