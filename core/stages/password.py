"""Password stage (`ak-stage-password`): check the pending user's password.

Attempts are counted in the cache per username and per client address before the password is
checked, and a successful one is taken back; past the limits of `login_throttle` the stage
refuses without checking the password, for the rest of the window.

# SECURITY: an unknown user (pretend_user_exists) costs one argon2 hash like a real one and gets
# the same error; after `failed_attempts_before_cancel` failures the flow is cancelled; failures
# write a `login_failed` event without the password.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from tessera.core import crypto, events, wire
from tessera.core.identity import tokens, users
from tessera.core.policies import reputation
from tessera.core.stages import base, throttle

INVALID = "Invalid password"


Backend = Literal[
    "authentik.core.auth.InbuiltBackend",
    "authentik.core.auth.TokenBackend",
    "authentik.sources.kerberos.auth.KerberosBackend",
    "authentik.sources.ldap.auth.LDAPBackend",
]
INBUILT: Backend = "authentik.core.auth.InbuiltBackend"
TOKEN: Backend = "authentik.core.auth.TokenBackend"  # noqa: S105 - app passwords' backend
LDAP: Backend = "authentik.sources.ldap.auth.LDAPBackend"
# Tessera's names before authentik's (revision 0009 renames the stored ones).
LEGACY_PREFIX = "tessera.core.auth."


def authentik_backend(value: Any) -> Any:
    """An older setting's `tessera.core.auth.<Name>` read as `authentik.core.auth.<Name>`."""
    if isinstance(value, str) and value.startswith(LEGACY_PREFIX):
        return "authentik.core.auth." + value.removeprefix(LEGACY_PREFIX)
    return value


def _inbuilt() -> list[Backend]:
    return [INBUILT]


class Config(base.StageConfig):
    # The user's own password (InbuiltBackend), app passwords (TokenBackend) and the password
    # of the directory an LDAP source brought the user from (LDAPBackend, a bind); the Kerberos
    # backend checks users of sources Tessera does not have: taken, with no effect.
    backends: Annotated[
        list[Annotated[Backend, BeforeValidator(authentik_backend)]], Field(max_length=4)
    ] = Field(default_factory=_inbuilt)
    failed_attempts_before_cancel: Annotated[int, Field(ge=1, le=1000)] = 5
    allow_show_password: bool = False
    # The flow a user runs to change their password (listed in their user settings).
    configure_flow: wire.flows.FlowRef | None = None


class Response(base.ChallengeResponse):
    password: Annotated[str, Field(max_length=1024)]


class Password(base.Stage):
    kind = "password"
    component = "ak-stage-password"
    Config = Config
    Response = Response

    async def before(self, run: base.Run) -> base.Outcome | None:
        # A passkey verified at identification has authenticated the user already (authentik's
        # passkey autofill); the context is server-side, so only a verified assertion sets it.
        if run.state.context.get("auth_method") == base.PASSKEY_METHOD:
            return base.Outcome.next()
        return None

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, Config)
        return {"allow_show_password": self.config.allow_show_password}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(self.config, Config) and isinstance(response, Response)
        # SECURITY: the attempt is counted before the password is checked and taken back only
        # when it succeeds, so that a burst of parallel guesses cannot all pass the throttle
        # before any of them is counted (the counters are atomic across replicas).
        user = await run.pending_user()
        limits = _limits(run, user)
        if not await throttle.reserve(run, limits):
            identifier = run.state.context.get("pending_user_identifier", "")
            async with run.services.store.transaction() as tx:
                return await throttle.refuse(tx, run, {"username": identifier})
        backend = await self._check(run, user, response.password)
        ok = backend is not None
        identifier = str(run.state.context.get("pending_user_identifier", ""))
        if ok and user is not None:
            await throttle.release(run, list(limits))
            await reputation.record(run.services.cache, identifier, run.client_ip, +1)
            run.state.context["auth_method"] = "password"
            if backend == INBUILT and crypto.passwords.needs_rehash(user["password"]):
                async with run.services.store.transaction() as tx:
                    await users.set_password(tx, user["pk"], response.password)
            return base.Outcome.next()
        await reputation.record(run.services.cache, identifier, run.client_ip, -1)
        return await self._failed(run, user)

    async def _check(
        self, run: base.Run, user: dict[str, Any] | None, password: str
    ) -> Backend | None:
        """The backend that accepts the password, of those configured: the user's own password
        (InbuiltBackend), then the directory the user came from (LDAPBackend), then one of their
        app passwords (TokenBackend); None if none does."""
        assert isinstance(self.config, Config)
        stored = user["password"] if user is not None and user["is_active"] else ""
        # SECURITY: the hash is computed whatever the backends, so that the time taken does not
        # depend on them or on whether the user exists.
        if await _verify(stored, password) and INBUILT in self.config.backends:
            return INBUILT
        if await self._directory_accepts(run, user, password):
            return LDAP
        if user is None or TOKEN not in self.config.backends or len(password) > 512:
            return None
        async with run.services.store.read() as tx:
            found = await tokens.authenticate(
                tx, run.services.keyring, password, intent="app_password"
            )
        return TOKEN if found is not None and found[1]["pk"] == user["pk"] else None

    async def _directory_accepts(
        self, run: base.Run, user: dict[str, Any] | None, password: str
    ) -> bool:
        """Whether the directory an LDAP source brought the user from takes the password (the
        LDAP backend; a bind, so a password changed there works at once)."""
        assert isinstance(self.config, Config)
        directories = run.services.directories
        if user is None or not user["is_active"] or LDAP not in self.config.backends:
            return False
        return directories is not None and bool(await directories.check(user, password))

    async def _failed(self, run: base.Run, user: dict[str, Any] | None) -> base.Outcome:
        assert isinstance(self.config, Config)
        key = run.stage_pk
        run.state.failures[key] = run.state.failures.get(key, 0) + 1
        identifier = run.state.context.get("pending_user_identifier", "")
        async with run.services.store.transaction() as tx:
            await events.record(
                tx,
                "login_failed",
                user=user,
                client_ip=run.client_ip,
                context={
                    "username": identifier,
                    "stage": run.stage_name,
                    "http_request": run.http_request,
                },
                retention=run.retention,
            )
        if run.state.failures[key] >= self.config.failed_attempts_before_cancel:
            return base.Outcome.deny("Too many failed attempts; start again.")
        return base.Outcome.retry("password", INVALID, "invalid")


def _limits(run: base.Run, user: dict[str, Any] | None) -> dict[str, int]:
    """The throttle counters of this attempt (the account, the client address) and their
    limits. An account is counted by its username whichever identifier was typed (username,
    email, another case), so that alternating them does not multiply the attempts, and as
    passkey logins count it; an identifier that matches no account is counted as typed."""
    limits = run.services.settings.login_throttle
    identifier = (
        user["username"] if user else str(run.state.context.get("pending_user_identifier", ""))
    )
    return {
        throttle.user_counter(identifier): limits.per_username,
        throttle.ip_counter(run.client_ip): limits.per_ip,
    }


async def _verify(stored: str, password: str) -> bool:
    return await crypto.work.run(crypto.passwords.verify_password, stored, password)
