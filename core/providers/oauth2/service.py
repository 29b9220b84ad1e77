"""What the OAuth2 endpoints share: the store, cache, keyring, the client snapshot and the flow
executor, plus the service accounts that client_credentials tokens are issued for."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from tessera.core import cache, config, crypto, store
from tessera.core.flows import definitions, executor
from tessera.core.identity import identifiers, util
from tessera.core.identity import users as users_store
from tessera.core.providers.oauth2 import claimcache, tokens
from tessera.core.providers.oauth2.clients import Client, Clients
from tessera.core.store import crud

# A service account row is reused for this long (it changes only when an admin edits it).
ACCOUNT_MAX_AGE = 10.0
# Users and their groups, as userinfo reads them, are reused for this long unless a commit to
# users or memberships was made or heard of in between (`Store.state_generation`; while the bus
# is down other replicas' writes show after at most this).
USER_MAX_AGE = 5.0


@dataclass
class Service:
    db: store.Store
    cache: cache.Cache
    keyring: crypto.Keyring
    settings: config.Settings
    clients: Clients
    flows: executor.Executor
    _accounts: dict[tuple[int, str], tuple[float, Any]] = field(default_factory=dict)
    _account_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _users: dict[int, tuple[float, tuple[int, int], dict[str, Any] | None, list[str]]] = field(
        default_factory=dict
    )
    claim_cache: claimcache.ClaimCache = field(init=False)

    def __post_init__(self) -> None:
        self.claim_cache = claimcache.ClaimCache(self.db)

    @property
    def definitions(self) -> definitions.Definitions:
        return self.flows.definitions

    @property
    def retention(self) -> dt.timedelta:
        return dt.timedelta(days=self.settings.events.retention_days)

    async def service_account(self, client: Client) -> Any:
        """The provider's client_credentials account (`ak-<slug>-client_credentials`, type
        service_account, created on first use) with its groups, as a `tokens.Subject`. It is
        kept for ACCOUNT_MAX_AGE seconds: the token endpoint's hot path reads nothing then."""
        key = (client.pk, client.service_account)
        now = time.monotonic()
        memo = self._accounts.get(key)
        if memo is None or now - memo[0] > ACCOUNT_MAX_AGE:
            async with self._account_lock:
                memo = self._accounts.get(key)
                if memo is None or now - memo[0] > ACCOUNT_MAX_AGE:
                    user = await self._load_account(client)
                    memo = (now, await self.subject_of(user))
                    self._accounts[key] = memo
        return memo[1]

    async def user_and_groups(
        self, tx: store.Tx, user_pk: int
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """A user row and the pks of their groups, from a short-lived memo when it is fresh."""
        # Commits to users or memberships, of this process or (heard through the bus) others.
        stamp = (self.db.state_generation, self.db.write_count("users"))
        now = time.monotonic()
        memo = self._users.get(user_pk)
        if memo is not None and memo[1] == stamp and now - memo[0] < USER_MAX_AGE:
            return memo[2], memo[3]
        user = await crud.find(tx, "users", pk=user_pk)
        member_of = (await crud.groups_of_users(tx, [user_pk]))[user_pk] if user else []
        if len(self._users) > 10_000:
            self._users.clear()
        self._users[user_pk] = (now, stamp, user, member_of)
        return user, member_of

    async def subject_of(
        self, user: dict[str, Any], client: Client | None = None
    ) -> tokens.Subject:
        """`user` with their groups (and inherited ones), as scope mappings see them; for a
        `client` whose subjects are addresses, whether the user's address is theirs alone."""
        snapshot = await self.definitions.get()
        async with self.db.read() as tx:
            member_of = (await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]]
            by_email = client is not None and client.sub_mode == "user_email"
            unique = by_email and await identifiers.email_unique(tx, user)
        subject = subject_with(snapshot, user, member_of)
        subject.email_unique = unique
        return subject

    async def _load_account(self, client: Client) -> dict[str, Any]:
        name = client.service_account
        async with self.db.read() as tx:
            user = await users_store.find_by_username(tx, name)
        if user is not None:
            return user
        async with self.db.transaction() as tx:
            user = await users_store.find_by_username(tx, name)
            if user is not None:
                return user
            slug = client.application["slug"] if client.application else str(client.pk)
            return await crud.insert(
                tx,
                users_store.TABLE,
                {
                    "username": name,
                    "username_folded": users_store.fold(name),
                    "uuid": util.new_uuid(),
                    "name": f"Service account of {client.name}"[:256],
                    "email": "",
                    "password": "",
                    "is_active": True,
                    "type": "service_account",
                    "path": f"goauthentik.io/apps/{slug}",
                    "attributes": {},
                    "date_joined": util.now(),
                },
            )


def subject_with(
    snapshot: definitions.Snapshot, user: dict[str, Any], member_of: list[str]
) -> tokens.Subject:
    member_of = [g for g in member_of if g in snapshot.tree.rows]
    ancestors = sorted({a for g in member_of for a in snapshot.tree.ancestors(g)})
    return tokens.Subject(
        user,
        [snapshot.tree.rows[g] for g in member_of],
        [snapshot.tree.rows[a] for a in ancestors],
    )


def build(
    db: store.Store,
    cache_backend: cache.Cache,
    keyring: crypto.Keyring,
    settings: config.Settings,
    flows: executor.Executor,
) -> Service:
    return Service(db, cache_backend, keyring, settings, Clients(db, keyring), flows)
