"""Flows: planning a flow from its stage bindings and executing it one challenge at a time.

`executor.Executor` is driven by the JSON executor API and by the HTML flow pages; it keeps a
flow's state in the cache, keyed by the browser's session, and asks the policy engine which
stages apply.
"""

from tessera.core.flows import defaults, executor, redirects

__all__ = ["defaults", "executor", "redirects"]
