"""The stage contract: one small class per stage kind, over a typed flow context.

A stage kind declares `kind` (its API name), `component` (its challenge's `component`), a
`Config` model (its settings, stored as JSON on the stage row and validated at the API edge) and
a `Response` model (what the client posts). The executor (`tessera.core.flows.executor`) calls
three hooks: `challenge` renders what the client must answer, `on_valid` acts on a validated
response, `on_invalid` on a response that failed validation. Each returns an `Outcome`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple, TypedDict

import pydantic
from pydantic import ConfigDict

from tessera.core import cache, config, crypto, events, store, wire
from tessera.core.identity import devices

OutcomeKind = Literal["next", "retry", "deny", "redirect", "challenge"]
# `auth_method` of a login by a passkey alone, without a username (authentik's name).
PASSKEY_METHOD = "auth_webauthn_pwl"
# What the flow's context knows about *how the pending user proved who they are* (or, for
# `initial_setup`, which account it may claim): facts about one user, dropped whenever the
# pending user changes (`FlowState.__setattr__`).
AUTH_FACTS = ("auth_method", "auth_method_args", "email_verified", "initial_setup")


class StageConfig(wire.common.Request):
    """Settings of a stage kind (empty by default)."""


class ChallengeResponse(wire.common.Request):
    """What the client posts back; `component` is echoed by authentik's clients."""

    model_config = ConfigDict(extra="ignore")
    component: str = ""


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    errors: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    message: str = ""
    to: str = ""
    challenge: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def next(cls) -> Outcome:
        return cls("next")

    @classmethod
    def retry(cls, field_name: str, message: str, code: str = "invalid") -> Outcome:
        return cls("retry", errors={field_name: [{"string": message, "code": code}]})

    @classmethod
    def deny(cls, message: str) -> Outcome:
        return cls("deny", message=message)

    @classmethod
    def redirect(cls, to: str) -> Outcome:
        return cls("redirect", to=to)


@dataclass(frozen=True)
class Login:
    """A session for the executor to start: whose, how long the server keeps it, and whether
    the cookie outlives the browser (Max-Age) or is a browser session."""

    user_pk: int
    ttl: dt.timedelta
    persistent: bool = True


@dataclass(frozen=True)
class Directories:
    """Passwords held by the directories users came from, set by the source slice that has
    them (the LDAP source), which the stages cannot import.

    `check(user, password)`: True or False when `user` came from a directory that decides,
    None when no directory holds the user's password. `changed(user, password)`: a password
    set in Tessera, written back where the source says so (ValidationFailed on `password`
    when the directory refuses it); True when the directory now holds it and alone decides
    (the caller then keeps no local copy, so that a password later changed or reset in the
    directory does not leave the old one working here)."""

    check: Callable[[dict[str, Any], str], Awaitable[bool | None]]
    changed: Callable[[dict[str, Any], str], Awaitable[bool]]


@dataclass
class Services:
    """What stages may use: the store, the cache, the keyring and the settings, and the
    directories of the sources users came from (None: no source slice)."""

    store: store.Store
    cache: cache.Cache
    keyring: crypto.Keyring
    settings: config.Settings
    directories: Directories | None = None


INSERTED_PREFIX = "inserted:"


class Insertion(TypedDict):
    """A stage inserted into a running plan: which, by which stage, for which pending user.
    `stage` is a stage pk, or with `by` "" the kind of a provided stage (`stages.PROVIDED`)."""

    stage: str
    by: str
    user: int | None


