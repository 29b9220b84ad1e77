"""E-mail address syntax as authentik (Django's `EmailValidator`) accepts it.

Syntax only: no DNS, no deliverability, no special-use or reserved names, so homelab addresses
(`admin@nas.lan`, `root@home.arpa`, `me@box.local`, `x@y.internal`, `a@b.test`) and
`user@localhost` are valid, as they are in authentik. Used by the users API, prompts, invitations
(through the user write), and the bootstrap address (`config`).

The rules, stated in our own terms:
- at most 320 characters, one `@` taken as the last one;
- local part: a dot-atom (atext runs joined by single dots) or a quoted string;
- domain: `localhost`, or two or more labels (letters, digits, hyphens; a label at most 63
  characters, not starting or ending with a hyphen) whose last label has at least two characters,
  or an address literal (`[192.0.2.1]`, `[::1]`); internationalised names are
  checked in their IDNA (punycode) form.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_LENGTH = 320
MESSAGE = "Enter a valid email address."

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
# A quoted string: characters other than space, `"`, `\`, CR, LF, TAB and NUL, or a backslash
# pair (which may escape a space or a quote).
_QTEXT = r"[\x01-\x08\x0b\x0c\x0e-\x1f\x21\x23-\x5b\x5d-\x7f]"
_QPAIR = r"\\[\x01-\x09\x0b\x0c\x0e-\x7f]"
_QUOTED = re.compile(rf'"(?:{_QTEXT}|{_QPAIR})*"')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP = r"[A-Za-z0-9-]{2,63}"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_TOP}")
_LITERAL = re.compile(r"\[([A-Fa-f0-9:.]+)\]")


def _local_ok(local: str) -> bool:
    return bool(_DOT_ATOM.fullmatch(local) or _QUOTED.fullmatch(local))


def _domain_ok(domain: str) -> bool:
    if _DOMAIN.fullmatch(domain):
        return not domain.endswith("-")
    literal = _LITERAL.fullmatch(domain)
    if literal is None:
        return False
    try:
        ipaddress.ip_address(literal.group(1))
    except ValueError:
        return False
    return True


def _idna(domain: str) -> str | None:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def valid(value: str) -> bool:
    """True when `value` is an address authentik would accept."""
    if not value or "@" not in value or len(value) > MAX_LENGTH:
        return False
    local, domain = value.rsplit("@", 1)
    if not _local_ok(local):
        return False
    if domain == "localhost" or _domain_ok(domain):
        return True
    ascii_domain = _idna(domain)
    return ascii_domain is not None and ascii_domain != domain and _domain_ok(ascii_domain)


def check(value: str) -> str:
    """`value` unchanged, or ValueError with the message authentik shows."""
    if not valid(value):
        raise ValueError(MESSAGE)
    return value


def _check_or_empty(value: str) -> str:
    return value if value == "" else check(value)


_FORMAT = Field(json_schema_extra={"format": "email"})
Address = Annotated[str, AfterValidator(check), _FORMAT]
AddressOrEmpty = Annotated[str, AfterValidator(_check_or_empty)]  # "" for no address
