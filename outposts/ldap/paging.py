"""The Simple Paged Results control (RFC 2696): the rest of a paged search, kept by the
connection under its cookie, and the control sent with each page. Used by `protocol`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.outposts.ldap import ber, dit
from tessera.outposts.ldap import messages as m


@dataclass
class Paged:
    """The rest of a paged search, kept under its cookie."""

    search: m.Search
    entries: list[dit.Entry]
    position: int
    wanted: tuple[str, ...]
    sent: int


def key(op: m.Search) -> tuple[Any, ...]:
    return (op.base.lower(), op.scope, op.filter, op.attributes, op.types_only)


def control(cookie: bytes, estimate: int) -> bytes:
    value = ber.element(ber.SEQUENCE, ber.encode_int(estimate) + ber.octets(cookie))
    return ber.controls([ber.control(dit.PAGED_RESULTS, value)])
