"""What an outpost fetches, as a digest: the hub tells an outpost TRIGGER_UPDATE only when it
changed (`hub`).

An outpost fetches three things (`tessera.outposts.common.runtime`, `proxy.tls`, `ldap.tls`): its
own object (`/api/v3/outposts/instances/`, which shows its token that one only), every page of
its providers' configs (`/api/v3/outposts/<type>/`), and the certificate and private key of each
key pair its providers name (`crypto/certificatekeypairs/<pk>/view_certificate/` and
`view_private_key/`, the key pairs `identity.outposts.readable_keypairs` lets it read). `fetched`
reads the same with the functions the endpoints use: `api.resources.outposts.describe` for the
object, the configs each outpost type's provider slice registers in `api.state.OUTPOST_CONFIGS`,
and the key pairs' rows (their sealed key, certificate, name: whatever changes in them counts).
The configs name the core's endpoints under the request's base URL, which no write to the store
changes: a fixed placeholder stands for it. A proxy outpost's key set (JWKS) is fetched on its
own schedule, not on TRIGGER_UPDATE; the signing keys behind it are among the key pairs anyway.
Not covered, as before: an LDAP outpost's cached directory (users and groups reach it through
the LDAP slice's own push).

`digest` is the sha256 of the canonical JSON of what `fetched` returns; `read` gives the digests
of several outposts from one read transaction. An outpost that no longer exists has the digest
of `null`, so its instances are told too.

# SECURITY: what is digested holds the providers' client and cookie secrets and sealed keys;
# only the digest is kept, in this process's memory, and it is neither logged nor sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tessera.core import crypto, store
from tessera.core.api import state
from tessera.core.api.resources import outposts as outposts_resource
from tessera.core.identity import outposts
from tessera.core.store import crud

BASE = "http://outpost-hub.invalid"  # stands for the request's base URL in the configs
KEYPAIRS = "certificate_keypairs"


@dataclass(frozen=True)
class Reading:
    """How to read what an outpost fetches: the app's keyring, and what the provider slices
    register (the hub cannot import them: they are its siblings)."""

    keyring: crypto.Keyring
    provider_objects: state.ProviderObjects
    configs: Mapping[str, state.OutpostConfigs]


async def fetched(tx: store.Tx, reading: Reading, outpost_pk: str) -> dict[str, Any] | None:
    """What the outpost `outpost_pk` would fetch now, as JSON values; None when it is gone.
    A type without registered configs raises KeyError (the hub then tells every outpost)."""
    row = await crud.find(tx, outposts.TABLE, pk=outpost_pk)
    if row is None:
        return None
    (instance,) = await outposts_resource.describe(tx, [row], reading.provider_objects)
    configs = await reading.configs[row["type"]](tx, reading.keyring, outpost_pk, BASE)
    readable = sorted(await outposts.readable_keypairs(tx, outpost_pk))
    pairs = await crud.find_many(tx, KEYPAIRS, "pk", readable) if readable else []
    return {
        "instance": instance.model_dump(mode="json"),
        "configs": [c.model_dump(mode="json") for c in configs],
        "keypairs": sorted(pairs, key=lambda p: str(p["pk"])),
    }


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


async def read(db: store.Store, reading: Reading, outpost_pks: Iterable[str]) -> dict[str, str]:
    """The digest of what each outpost fetches, from one read transaction."""
    async with db.read() as tx:
        return {pk: digest(await fetched(tx, reading, pk)) for pk in outpost_pks}
