"""Which tokens are a user's own to manage, and which identifiers belong to the system.

`tokens.create` and `tokens.update` refuse reserved identifiers unless the caller is the system
(bootstrap, recovery keys, the server's command line); the admin API's token resource
(`api/resources/tokens.py`) and the portal's token list and forms (`web`) read a user's own
tokens through `own_filters` and `is_own`, so both show and change exactly the same tokens.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors
from tessera.core.store import crud

# The intents a user manages for themselves (portal, API); the others are the system's own.
SELF_SERVICE_INTENTS = ("api", "app_password")
# Identifiers the system gives its own tokens (authentik's `authentik-bootstrap-token`,
# `ak-outpost-<pk>-api`, `ak-recovery-...`), compared case-insensitively.
RESERVED_PREFIXES = ("authentik-", "ak-")
RESERVED = "This identifier is reserved for the system."


def reserved(identifier: str) -> bool:
    return identifier.casefold().startswith(RESERVED_PREFIXES)


def check_identifier(identifier: str, current: str | None = None) -> None:
    """ValidationFailed on `identifier` when it is reserved and not the token's own already.

    # SECURITY: without this any user could take `authentik-bootstrap-token` (or an outpost's
    # identifier) once the system's token is gone, and the system would later find theirs. The
    # check comes before the existence check, so the answer is the same whether or not a token
    # of that identifier exists, and whoever owns it (no existence oracle).
    """
    if identifier != current and reserved(identifier):
        raise errors.ValidationFailed.one("identifier", RESERVED)


def own_filters(user_pk: int) -> list[crud.Filter]:
    """The store filters of the tokens `user_pk` manages: theirs, self-service, not managed."""
    return [
        crud.Filter("user_pk", "eq", user_pk),
        crud.Filter("intent", "in", list(SELF_SERVICE_INTENTS)),
        crud.Filter("managed", "isnull", True),
    ]


def is_own(row: dict[str, Any], user_pk: int) -> bool:
    """Whether `row` is one of the tokens `own_filters(user_pk)` selects.

    # SECURITY: another user's token, a system one (recovery, verification) or a managed one (an
    # outpost's, the operator's) is not the user's to see, change or delete.
    """
    return (
        row["user_pk"] == user_pk
        and row["intent"] in SELF_SERVICE_INTENTS
        and row["managed"] is None
    )
