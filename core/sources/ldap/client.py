"""The LDAP client of a source, on `ldap3`: connect, bind, paged search, password writes.

Everything here blocks (ldap3's synchronous strategy), so callers run it in a thread
(`asyncio.to_thread`); the event loop never waits on a directory. Who calls: `sync` (reads the
directory as the source's bind DN), `auth` (binds as a user to check a password, writes a
changed password back).

A source names several servers, comma-separated, tried in order: the first that accepts a
connection (and StartTLS, when asked) is used. TLS (ldaps:// or StartTLS) always verifies the
server's certificate and host name, against the source's peer certificate when it has one and
the system's trust store when not.

# SECURITY: a simple bind with an empty password is an anonymous bind that servers accept
# (RFC 4513 5.1.2, "unauthenticated"); `bind_user` refuses one before it reaches the wire.
# Passwords are never logged: errors carry the server's result code and message only. Password
# attributes of the entries read (`SECRET_ATTRIBUTES`) are dropped before anything sees them.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import ldap3
from ldap3.core import exceptions as ldap_errors
from ldap3.operation import search as ldap_search
from ldap3.utils import conv
from ldap3.utils import dn as dn_utils

from tessera.core import crypto

TIMEOUT = 10  # seconds to connect and to wait for one answer (ldap3 wants whole seconds)
PAGE_SIZE = 500  # entries per page of a paged search (RFC 2696)
AD_CAPABILITY = "1.2.840.113556.1.4.800"  # supportedCapabilities of Active Directory
# Attributes holding passwords or their hashes: dropped from every entry read, so that no
# mapping (nor anything it stores) ever sees them, whatever the bind DN may read.
SECRET_ATTRIBUTES = frozenset(
    {"userpassword", "unicodepwd", "authpassword", "sambantpassword", "sambalmpassword"}
)
INVALID_CREDENTIALS = 49


class DirectoryError(Exception):
    """The directory could not be used: no server answered, TLS failed, a bind or an operation
    was refused. The message says which, without secrets."""


class InvalidCredentials(DirectoryError):
    """A bind was refused for its credentials (result code 49)."""


@dataclass(frozen=True)
class Settings:
    """How to reach a source's directory."""

    uris: tuple[str, ...]
    bind_dn: str
    bind_password: crypto.Secret
    start_tls: bool = False
    ca_pem: str | None = None
    sni: bool = False
    timeout: int = TIMEOUT


_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9A-Fa-f:.]{2,45}", re.ASCII)


def uris(server_uri: str) -> tuple[str, ...]:
    """The servers of a source's `server_uri`, in order."""
    return tuple(u.strip() for u in server_uri.split(",") if u.strip())


