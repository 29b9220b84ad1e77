"""Policies: the engine that evaluates bindings, and the policy kinds it runs."""

from tessera.core.policies import engine, kinds

__all__ = ["engine", "kinds"]
