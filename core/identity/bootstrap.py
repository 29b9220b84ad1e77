"""First-start bootstrap, as authentik's bootstrap blueprint does it.

Creates group `authentik Admins` (superuser) and user `akadmin` in it, with the bootstrap password
and email when given, and the bootstrap API token. Objects are created when absent and never
overwritten, so restarting with other values keeps what the admin has changed since.

# SECURITY: the bootstrap token's identifier is reserved (`token_rules`); a token found under it
# that is not the bootstrap's own (an API token of `akadmin`) was put there by someone else: it
# is deleted and replaced, and `Outcome.replaced_token` tells the caller, which records it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tessera.core import crypto, store, wire
from tessera.core.identity import groups, tokens, users
from tessera.core.store import crud

ADMIN_USERNAME = "akadmin"
ADMIN_GROUP = "authentik Admins"
BOOTSTRAP_TOKEN_ID = "authentik-bootstrap-token"  # noqa: S105 - an identifier, not a key


@dataclass(frozen=True)
class Outcome:
    created_admin: bool
    created_token: bool
    needs_setup: bool  # akadmin has no usable password yet: show the initial-setup URL
    # A token that held the bootstrap token's identifier without being its own, now deleted:
    # its pk, owner and intent (never its key).
    replaced_token: dict[str, Any] | None = None


async def run(
    tx: store.Tx,
    keyring: crypto.Keyring,
    *,
    password: str | None,
    token: str | None,
    email: str,
) -> Outcome:
    await crud.lock(tx, "bootstrap")  # several replicas may start at once
    admins = await groups.ensure(tx, ADMIN_GROUP, is_superuser=True)
    admin = await users.find_by_username(tx, ADMIN_USERNAME)
    created_admin = admin is None
    if admin is None:
        body = wire.core.UserRequest(
            username=ADMIN_USERNAME, name="authentik Default Admin", email=email or ""
        )
        admin = await users.create(tx, body)
        await crud.add_member(tx, user_pk=admin["pk"], group_pk=admins["pk"])
        if password:
            await users.set_password(tx, admin["pk"], password)
    created_token, replaced = False, None
    if token:
        replaced = await _evict_squatter(tx, admin["pk"])
    if token and not await crud.exists(tx, tokens.TABLE, identifier=BOOTSTRAP_TOKEN_ID):
        body_t = wire.core.TokenRequest(
            identifier=BOOTSTRAP_TOKEN_ID, intent="api", expiring=False, description="bootstrap"
        )
        await tokens.create(tx, keyring, body_t, user_pk=admin["pk"], key=token, system=True)
        created_token = True
    current = await crud.get(tx, "users", pk=admin["pk"])
    return Outcome(created_admin, created_token, not current["password"], replaced)


async def _evict_squatter(tx: store.Tx, admin_pk: int) -> dict[str, Any] | None:
    """Delete the token under the bootstrap identifier unless it is an API token of the admin
    (the bootstrap's own, perhaps edited since: kept); what was deleted, or None."""
    found = await crud.find(tx, tokens.TABLE, identifier=BOOTSTRAP_TOKEN_ID)
    if found is None or (found["user_pk"] == admin_pk and found["intent"] == "api"):
        return None
    await crud.delete(tx, tokens.TABLE, pk=found["pk"])
    return {"pk": found["pk"], "user_pk": found["user_pk"], "intent": found["intent"]}


async def recovery_key(
    tx: store.Tx, keyring: crypto.Keyring, username: str, minutes: int
) -> str | None:
    """A single-use recovery key for `username`, or None when there is no such user."""
    user = await users.find_by_username(tx, username)
    if user is None:
        return None
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    body = wire.core.TokenRequest(
        identifier=f"ak-recovery-{user['pk']}-{crypto.secrets.new_token(12)}",
        intent="recovery",
        expires=expires,
        expiring=True,
        description=f"Recovery link generated for {user['username']}",
    )
    _, key = await tokens.create(tx, keyring, body, user_pk=user["pk"], system=True)
    return key
