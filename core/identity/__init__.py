"""The identity model: users, groups, applications, tokens, sessions and certificate key pairs.

Each module holds the rules of one object kind (uniqueness, references, cycles, secrets) over a
store transaction; the API layer calls them and writes the audit events in the same transaction.
"""

from tessera.core.identity import (
    applications,
    bootstrap,
    groups,
    identifiers,
    keypairs,
    outposts,
    sessions,
    token_rules,
    tokens,
    users,
)

__all__ = [
    "applications",
    "bootstrap",
    "groups",
    "identifiers",
    "keypairs",
    "outposts",
    "sessions",
    "token_rules",
    "tokens",
    "users",
]
