"""The LDAP outpost (`tessera outpost ldap`): an LDAPv3 server over the core's users and groups.

- `main`: the process (`entry.main` with the runtime's callbacks and the listeners);
- `server`, `protocol`: Twisted's asyncio reactor, the listeners, one connection's protocol;
- `ber`, `messages`, `codes`: framing, strict request decoding, response encoding, result codes;
- `paging`: the Simple Paged Results control (RFC 2696);
- `dn`, `dit`, `directory`, `filters`: DNs, authentik's DIT layout, the indexed directory and
  RFC 4515 filter evaluation;
- `provider`, `outpost`, `bindcache`, `coreapi`: providers and bound sessions, the state fed by
  the control channel, cached bind mode, the core's outpost calls;
- `tls`: certificates by SNI, self-signed fallback.
"""

from tessera.outposts.ldap import (
    ber,
    bindcache,
    codes,
    coreapi,
    directory,
    dit,
    dn,
    filters,
    messages,
    outpost,
    paging,
    provider,
    tls,
)

__all__ = [
    "ber",
    "bindcache",
    "codes",
    "coreapi",
    "directory",
    "dit",
    "dn",
    "filters",
    "messages",
    "outpost",
    "paging",
    "provider",
    "tls",
]
