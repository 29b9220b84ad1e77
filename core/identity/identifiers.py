"""The names a user is found by: usernames and email addresses, and the rules that keep them apart.

Identification finds a user by username or by email address, a recovery mail goes to the address
of the user found, and an OAuth2 provider with `sub_mode: user_email` names the user by address.
So a name one user can set must never find another user:

- a username is unique regardless of case (`users.fold`, a unique column);
- a username may not be another user's email address, nor an address another user's username;
- an address a user sets for themselves (a flow's user_write stage) is nobody else's address.

Administrators may still give several users one address (as in authentik): such an address
identifies none of them (`find_by_email`) and gives them no `user_email` subject (`email_unique`).
Values are compared as the identification stage compares them: usernames case-folded, addresses
with the database's `lower()`. Only changed values are checked, so rows from before these rules
can still be edited.

Called by `users.create` and `users.update` (every writer of users: the admin API, the user_write
stage, bootstrap) inside their transaction; reads through `store.crud`.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store
from tessera.core.store import crud

TABLE = "users"
LOCK = "user-identifiers"
USERNAME_TAKEN = "This username is already taken."
# Usernames the system gives its own accounts (`ak-<slug>-client_credentials`, outposts'):
# a user may not choose them for themselves (`reserved`).
RESERVED_PREFIXES = ("ak-", "authentik-")
USERNAME_RESERVED = "Usernames beginning with ak- or authentik- are reserved for the system."
EMAIL_TAKEN = "This email address is already in use."


def fold(username: str) -> str:
    """The case-insensitive form under which usernames are unique."""
    return username.casefold()


def _email_filter(address: str) -> crud.Filter:
    return crud.Filter("email", "ieq", address)


async def find_by_email(tx: store.Tx, address: str) -> dict[str, Any] | None:
    """The one user with this address (case-insensitive); None when none or several have it."""
    if not address:
        return None
    rows, count = await crud.page(tx, TABLE, crud.Query(filters=[_email_filter(address)], limit=2))
    return rows[0] if count == 1 else None


async def email_unique(tx: store.Tx, user: dict[str, Any]) -> bool:
    """Whether `user` has an address and no other user has the same one."""
    found = await find_by_email(tx, str(user.get("email") or ""))
    return found is not None and found["pk"] == user["pk"]


def reserved(username: str) -> bool:
    """Whether `username` is one the system names its own accounts with.

    # SECURITY: a provider's client_credentials account is found by its name on first use; a
    # user who enrolled under that name first would otherwise become the client's identity.
    """
    return fold(username).startswith(RESERVED_PREFIXES)


async def _others(tx: store.Tx, filters: list[crud.Filter], except_pk: int | None) -> bool:
    if except_pk is not None:
        filters = [*filters, crud.Filter("pk", "ne", except_pk)]
    return bool(await crud.rows(tx, TABLE, filters, limit=1))


async def check(
    tx: store.Tx,
    *,
    username: str,
    email: str,
    current: dict[str, Any] | None = None,
    self_service: bool = False,
) -> None:
    """ValidationFailed (on `username` or `email`) when the values a user row is about to get
    would find another user; `current` is the row being changed (None for a new user) and
    `self_service` says the user sets these values for themselves.

    # SECURITY: one rule for every writer of users, under a named lock so that two concurrent
    # writers cannot both pass the check with the same value. Without it a user could rename
    # themselves to another user's address (identification, recovery and `user_email` subjects
    # would find them instead) or take another user's address.
    """
    except_pk = current["pk"] if current is not None else None
    new_username = current is None or fold(username) != current["username_folded"]
    new_email = bool(email) and (
        current is None or email.casefold() != str(current["email"]).casefold()
    )
    if not new_username and not new_email:
        return
    await crud.lock(tx, LOCK)
    problems: dict[str, list[str]] = {}
    if new_username and self_service and reserved(username):
        raise errors.ValidationFailed({"username": [USERNAME_RESERVED]})
    if new_username and (
        await _others(tx, [crud.Filter("username_folded", "eq", fold(username))], except_pk)
        or await _others(tx, [_email_filter(username)], except_pk)
    ):
        problems["username"] = [USERNAME_TAKEN]
    if new_email and (
        await _others(tx, [crud.Filter("username_folded", "eq", fold(email))], except_pk)
        or await _others(tx, [crud.Filter("username", "ieq", email)], except_pk)
        or (self_service and await _others(tx, [_email_filter(email)], except_pk))
    ):
        problems["email"] = [EMAIL_TAKEN]
    if problems:
        raise errors.ValidationFailed(problems)