@dataclass
class FlowState:
    """A flow in progress, kept in the cache between requests (JSON round trip)."""

    flow_pk: str
    slug: str
    designation: str
    bindings: list[str]
    index: int = 0
    pending_user: int | None = None
    next: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    # Stages put into the plan while it runs (`insert`), by their entry in `bindings`.
    inserted: dict[str, Insertion] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # SECURITY: authentication facts belong to the user who established them. Whoever sets
        # another pending user (identification after a `restart_with_context`, a passkey, a
        # user_write) starts that user unauthenticated, so that a passkey login of one account
        # cannot carry over to the next username typed and skip its password and MFA stages.
        # Set the pending user first, then the facts it earned. (`__init__` sets `pending_user`
        # before `context` exists: loading a state keeps its facts.)
        known = self.__dict__
        if name == "pending_user" and "context" in known and known["pending_user"] != value:
            for key in AUTH_FACTS:
                self.context.pop(key, None)
        super().__setattr__(name, value)

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def insert(self, stage_pk: str, by: str) -> None:
        """Put `stage_pk` into the plan right after the current entry, on behalf of stage `by`
        (authentik's `plan.insert_stage`). The entry has no binding: its policies and invalid
        response action are none and `retry`, and it is kept for the pending user of now."""
        entry = f"{INSERTED_PREFIX}{len(self.inserted)}"  # never a binding pk (those are UUIDs)
        self.inserted[entry] = {"stage": stage_pk, "by": by, "user": self.pending_user}
        self.bindings.insert(self.index + 1, entry)

    def insert_provided(self, kind: str) -> None:
        """Put the provided stage `kind` (`stages.PROVIDED`: a stage of no flow's bindings,
        authentik's `in_memory_stage`) right after the current entry, unless it is waiting in
        the plan already."""
        for entry in self.bindings[self.index + 1 :]:
            waiting = self.inserted.get(entry)
            if waiting is not None and not waiting["by"] and waiting["stage"] == kind:
                return
        entry = f"{INSERTED_PREFIX}{len(self.inserted)}"
        self.inserted[entry] = {"stage": kind, "by": "", "user": self.pending_user}
        self.bindings.insert(self.index + 1, entry)

    def insertion(self) -> Insertion | None:
        """The current entry's insertion record, or None when it is a binding of the flow."""
        if self.index >= len(self.bindings):
            return None
        return self.inserted.get(self.bindings[self.index])

    def drop_insertions(self) -> None:
        """Forget the inserted entries (the flow restarts from its first stage)."""
        self.bindings = [b for b in self.bindings if b not in self.inserted]
        self.inserted = {}

    @classmethod
    def load(cls, data: dict[str, Any]) -> FlowState:
        return cls(**data)


class Cookie(NamedTuple):
    """A cookie a stage sets: HttpOnly, SameSite=Lax, path "/", Secure behind HTTPS."""

    name: str
    value: str
    max_age: int


