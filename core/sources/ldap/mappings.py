"""LDAP source property mappings: the system defaults and how a mapping runs over an entry.

A mapping is an expression over a directory entry that returns a dict of the properties it sets
(authentik's shape): for users `username`, `name`, `email`, `path`, `is_active`, `attributes`;
for groups `name`, `is_superuser`, `attributes`. Its variables: `ldap` (the entry's attributes,
a single value as itself and several as a list), `dn`, `source` (`name`, `slug`) and
`properties` (what the mappings before it set). Results merge in order, `attributes` key by key.

The system mappings (authentik's `goauthentik.io/sources/ldap/*`, for OpenLDAP and Active
Directory) are created at start-up and cannot be changed or deleted. While one's expression is
the stored default it is computed here directly (what it computes is plain), so that syncing ten
thousand users does not pay ten thousand process hops; any other expression runs in the
expression pool (`policies.pool`, shape `claims`), under its limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tessera.core import store
from tessera.core.identity import util
from tessera.core.policies import pool, sandbox
from tessera.core.sources.ldap import client
from tessera.core.store import crud

TABLE = "ldap_source_property_mappings"
PREFIX = "goauthentik.io/sources/ldap/"
STEPS = 200_000
TIMEOUT = 2.0
MAX_VALUE_TEXT = 4096  # characters of one attribute value handed to an expression

Native = Callable[[dict[str, Any], str, dict[str, Any]], dict[str, Any]]


def _first(ldap: dict[str, Any], name: str) -> Any:
    value = ldap.get(name)
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _dn_path(ldap: dict[str, Any], dn: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The organizational units of the DN, outermost first, below the source's user path."""
    units = [properties["path"]]
    for rdn in reversed(dn.split(",")):
        attr, _, value = rdn.partition("=")
        if attr.strip().lower() == "ou":
            units.append(value.strip())
    return {"path": "/".join(units)}


# managed suffix -> (name, expression, native equivalent)
DEFAULTS: dict[str, tuple[str, str, Native]] = {
    "default-dn-path": (
        "authentik default LDAP Mapping: DN to User Path",
        'units = [part.split("=", 1)[1].strip() for part in dn.split(",")'
        ' if part.split("=", 1)[0].strip().lower() == "ou"]\n'
        "units.reverse()\n"
        'return {"path": "/".join([properties["path"]] + units)}',
        _dn_path,
    ),
    "default-name": (
        "authentik default LDAP Mapping: Name",
        'return {"name": list_flatten(ldap.get("name"))}',
        lambda ldap, dn, p: {"name": _first(ldap, "name")},
    ),
    "default-mail": (
        "authentik default LDAP Mapping: mail",
        'return {"email": list_flatten(ldap.get("mail"))}',
        lambda ldap, dn, p: {"email": _first(ldap, "mail")},
    ),
    "ms-samaccountname": (
        "authentik default Active Directory Mapping: sAMAccountName",
        'return {"username": list_flatten(ldap.get("sAMAccountName"))}',
        lambda ldap, dn, p: {"username": _first(ldap, "sAMAccountName")},
    ),
    "ms-userprincipalname": (
        "authentik default Active Directory Mapping: userPrincipalName",
        'return {"attributes": {"upn": list_flatten(ldap.get("userPrincipalName"))}}',
        lambda ldap, dn, p: {"attributes": {"upn": _first(ldap, "userPrincipalName")}},
    ),
    "ms-givenName": (
        "authentik default Active Directory Mapping: givenName",
        'return {"attributes": {"givenName": list_flatten(ldap.get("givenName"))}}',
        lambda ldap, dn, p: {"attributes": {"givenName": _first(ldap, "givenName")}},
    ),
    "ms-sn": (
        "authentik default Active Directory Mapping: sn",
        'return {"attributes": {"sn": list_flatten(ldap.get("sn"))}}',
        lambda ldap, dn, p: {"attributes": {"sn": _first(ldap, "sn")}},
    ),
    "openldap-uid": (
        "authentik default OpenLDAP Mapping: uid",
        'return {"username": list_flatten(ldap.get("uid"))}',
        lambda ldap, dn, p: {"username": _first(ldap, "uid")},
    ),
    "openldap-cn": (
        "authentik default OpenLDAP Mapping: cn",
        'return {"name": list_flatten(ldap.get("cn"))}',
        lambda ldap, dn, p: {"name": _first(ldap, "cn")},
    ),
}