def check_uri(uri: str) -> str | None:
    """Why `uri` is not an LDAP server URI (None when it is one)."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme.lower() not in ("ldap", "ldaps"):
        return f"{uri!r}: use ldap:// or ldaps://."
    try:
        port = parsed.port
    except ValueError:
        return f"{uri!r}: the port is not a number."
    if not parsed.hostname or (port is not None and not 0 < port < 65536):
        return f"{uri!r}: name a host (and a port from 1 to 65535)."
    if not _HOST.fullmatch(parsed.hostname):
        return f"{uri!r}: the host is not a DNS name or an IP address."
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        return f"{uri!r}: only a scheme, a host and a port."
    return None


def check_filter(query: str) -> str | None:
    """Why `query` is not an RFC 4515 search filter (None when it is one)."""
    try:
        ldap_search.parse_filter(
            query, None, auto_escape=True, auto_encode=True, validator=None, check_names=False
        )
    except (ldap_errors.LDAPException, ValueError, IndexError) as exc:
        return f"Enter a search filter such as (objectClass=person): {exc}."
    return None


def _tls(settings: Settings, host: str) -> ldap3.Tls:
    # Without a CA of its own the context ldap3 makes trusts the system's store.
    return ldap3.Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_data=settings.ca_pem or None,
        valid_names=[host],
        sni=host if settings.sni else None,
    )


def _server(settings: Settings, uri: str) -> ldap3.Server:
    parsed = urllib.parse.urlsplit(uri)
    secure = parsed.scheme.lower() == "ldaps"
    host = parsed.hostname or ""
    return ldap3.Server(
        host,
        port=parsed.port or (636 if secure else 389),
        use_ssl=secure,
        tls=_tls(settings, host) if secure or settings.start_tls else None,
        get_info=ldap3.NONE,
        connect_timeout=settings.timeout,
    )


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def close(connection: Any) -> None:
    """Unbind, whatever state the connection is in (a failed StartTLS closes the socket)."""
    with contextlib.suppress(ldap_errors.LDAPException, OSError):
        connection.unbind()


def connect(settings: Settings, bind_dn: str | None = None, password: str | None = None) -> Any:
    """A connection bound as `bind_dn` (the source's bind DN by default), to the first server
    that answers. Raises InvalidCredentials when the bind is refused for its credentials (the
    other servers are not tried: they hold the same directory), DirectoryError when no server
    could be used."""
    who = settings.bind_dn if bind_dn is None else bind_dn
    secret = settings.bind_password.reveal() if password is None else password
    if who and not secret:
        # SECURITY: a DN with an empty password is an unauthenticated bind (RFC 4513 5.1.2),
        # which some servers accept as anonymous; never send one.
        raise DirectoryError(f"bind as {who!r} refused: a bind DN needs a password")
    failures = []
    for uri in settings.uris:
        connection = ldap3.Connection(
            _server(settings, uri),
            user=who or None,
            password=secret or None,
            auto_bind=ldap3.AUTO_BIND_NONE,
            receive_timeout=settings.timeout,
            raise_exceptions=False,
            auto_referrals=False,
            return_empty_attributes=False,
        )
        try:
            connection.open()
            if settings.start_tls and not connection.server.ssl and not connection.start_tls():
                raise DirectoryError(f"StartTLS refused: {connection.result.get('description')}")
            if not connection.bind():
                result = connection.result
                message = f"{result.get('description')} ({result.get('result')})"
                close(connection)
                if result.get("result") == INVALID_CREDENTIALS:
                    raise InvalidCredentials(f"bind as {who!r} refused: {message}")
                raise DirectoryError(f"bind as {who!r} refused by {uri}: {message}")
            return connection
        except (ldap_errors.LDAPException, OSError, ValueError) as exc:
            close(connection)
            failures.append(f"{uri}: {_describe(exc)}")
        except InvalidCredentials:
            raise
        except DirectoryError as exc:
            close(connection)
            failures.append(str(exc))
    raise DirectoryError("no LDAP server could be used: " + "; ".join(failures or ["none named"]))


def bind_user(settings: Settings, dn: str, password: str) -> bool:
    """Whether `dn` binds with `password` (False when the directory refuses the credentials;
    DirectoryError when it cannot be asked)."""
    if not password or not dn:
        return False
    try:
        connection = connect(settings, dn, password)
    except InvalidCredentials:
        return False
    close(connection)
    return True


@dataclass
class Entry:
    """One search result: its DN and its attributes (name -> values, as text where they are
    UTF-8 and as bytes where not)."""

    dn: str
    attributes: dict[str, list[Any]] = field(default_factory=dict)

    def first(self, name: str) -> Any:
        for key, values in self.attributes.items():
            if key.lower() == name.lower():
                return values[0] if values else None
        return None

    def values(self, name: str) -> list[Any]:
        for key, values in self.attributes.items():
            if key.lower() == name.lower():
                return values
        return []


def _values(raw: Any) -> list[Any]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[Any] = []
    for item in items:
        if isinstance(item, bytes):
            try:
                out.append(item.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(item)
        else:
            out.append(item)
    return out


def search(
    connection: Any, base: str, query: str, attributes: list[str], page_size: int = PAGE_SIZE
) -> Iterator[Entry]:
    """The entries under `base` matching `query`, page by page (the Simple Paged Results
    control, RFC 2696, so a large directory's size limit does not cut the answer short)."""
    cookie: Any = None
    while True:
        try:
            ok = connection.search(
                base,
                query,
                search_scope=ldap3.SUBTREE,
                attributes=attributes,
                paged_size=page_size,
                paged_cookie=cookie,
            )
        except (ldap_errors.LDAPException, OSError) as exc:
            raise DirectoryError(f"search of {base!r} failed: {_describe(exc)}") from None
        result = connection.result
        if not ok and result.get("result") not in (0, 32):  # 32: the base does not exist
            raise DirectoryError(
                f"search of {base!r} failed: {result.get('description')} ({result.get('result')})"
            )
        for item in connection.response or ():
            if item.get("type") != "searchResEntry":
                continue
            raw = item.get("raw_attributes") or {}
            yield Entry(
                item["dn"],
                {k: _values(v) for k, v in raw.items() if k.lower() not in SECRET_ATTRIBUTES},
            )
        controls = result.get("controls") or {}
        cookie = controls.get("1.2.840.113556.1.4.319", {}).get("value", {}).get("cookie")
        if not cookie:
            return


def identifier(value: Any) -> str:
    """An entry's uniqueness value as text: a binary objectGUID as its UUID, an objectSid as
    S-1-…, other binary values in hex."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        if len(value) == 16:
            return str(uuid.UUID(bytes_le=value))
        if len(value) >= 8 and value[0] == 1 and len(value) == 8 + 4 * value[1]:
            authority = int.from_bytes(value[2:8], "big")
            subs = [
                int.from_bytes(value[8 + 4 * i : 12 + 4 * i], "little") for i in range(value[1])
            ]
            return "-".join(["S", str(value[0]), str(authority), *map(str, subs)])
        return value.hex()
    return str(value)


def normalize_dn(value: str) -> str:
    """A DN compared case-insensitively and without blanks around its separators."""
    try:
        parts = dn_utils.parse_dn(value, escape=False, strip=True)
    except (ldap_errors.LDAPException, ValueError, IndexError):
        return value.strip().lower()
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in parts)


def escape(value: str) -> str:
    """`value` as the assertion of a search filter (RFC 4515 3)."""
    return str(conv.escape_filter_chars(value))


def is_active_directory(connection: Any) -> bool:
    ok = connection.search(
        "", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["supportedCapabilities"]
    )
    if not ok or not connection.response:
        return False
    raw = connection.response[0].get("raw_attributes") or {}
    values = {
        v.decode() if isinstance(v, bytes) else v for v in raw.get("supportedCapabilities", [])
    }
    return AD_CAPABILITY in values


def set_password(settings: Settings, dn: str, password: str) -> None:
    """Write `password` as `dn`'s, bound as the source's bind DN: Active Directory's
    `unicodePwd`, else the Password Modify extended operation (RFC 3062)."""
    connection = connect(settings)
    try:
        if is_active_directory(connection):
            ok = connection.extend.microsoft.modify_password(dn, password)
        else:
            ok = connection.extend.standard.modify_password(dn, None, password)
        if not ok:
            result = connection.result
            raise DirectoryError(
                f"the directory refused the new password: {result.get('description')} "
                f"({result.get('result')}) {str(result.get('message') or '')[:200]}".rstrip()
            )
    except ldap_errors.LDAPException as exc:
        raise DirectoryError(f"the password could not be written: {_describe(exc)}") from None
    finally:
        close(connection)