@dataclass
class Run:
    """One request's view of a flow in progress, handed to the stage hooks."""

    services: Services
    state: FlowState
    session_user: dict[str, Any] | None
    client_ip: str
    user_agent: str
    secure: bool
    stage_pk: str = ""
    stage_name: str = ""
    # Filled by stages for the executor: a session to start or to end.
    login: Login | None = None
    logout: bool = False
    # Rows read during this request, with the store's write stamp of their table at reading.
    memo: dict[tuple[str, object], tuple[int, Any]] = field(default_factory=dict)
    # The request's cookies, and cookies a stage sets on the response (with a next outcome).
    cookies: Mapping[str, str] = field(default_factory=dict)
    set_cookies: list[Cookie] = field(default_factory=list)
    # Set when the stage runs as an inserted entry of the plan (`FlowState.insert`).
    inserted: Insertion | None = None
    method: str = "GET"  # the request's method and path (`http_request` of login events)
    path: str = ""

    @property
    def http_request(self) -> dict[str, str]:
        """authentik's `http_request` event context of this request."""
        return events.http_request(self.method, self.path, self.user_agent)

    @property
    def retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.services.settings.events.retention_days)

    async def pending_user(self) -> dict[str, Any] | None:
        if self.state.pending_user is None:
            return None
        return await self.user(self.state.pending_user)

    async def user(self, pk: int) -> dict[str, Any] | None:
        """The user row, read once per request unless this process wrote users since."""
        db = self.services.store
        stamp = db.write_count("users")
        known = self.memo.get(("users", pk))
        if known is None or known[0] != stamp:
            async with db.read() as tx:
                known = (stamp, await store.crud.find(tx, "users", pk=pk))
                # The user's devices come along in the same transaction: the MFA stage that
                # follows a password in the same request asks for them next (`devices`).
                if known[1] is not None:
                    found = await devices.confirmed(tx, pk, devices.KINDS)
                    self.memo[("devices", pk)] = (db.write_count(devices.TABLE), found)
            self.memo[("users", pk)] = known
        return dict(known[1]) if known[1] is not None else None  # a copy: callers may change it

    async def flow_slug(self, ref: str | None) -> str | None:
        """The slug of the flow a setting names: by pk (a slug, as older settings held, is
        taken as it is); None when there is none or it is gone."""
        if not ref:
            return None
        try:
            pk = str(uuid.UUID(ref))
        except ValueError:
            return ref
        async with self.services.store.read() as tx:
            row = await store.crud.find(tx, "flows", pk=pk)
        return str(row["slug"]) if row is not None else None

    async def devices(self, user_pk: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """The user's confirmed devices of these kinds, read once per request unless this
        process wrote devices since."""
        db = self.services.store
        stamp = db.write_count(devices.TABLE)
        known = self.memo.get(("devices", user_pk))
        if known is None or known[0] != stamp:
            async with db.read() as tx:
                known = (stamp, await devices.confirmed(tx, user_pk, devices.KINDS))
            self.memo[("devices", user_pk)] = known
        return [dict(row) for row in known[1] if row["kind"] in kinds]


def mfa_passed(run: Run, device: dict[str, Any]) -> None:
    """Note a passed second factor: `auth_method` `auth_mfa` and the device, for user_login and
    the login event."""
    run.state.context["auth_method"] = "auth_mfa"
    args = run.state.context.setdefault("auth_method_args", {})
    args.setdefault("mfa_devices", []).append(
        {"pk": device["pk"], "device_class": device["kind"], "name": device["name"]}
    )


def device_configured(run: Run, device: dict[str, Any]) -> None:
    """A setup stage confirmed `device`. When the stage was inserted by the validate stage
    (`not_configured_action: configure`), the fresh device counts as the flow's second factor,
    as in authentik."""
    if run.inserted is not None:
        mfa_passed(run, device)


class Stage:
    """Base of every stage kind."""

    kind: ClassVar[str]
    component: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig
    Response: ClassVar[type[ChallengeResponse] | None] = ChallengeResponse
    # Computed fields of the kind's API object: name -> (annotation, value).
    read_only: ClassVar[dict[str, tuple[Any, Any]]] = {}

    def __init__(self, config: StageConfig) -> None:
        self.config = config

    def asks(self) -> bool:
        """Whether the stage shows a page: a kind without a `Response` never does; a kind with
        one may decide by its settings (user_login asks only with a remember-me offset)."""
        return self.Response is not None

    async def before(self, run: Run) -> Outcome | None:
        """Decide without asking (e.g. consent already given); None shows the challenge."""
        return None

    async def challenge(self, run: Run) -> dict[str, Any]:
        """The challenge's own fields (the executor adds component, flow_info, errors)."""
        return {}

    async def on_valid(self, run: Run, response: ChallengeResponse) -> Outcome:
        return Outcome.next()

    async def on_invalid(self, run: Run, errors: dict[str, list[dict[str, str]]]) -> Outcome:
        return Outcome("retry", errors=errors)


_RESPONSE_MODELS: dict[str, type[ChallengeResponse]] = {}


def response_model(kind: type[Stage]) -> type[ChallengeResponse]:
    """What the executor reads a kind's answers with: its `Response` under authentik's name
    (`PasswordChallengeResponseRequest`) with its `component` as the default, as authentik's
    client sends it. Any other `component` is accepted and ignored, as in authentik; the flow
    state, not the client, says which stage is answered. The OpenAPI document lists these."""
    assert kind.Response is not None, f"{kind.kind} shows no challenge"
    found = _RESPONSE_MODELS.get(kind.kind)
    if found is None:
        found = _RESPONSE_MODELS[kind.kind] = _answer_model(kind, kind.Response)
    return found


def _answer_model(kind: type[Stage], response: type[ChallengeResponse]) -> type[ChallengeResponse]:
    challenge = wire.challenges.BY_COMPONENT[kind.component]
    model: type[ChallengeResponse] = pydantic.create_model(
        f"{challenge.__name__}ResponseRequest",
        __base__=response,
        __module__=kind.__module__,
        component=(str, kind.component),
    )
    return model