def managed_name(short: str) -> str:
    return PREFIX + short


async def ensure_defaults(db: store.Store) -> None:
    """Create the system mappings once (they are `managed`)."""
    async with db.read() as tx:
        have = {m["managed"] for m in await crud.all_rows(tx, TABLE) if m["managed"]}
    if all(managed_name(s) in have for s in DEFAULTS):
        return
    async with db.transaction() as tx:
        await crud.lock(tx, "ldap-source-default-mappings")
        have = {m["managed"] for m in await crud.all_rows(tx, TABLE) if m["managed"]}
        for short, (name, expression, _) in DEFAULTS.items():
            if managed_name(short) in have:
                continue
            if await crud.exists(tx, TABLE, name=name):
                name = f"{name} ({util.new_uuid()[:8]})"
            await crud.insert(
                tx,
                TABLE,
                {
                    "pk": util.new_uuid(),
                    "name": name,
                    "expression": expression,
                    "managed": managed_name(short),
                    "created": util.now(),
                },
            )


def expression_view(entry: client.Entry) -> dict[str, Any]:
    """The entry's attributes as an expression sees them (`ldap`): text, one value as itself,
    several as a list; binary values as hex; long values cut."""
    out: dict[str, Any] = {}
    for name, values in entry.attributes.items():
        texts = [
            (v.hex() if isinstance(v, bytes) else str(v))[:MAX_VALUE_TEXT] for v in values[:1000]
        ]
        out[name] = texts[0] if len(texts) == 1 else texts
    return out


class MappingFailed(Exception):
    """A mapping raised, timed out or returned something other than a dict."""


class Mapper:
    """Runs a source's mappings (rows of TABLE, in the source's order) over entries."""

    def __init__(self, rows: list[dict[str, Any]], source: dict[str, Any], path: str) -> None:
        self.rows = rows
        self.source = {"name": source["name"], "slug": source["slug"]}
        self.path = path  # where users start (the source's user path template, filled in)

    @staticmethod
    def _native(row: dict[str, Any]) -> Native | None:
        managed = row.get("managed") or ""
        default = DEFAULTS.get(managed.removeprefix(PREFIX))
        if default is None or managed != managed_name(managed.removeprefix(PREFIX)):
            return None
        return default[2] if default[1] == row["expression"] else None

    async def properties(self, entry: client.Entry) -> dict[str, Any]:
        """What the mappings set for `entry`; MappingFailed names the mapping that failed."""
        ldap = expression_view(entry)
        out: dict[str, Any] = {"attributes": {}, "path": self.path}
        for row in self.rows:
            native = self._native(row)
            if native is not None:
                result = native(ldap, entry.dn, out)
            else:
                result = await self._run(row, ldap, entry.dn, out)
            merge(out, result)
        return out

    async def _run(
        self, row: dict[str, Any], ldap: dict[str, Any], dn: str, so_far: dict[str, Any]
    ) -> dict[str, Any]:
        variables = {"ldap": ldap, "dn": dn, "source": self.source, "properties": so_far}
        try:
            result = await pool.evaluate(
                row["expression"], variables, shape="claims", steps=STEPS, seconds=TIMEOUT
            )
        except sandbox.SandboxError as exc:
            raise MappingFailed(f"mapping {row['name']!r} failed: {exc}") from None
        if not isinstance(result.value, dict):
            raise MappingFailed(f"mapping {row['name']!r} did not return a dict")
        return result.value


def merge(into: dict[str, Any], result: dict[str, Any]) -> None:
    for key, value in result.items():
        if key == "attributes" and isinstance(value, dict):
            into["attributes"].update({k: v for k, v in value.items() if v is not None})
        elif value is not None:
            into[key] = value
