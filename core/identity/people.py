"""A user as other objects name them: the stable `uid`, and authentik's `PartialUser`.

Apart from `identity.users` so that `identity.groups` (a group's `users_obj`) can use it without
importing the users module, which imports groups.
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, wire


def uid(keyring: crypto.Keyring, user_pk: int) -> str:
    """A stable, opaque per-install identifier of the user (authentik's `uid`)."""
    return keyring.digest(f"user-uid:{user_pk}")


def partial(keyring: crypto.Keyring, row: dict[str, Any]) -> wire.core.PartialUser:
    """authentik's `PartialUser` of a user row (a group's `users_obj`, a binding's `user_obj`,
    an invitation's `created_by`)."""
    return wire.core.PartialUser.model_construct(
        pk=row["pk"],
        username=row["username"],
        name=row["name"],
        is_active=row["is_active"],
        last_login=row["last_login"],
        email=row["email"],
        attributes=row["attributes"],
        uid=uid(keyring, row["pk"]),
    )
