"""An LDAP simple bind in one call: the provider's bind flow and the application's policies.

authentik's outpost replays the bind flow over the flow executor's HTTP API, a round trip per
stage, then asks for the application's verdict and the user. Here the core drives its own flow
executor in process, answering each challenge as authentik's outpost does: identification with
the username, password with the password, authenticator validation with the code given after
the last `;` (when `mfa_support` is on and the suffix is 6 digits or 8 letters and digits),
user login with "remember me". So the flow's semantics hold unchanged: its policies and stage
bindings, the login throttle and reputation (per username and per client address), the
`login_failed` events the stages write and the `login` event and session the executor makes.
Then the application's policy bindings decide; a refusal ends the session just opened.

Any other challenge (a prompt, a consent, a passkey-only second factor) cannot be answered over
LDAP: the bind is refused as `flow_error` or `mfa_required`.

# SECURITY: a bind whose password the flow refused costs a second password verification: the
# inactive user's stored hash (so a deactivated account with its right password is told
# `access_denied`, as the contract asks) or a hash of nothing for everyone else, so the time
# taken does not tell an inactive account from any other. The password never reaches a log or
# an event (the stages record the username only).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from typing import Any

from tessera.core import crypto, store, wire
from tessera.core.flows import app_access, executor
from tessera.core.identity import groups, sessions, users, util
from tessera.core.providers.ldap import directory, grants
from tessera.core.stages import attempts, authenticator_validate, throttle
from tessera.core.store import crud

MAX_STEPS = 10  # authentik's outpost gives up at this depth too
USER_AGENT = "Tessera LDAP outpost"
SESSIONS = "ldap_sessions"
_THROTTLED = {
    throttle.REFUSED,
    "Too many failed attempts; try again later.",  # the second factor's own counter
    "Too many failed logins; try again later.",  # a reputation policy bound to the flow
}
_ANSWERED_WRONG = {authenticator_validate.NOT_AUTHENTICATED, attempts.CANCELLED}


class Refused(Exception):
    """The bind is refused: `reason` (wire.ldap.BindReason) and a detail for the outpost's log."""

    STATUS = {
        "invalid_credentials": 401,
        "mfa_required": 401,
        "flow_error": 401,
        "access_denied": 403,
        "throttled": 429,
    }

    def __init__(self, reason: wire.ldap.BindReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return self.STATUS[self.reason]

    def body(self) -> wire.ldap.BindRefused:
        return wire.ldap.BindRefused(reason=self.reason, detail=self.detail)


def split_code(password: str, mfa_support: bool) -> tuple[str, str]:
    """(password, code): the code after the last `;` when MFA support is on and it looks like a
    TOTP code (6 digits) or a static code (8 ASCII letters and digits); else no code."""
    if not mfa_support:
        return password, ""
    head, sep, code = password.rpartition(";")
    if not sep or not code.isascii():
        return password, ""
    if (len(code) == 6 and code.isdigit()) or (len(code) == 8 and code.isalnum()):
        return head, code
    return password, ""


def client_address(given: str, fallback: str) -> str:
    """The LDAP client's address the outpost reports, or the outpost's own when it gives none
    (or something that is not an address)."""
    try:
        return str(ipaddress.ip_address(given.strip()))
    except ValueError:
        return fallback


@dataclasses.dataclass
class Bind:
    """One bind's inputs."""

    provider: dict[str, Any]  # the ldap_providers row
    application: dict[str, Any]
    username: str
    password: str
    code: str
    client_ip: str
    path: str  # the request's, for the events' http_request


class _Driver:
    """Answers the bind flow's challenges until it ends."""

    def __init__(self, flows: executor.Executor, bind: Bind, slug: str) -> None:
        self.flows = flows
        self.bind = bind
        self.slug = slug
        self.browser = executor.Browser(
            key=secrets.token_urlsafe(32),
            user=None,
            client_ip=bind.client_ip,
            user_agent=USER_AGENT,
            secure=True,
            method="POST",
            path=bind.path,
        )
        self.answered: set[str] = set()
        self.password_failed = False

    async def run(self) -> dict[str, Any]:
        """The logged-in user's row, or Refused."""
        try:
            reply = await self.flows.get(self.slug, self.browser, {})
            for _ in range(MAX_STEPS):
                answer = self._answer(reply.body)
                if answer is None:
                    return self._done(reply)
                reply = await self.flows.post(self.slug, self.browser, answer)
            raise Refused("flow_error", "The bind flow did not end.")
        except Refused:
            await self.flows.abandon(self.slug, self.browser)
            raise

    def _done(self, reply: executor.Reply) -> dict[str, Any]:
        if reply.new_session is None or self.browser.user is None:
            raise Refused("flow_error", "The bind flow ended without logging the user in.")
        return self.browser.user

    def _answer(self, body: dict[str, Any]) -> dict[str, Any] | None:
        component = str(body.get("component", ""))
        if component == executor.REDIRECT:
            return None
        if component == executor.DENIED:
            raise _denied(str(body.get("error_message", "")))
        if component == executor.FLOW_ERROR:
            raise Refused("flow_error", "The bind flow failed; the core's log has the request id.")
        if component in self.answered:  # asked again: the answer was refused
            if component == "ak-stage-password":
                self.password_failed = True
            raise Refused("invalid_credentials", "Invalid credentials.")
        self.answered.add(component)
        if component == "ak-stage-identification":
            return {"component": component, "uid_field": self.bind.username}
        if component == "ak-stage-password":
            return {"component": component, "password": self.bind.password}
        if component == "ak-stage-authenticator-validate":
            return self._second_factor(body)
        if component == "ak-stage-user-login":
            return {"component": component, "remember_me": True}
        raise Refused("flow_error", f"The bind flow asks for {component}, which LDAP cannot give.")

    def _second_factor(self, body: dict[str, Any]) -> dict[str, Any]:
        classes = {c.get("device_class") for c in body.get("device_challenges", [])}
        if not classes:
            raise Refused("flow_error", "The bind flow asks to set up an authenticator.")
        if not self.bind.code or not classes & {"totp", "static"}:
            raise Refused("mfa_required", "A second factor is required: append ;<code>.")
        return {"component": "ak-stage-authenticator-validate", "code": self.bind.code}


def _denied(message: str) -> Refused:
    if message in _THROTTLED:
        return Refused("throttled", message)
    if message in _ANSWERED_WRONG:
        return Refused("invalid_credentials", "Invalid credentials.")
    return Refused("access_denied", message or "Access denied.")


async def _inactive(db: store.Store, bind: Bind) -> bool:
    """After a refused password: whether it was the right password of an inactive account. One
    verification either way (see the module's SECURITY note)."""
    async with db.read() as tx:
        user = await users.find_by_username(tx, bind.username)
    stored = user["password"] if user is not None and not user["is_active"] else ""
    return await crypto.work.run(crypto.passwords.verify_password, stored, bind.password)


async def run(flows: executor.Executor, bind: Bind) -> wire.ldap.BindResult:
    """The bind's result, or Refused."""
    services = flows.services
    snapshot = await flows.definitions.get()
    flow = snapshot.flow_named(bind.provider["authorization_flow"])
    if flow is None:
        raise Refused("flow_error", "The provider's bind flow does not exist.")
    driver = _Driver(flows, bind, flow["slug"])
    try:
        user = await driver.run()
    except Refused as refused:
        if driver.password_failed and await _inactive(services.store, bind):
            raise Refused("access_denied", "This account is inactive.") from None
        raise refused
    digest = sessions.digest(driver.browser.key)
    verdict = await app_access.verdicts(
        services, snapshot, [bind.application], user, bind.client_ip
    )
    if not app_access.opens(verdict[0]):
        async with services.store.transaction() as tx:
            await sessions.end_digest(tx, digest)
        messages = "; ".join(verdict[0].messages)
        raise Refused("access_denied", messages or "The application's policies deny access.")
    async with services.store.transaction() as tx:
        return await _opened(tx, bind, user, digest)


async def _opened(
    tx: store.Tx, bind: Bind, user: dict[str, Any], digest: str
) -> wire.ldap.BindResult:
    """Note the session as this provider's and answer the user, their groups and permission."""
    session = await crud.find(tx, sessions.TABLE, key_digest=digest)
    if session is None:  # ended meanwhile (a logout everywhere, a deactivation)
        raise Refused("access_denied", "The session ended during the bind.")
    await crud.insert(
        tx,
        SESSIONS,
        {
            "session_digest": digest,
            "provider": bind.provider["pk"],
            "user_pk": user["pk"],
            "created": util.now(),
        },
    )
    tree = await groups.Tree.load(tx)
    direct = (await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]]
    me, mine = await directory.own_view(tx, user, tree, direct)
    may = await grants.may_search(tx, bind.provider["pk"], user, tree, direct)
    return wire.ldap.BindResult.model_construct(
        user=me,
        groups=mine,
        has_search_permission=may,
        session_id=digest,
        expires=session["expires"],
    )


__all__ = ["Bind", "Refused", "client_address", "run", "split_code"]
