"""What an LDAP outpost reads of its providers: authentik's `LDAPOutpostConfig`.

`/api/v3/outposts/ldap/` (`resources.OutpostLDAPConfigs`) serves these to an outpost's token.
Only providers an application uses are served (authentik's `application__isnull=False`): the
application's policies decide every bind. `served` is also how the outpost calls (`calls`) check
that a provider is the calling outpost's.
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, store, wire
from tessera.core.identity import outposts
from tessera.core.providers.ldap import records
from tessera.core.store import crud


async def served(tx: store.Tx, outpost_pk: str) -> list[dict[str, Any]]:
    """The `providers` rows of the outpost's LDAP providers that an application uses."""
    linked = (await outposts.providers_of(tx, [outpost_pk]))[outpost_pk]
    if not linked:
        return []
    bases = await crud.find_many(tx, "providers", "pk", linked)
    apps = await records.applications_of(tx, linked)
    kept = [b for b in bases if b["component"] == records.KIND and b["pk"] in apps]
    return sorted(kept, key=lambda b: (b["name"], b["pk"]))


async def configs(tx: store.Tx, bases: list[dict[str, Any]]) -> list[wire.ldap.LDAPOutpostConfig]:
    """The outpost configurations of these LDAP providers (each with an application)."""
    pks = [b["pk"] for b in bases]
    rows = await records.rows_of(tx, pks)
    apps = await records.applications_of(tx, pks)
    flow_pks = {r[k] for r in rows.values() for k in ("authorization_flow", "invalidation_flow")}
    flows = {f["pk"]: f for f in await crud.find_many(tx, "flows", "pk", flow_pks - {None})}
    fallback = await records.invalidation_fallback(tx)
    if fallback is not None and fallback not in flows:
        flows[fallback] = await crud.get(tx, "flows", pk=fallback)
    out = []
    for base in bases:
        row = rows[base["pk"]]
        unbind = flows.get(row["invalidation_flow"] or fallback or "")
        out.append(
            wire.ldap.LDAPOutpostConfig(
                pk=base["pk"],
                name=base["name"],
                base_dn=row["base_dn"],
                bind_flow_slug=flows[row["authorization_flow"]]["slug"],
                unbind_flow_slug=unbind["slug"] if unbind else None,
                application_slug=apps[base["pk"]]["slug"],
                certificate=row["certificate"],
                tls_server_name=row["tls_server_name"],
                uid_start_number=row["uid_start_number"],
                gid_start_number=row["gid_start_number"],
                search_mode=row["search_mode"],
                bind_mode=row["bind_mode"],
                mfa_support=row["mfa_support"],
            )
        )
    return out


async def for_outpost(
    tx: store.Tx, keyring: crypto.Keyring, outpost_pk: str, base_url: str
) -> list[wire.ldap.LDAPOutpostConfig]:
    """Every `LDAPOutpostConfig` of the outpost `outpost_pk` (what `/api/v3/outposts/ldap/`
    pages through; `api.state.OUTPOST_CONFIGS`: neither the keyring nor the base URL matter)."""
    return await configs(tx, await served(tx, outpost_pk))
