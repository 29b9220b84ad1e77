"""OAuth2 clients as the endpoints need them, read from the store once and kept in process.

The token endpoint and userinfo are hot paths: a `Client` holds its provider's settings already
parsed (durations, redirect URIs, the client secret unsealed, signing keys imported), found by
client ID or by application slug. The snapshot is dropped as `flows.definitions` is: when a commit
touches `store.CONFIG_TABLES` (providers, applications, mappings and key pairs are among them),
when the bus says another replica did, and after `MAX_AGE` seconds at the latest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import regex

from tessera.core import crypto, store, wire
from tessera.core.identity import keypairs
from tessera.core.policies import sandbox
from tessera.core.providers.oauth2 import records
from tessera.core.store import crud, snapshots

MAX_AGE = 10.0
REGEX_TIMEOUT = 0.05  # seconds for matching one redirect URI against one registered pattern


@dataclass(frozen=True)
class Mapping:
    pk: str
    scope: str
    name: str
    managed: str | None
    program: sandbox.Program


@dataclass
class Client:
    pk: int
    name: str
    client_id: str
    secret: crypto.Secret
    client_type: str
    redirect_uris: list[wire.oauth2.RedirectURI]
    signing: crypto.jwt.SigningKey
    verify_keys: list[crypto.jwt.SigningKey]  # the signing key first, then rotated-out ones
    code_ttl: dt.timedelta
    access_ttl: dt.timedelta
    refresh_ttl: dt.timedelta
    sub_mode: str
    issuer_mode: str
    include_claims: bool
    mappings: dict[str, list[Mapping]]  # by scope name
    authorization_flow: str  # slug
    invalidation_flow: str | None  # slug; the default invalidation flow when its own is gone
    grant_types: frozenset[str]  # authentik's grant type names the client may use
    logout_uri: str
    logout_method: str
    application: dict[str, Any] | None
    service_account: str = field(init=False)

    def __post_init__(self) -> None:
        slug = self.application["slug"] if self.application else str(self.pk)
        self.service_account = f"ak-{slug}-client_credentials"

    @property
    def confidential(self) -> bool:
        return self.client_type == "confidential"

    def may_use(self, grant_type: str) -> bool:
        """Whether the provider allows this grant (authentik's names, `grant_types`)."""
        return grant_type in self.grant_types

    def issuer(self, base: str) -> str:
        if self.issuer_mode == "global" or self.application is None:
            return base + "/"
        return f"{base}/application/o/{self.application['slug']}/"

    def redirect_allowed(self, uri: str, kind: str = "authorization") -> bool:
        """Exact string match for strict entries; a full (anchored) match for regex ones."""
        for entry in self.redirect_uris:
            if entry.redirect_uri_type != kind:
                continue
            if entry.matching_mode == "strict":
                if crypto.secrets.equal(entry.url, uri):
                    return True
                continue
            try:
                if regex.fullmatch(entry.url, uri, timeout=REGEX_TIMEOUT):
                    return True
            except (TimeoutError, regex.error):
                continue
        return False


@dataclass
class Snapshot:
    by_client_id: dict[str, Client]
    by_slug: dict[str, Client]


class Clients:
    def __init__(self, db: store.Store, keyring: crypto.Keyring) -> None:
        self.db = db
        self.keyring = keyring
        self._keys: dict[tuple[str, str], crypto.jwt.SigningKey] = {}  # (pk, fingerprint)
        self.current = snapshots.Snapshots(db, self._load, MAX_AGE)

    async def get(self) -> Snapshot:
        return await self.current.get()

    async def by_client_id(self, client_id: str) -> Client | None:
        return (await self.get()).by_client_id.get(client_id)

    async def by_slug(self, slug: str) -> Client | None:
        return (await self.get()).by_slug.get(slug)

    def _key(self, row: dict[str, Any]) -> crypto.jwt.SigningKey:
        cache_key = (row["pk"], row["fingerprint_sha256"])
        key = self._keys.get(cache_key)
        if key is None:
            key = self._keys[cache_key] = crypto.jwt.from_pem(
                keypairs.private_key(self.keyring, row)
            )
        return key

    async def _load(self) -> Snapshot:
        async with self.db.read() as tx:
            bases = {b["pk"]: b for b in await crud.all_rows(tx, "providers")}
            rows = await crud.all_rows(tx, records.TABLE)
            apps = {a["provider"]: a for a in await crud.all_rows(tx, "applications")}
            flows = {f["pk"]: f["slug"] for f in await crud.all_rows(tx, "flows")}
            mapping_rows = {m["pk"]: m for m in await crud.all_rows(tx, records.MAPPINGS)}
            key_rows = {k["pk"]: k for k in await crud.all_rows(tx, "certificate_keypairs")}
        by_client_id: dict[str, Client] = {}
        by_slug: dict[str, Client] = {}
        for row in rows:
            base = bases.get(row["pk"])
            if base is None:
                continue
            client = self._client(base, row, apps.get(row["pk"]), flows, mapping_rows, key_rows)
            by_client_id[client.client_id] = client
            if client.application is not None:
                by_slug[client.application["slug"]] = client
        return Snapshot(by_client_id, by_slug)

    def _client(
        self,
        base: dict[str, Any],
        row: dict[str, Any],
        app: dict[str, Any] | None,
        flows: dict[str, str],
        mapping_rows: dict[str, dict[str, Any]],
        key_rows: dict[str, dict[str, Any]],
    ) -> Client:
        secret = records.client_secret(self.keyring, row)
        signing = (
            self._key(key_rows[row["signing_key"]])
            if row["signing_key"] in key_rows
            else crypto.jwt.from_secret(secret)
        )
        verify = [signing] + [
            self._key(key_rows[pk])
            for pk in records.live_previous_keys(row)
            if pk in key_rows and key_rows[pk]["key_sealed"]
        ]
        mappings: dict[str, list[Mapping]] = {}
        for pk in row["property_mappings"]:
            m = mapping_rows.get(pk)
            if m is None:
                continue
            try:
                program = _compile(m["expression"])
            except sandbox.SandboxError:
                continue  # refused at save time; a stored one that no longer compiles is skipped
            mappings.setdefault(m["scope_name"], []).append(
                Mapping(m["pk"], m["scope_name"], m["name"], m["managed"], program)
            )
        return Client(
            pk=row["pk"],
            name=base["name"],
            client_id=row["client_id"],
            secret=crypto.Secret(secret),
            client_type=row["client_type"],
            redirect_uris=[
                wire.oauth2.RedirectURI.model_construct(**u) for u in row["redirect_uris"]
            ],
            signing=signing,
            verify_keys=verify,
            code_ttl=wire.durations.parse(row["access_code_validity"]),
            access_ttl=wire.durations.parse(row["access_token_validity"]),
            refresh_ttl=wire.durations.parse(row["refresh_token_validity"]),
            sub_mode=row["sub_mode"],
            issuer_mode=row["issuer_mode"],
            include_claims=row["include_claims_in_id_token"],
            mappings=mappings,
            authorization_flow=flows.get(row["authorization_flow"], ""),
            invalidation_flow=(
                flows[row["invalidation_flow"]]
                if row["invalidation_flow"] in flows
                else records.DEFAULT_INVALIDATION_FLOW
                if records.DEFAULT_INVALIDATION_FLOW in flows.values()
                else None
            ),
            grant_types=frozenset(records.grant_types(row)),
            logout_uri=row["logout_uri"],
            logout_method=row["logout_method"],
            application=app,
        )


_compiled: dict[str, sandbox.Program] = {}


def _compile(source: str) -> sandbox.Program:
    program = _compiled.get(source)
    if program is None:
        if len(_compiled) > 1024:
            _compiled.clear()
        program = _compiled[source] = sandbox.compile(source)
    return program
