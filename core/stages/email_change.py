"""A new email address proven before a user_write stage saves it.

In a flow that lets users change their address and has an email stage (prompt, then email, then
user_write), the email stage mails its link to the address the prompt collected, not to the
stored one, when that address is new and the user is authenticated in this flow or logged in as
themselves (`recipient`). Opening the link proves control of that address only: the resumed flow
gets `VERIFIED` (user and address), never `auth_method` or `email_verified`, which would claim
control of the account. user_write then saves a changed address only when the flow has no email
stage, or when this address was proven for this user (`check`).

Called by the email stage (`stages.email`) and the user_write stage (`stages.user_write`).
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store
from tessera.core.stages import base
from tessera.core.store import crud

VERIFIED = "email_change_verified"  # context: {"user": pk, "address": the proven address}
UNVERIFIED = "Open the link we sent to this address to confirm it, then save again."


def _proven(run: base.Run, user: dict[str, Any]) -> bool:
    session = run.session_user
    return bool(run.state.context.get("auth_method")) or (
        session is not None and session["pk"] == user["pk"]
    )


def recipient(run: base.Run, user: dict[str, Any]) -> str | None:
    """The new address the flow's answers would give `user`, when the link must go there
    (None: mail the stored address, as for recovery)."""
    wanted = run.state.context.get("prompt_data", {}).get("email")
    if not isinstance(wanted, str) or not wanted:
        return None
    if wanted.casefold() == str(user["email"]).casefold() or not _proven(run, user):
        return None
    return wanted


def resumed_context(context: dict[str, Any], user: dict[str, Any], address: str) -> dict[str, Any]:
    """The context a link to a new address resumes with.

    # SECURITY: only the address is proven; `auth_method`, `email_verified` (set for links to
    # the stored address) and the stage's activation are left out, so a link sent to an address
    # someone typed can neither log them in nor reset the account's password.
    """
    return {**context, VERIFIED: {"user": user["pk"], "address": address.casefold()}}


async def _has_email_stage(tx: store.Tx, run: base.Run) -> bool:
    bindings = await crud.find_many(tx, "flow_stage_bindings", "pk", run.state.bindings)
    stage_pks = [b["stage"] for b in bindings]
    return any(s["kind"] == "email" for s in await crud.find_many(tx, "stages", "pk", stage_pks))


async def check(tx: store.Tx, run: base.Run, user: dict[str, Any], address: str) -> None:
    """ValidationFailed on `email` when `user` is to get the new `address` in a flow with an
    email stage that has not proven it.

    # SECURITY: where the flow can verify an address, an unverified one is never saved, so it
    # cannot become the user's login name, recovery address or `user_email` subject unchecked.
    """
    if not address or address.casefold() == str(user["email"]).casefold():
        return
    if not await _has_email_stage(tx, run):
        return
    proven = run.state.context.get(VERIFIED)
    if (
        isinstance(proven, dict)
        and proven.get("user") == user["pk"]
        and proven.get("address") == address.casefold()
    ):
        return
    raise errors.ValidationFailed.one("email", UNVERIFIED)


async def target(run: base.Run) -> tuple[dict[str, Any], str | None] | None:
    """Whom the email stage writes to: the pending user (or, for a new address, the logged-in
    user whose settings these are) and the new address to verify (None: the stored address).
    None when there is nobody to write to."""
    user = await run.pending_user()
    if user is None and run.session_user is not None:
        address = recipient(run, run.session_user)
        return (run.session_user, address) if address else None
    if user is None:
        return None
    address = recipient(run, user)
    return (user, address) if address or user["email"] else None
