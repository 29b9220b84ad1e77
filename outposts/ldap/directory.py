"""An indexed in-memory directory: entries by DN, by parent, and by the values of the attributes
clients filter on, and the search over it (RFC 4511 §4.5).

`Directory(entries)` indexes `INDEXED` attributes (value → ordinals). `search(base, scope,
filter)` narrows the candidates with the index where the filter allows (an equality on an
indexed attribute; the smallest indexed branch of an AND; an OR whose branches are all
indexed), then checks scope and the whole filter on each candidate, and returns the matching
entries in DIT order (so pages are stable). `select(entry, attributes, types_only)` encodes a
SearchResultEntry with RFC 4511 §4.5.1.8's attribute selection (`*`, `+`, `1.1`, names in any
case, aliases). Used by `provider` (a provider's full or restricted view) and `protocol`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tessera.outposts.ldap import ber, dit, filters
from tessera.outposts.ldap import messages as m
from tessera.outposts.ldap.dn import is_under

INDEXED = (
    "objectclass",
    "uid",
    "cn",
    "mail",
    "memberof",
    "member",
    "entryuuid",
    "samaccountname",
    "uidnumber",
    "gidnumber",
)
SCOPE_BASE, SCOPE_ONE, SCOPE_SUB = 0, 1, 2
MAX_PLANS = 4096


class NoSuchObject(Exception):
    """The search base does not exist."""


class Directory:
    def __init__(self, entries: Iterable[dit.Entry]) -> None:
        self.entries = list(entries)
        self.by_dn: dict[str, dit.Entry] = {}
        self.children: dict[str, list[int]] = {}
        self.index: dict[str, dict[str, list[int]]] = {a: {} for a in INDEXED}
        self._compiled: dict[m.Filter, tuple[filters.Matcher, list[int] | None]] = {}
        for i, e in enumerate(self.entries):
            e.ordinal = i
            self.by_dn[e.ndn] = e
            self.children.setdefault(e.parent, []).append(i)
            for attr in INDEXED:
                for v in e.norm.get(attr, ()):
                    self.index[attr].setdefault(v, []).append(i)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, ndn: str) -> dit.Entry | None:
        return self.by_dn.get(ndn)

    def candidates(self, f: m.Filter) -> list[int] | None:
        """Ordinals that may match `f` (ascending), or None: the filter needs a full scan."""
        if isinstance(f, m.Equal | m.Approx):
            attr = dit.canonical(f.attr)
            table = self.index.get(attr)
            if table is None:
                return None
            return table.get(dit.norm_value(attr, f.value), [])
        if isinstance(f, m.And) and f.items:
            best: list[int] | None = None
            for item in f.items:
                found = self.candidates(item)
                if found is not None and (best is None or len(found) < len(best)):
                    best = found
            return best
        if isinstance(f, m.Or) and f.items:
            union: set[int] = set()
            for item in f.items:
                found = self.candidates(item)
                if found is None:
                    return None
                union.update(found)
            return sorted(union)
        return None

    def search(
        self, base: str, scope: int, f: m.Filter, *, remember: bool = False
    ) -> list[dit.Entry]:
        """Entries under normalized `base` within `scope` matching `f`; `NoSuchObject` when
        the base is not an entry. `remember`: keep the filter's plan (a small, repeated one)."""
        top = self.by_dn.get(base)
        if top is None:
            raise NoSuchObject(base)
        match, found = self._plan(f, remember)
        if scope == SCOPE_BASE:
            return [top] if match(top) is True else []
        if scope == SCOPE_ONE:
            pool: Iterable[dit.Entry] = (self.entries[i] for i in self.children.get(base, ()))
            return [e for e in pool if match(e) is True]
        if found is None:
            pool = self.entries if top.ordinal == 0 else self._subtree(base)
        else:
            pool = (self.entries[i] for i in found)
        return [e for e in pool if is_under(e.ndn, base) and match(e) is True]

    def _plan(self, f: m.Filter, remember: bool) -> tuple[filters.Matcher, list[int] | None]:
        """The compiled filter and its candidates (kept when `remember`: clients repeat their
        searches)."""
        plan = self._compiled.get(f) if remember else None
        if plan is None:
            plan = (filters.compile_filter(f, self.by_dn.get), self.candidates(f))
            if not remember:
                return plan
            if len(self._compiled) >= MAX_PLANS:
                self._compiled.clear()
            self._compiled[f] = plan
        return plan

    def _subtree(self, base: str) -> list[dit.Entry]:
        top = self.by_dn[base]
        out: list[dit.Entry] = [top]
        todo = [base]
        while todo:
            current = todo.pop()
            for i in self.children.get(current, ()):
                out.append(self.entries[i])
                todo.append(self.entries[i].ndn)
        out.sort(key=lambda e: e.ordinal)
        return out

    def compare(self, ndn: str, attr: str, value: str) -> bool | None:
        """RFC 4511 §4.10: None when the entry does not exist."""
        entry = self.by_dn.get(ndn)
        if entry is None:
            return None
        name = dit.canonical(attr)
        return dit.norm_value(name, value) in entry.norm.get(name, ())


def selection(attributes: tuple[str, ...]) -> tuple[str, ...]:
    """The canonical form of a search's attribute list (also the key of encoded entries)."""
    if not attributes:
        return ("*",)
    if attributes == ("1.1",):
        return ()
    return tuple(sorted({dit.canonical(a) for a in attributes if a != "1.1"}))


def select(entry: dit.Entry, wanted: tuple[str, ...], types_only: bool = False) -> bytes:
    """The SearchResultEntry protocolOp of `entry` with the attributes of `selection(...)`."""
    key = wanted + (("",) if types_only else ())
    cached = entry.encoded.get(key)
    if cached is not None:
        return cached
    user = "*" in wanted
    operational = "+" in wanted
    names = set(wanted)
    out: list[tuple[str, list[str]]] = []
    for low, (name, values) in entry.attrs.items():
        is_operational = low in entry.operational
        if low in names or (user and not is_operational) or (operational and is_operational):
            out.append((name, [] if types_only else list(values)))
    encoded = ber.entry(entry.dn, out)
    if len(entry.encoded) < 16:
        entry.encoded[key] = encoded
    return encoded
