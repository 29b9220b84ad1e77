"""TLS to PostgreSQL, as `AUTHENTIK_POSTGRESQL__SSLMODE` and its certificates ask (libpq's
meanings), in the form asyncpg's `ssl` argument takes.

- `disable`: never TLS.
- `allow` / `prefer`: asyncpg's own modes (plain first, resp. TLS first when the server offers
  it), unverified. With a client certificate they become `require` plus that certificate, since
  asyncpg only takes a client certificate on a context, which it then always uses.
- `require`: TLS or no connection; the server's certificate is checked against `SSLROOTCERT`
  when one is given (libpq does the same), else not checked.
- `verify-ca`: TLS with the server's certificate checked against `SSLROOTCERT` (or the system's
  CAs when none is given); any host name.
- `verify-full`: as `verify-ca`, and the certificate must name the host.

Unreadable certificate or key files are a `config.ConfigError` naming the setting.
"""

from __future__ import annotations

import ssl
from typing import Any

from tessera.core import config


def _context(pg: config.PostgreSQL, *, verify: bool, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = check_hostname
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        if pg.sslrootcert:
            try:
                context.load_verify_locations(cafile=pg.sslrootcert)
            except (OSError, ssl.SSLError) as exc:
                raise config.ConfigError(
                    f"AUTHENTIK_POSTGRESQL__SSLROOTCERT: {pg.sslrootcert}: {exc}"
                ) from None
    else:
        context.verify_mode = ssl.CERT_NONE
    if pg.sslcert:
        try:
            context.load_cert_chain(pg.sslcert, pg.sslkey or None)
        except (OSError, ssl.SSLError) as exc:
            raise config.ConfigError(
                f"AUTHENTIK_POSTGRESQL__SSLCERT / SSLKEY: {pg.sslcert}: {exc}"
            ) from None
    elif pg.sslkey:
        raise config.ConfigError("AUTHENTIK_POSTGRESQL__SSLKEY: given without SSLCERT")
    return context


def ssl_argument(pg: config.PostgreSQL) -> Any:
    """asyncpg's `ssl=` for these settings: False, a mode name, or an `ssl.SSLContext`."""
    mode = pg.sslmode
    if mode == "disable":
        return False
    if mode in ("allow", "prefer") and not pg.sslcert:
        return mode
    if mode in ("allow", "prefer", "require"):
        # SECURITY: libpq checks the chain in `require` mode when a root certificate is given.
        return _context(pg, verify=bool(pg.sslrootcert), check_hostname=False)
    return _context(pg, verify=True, check_hostname=mode == "verify-full")
