"""RFC 4515 search filters, parsed far enough to narrow a direct-mode search in the core.

The LDAP outpost sends the client's filter as text (`SearchRequest.filter`); `parse` turns it
into a small tree of `Node`s and `directory.search` turns the parts it can into indexed queries
(equality on the username, mail, entryUUID, uidNumber, gidNumber, group name, membership and
objectClass), answering a superset of the matches: the outpost applies the filter exactly.

# SECURITY: the text is hostile. Its length is bounded by the wire model (16 KiB); nesting depth
# and the number of nodes are bounded here, every escape is checked, and anything malformed is
# `FilterError` (a 400 naming `filter`), never an exception of the parser's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_DEPTH = 32
MAX_NODES = 1024
_ATTRIBUTE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.;_/")


class FilterError(ValueError):
    """The filter is not RFC 4515 text (or is beyond the limits)."""


@dataclass(frozen=True)
class Node:
    """`op`: and, or, not (over `children`); eq, ge, le, approx (`attribute`, `value`);
    present (`attribute`); substrings (`attribute`, `parts`: initial, any..., final, with ""
    for an absent initial or final); extensible (taken, never narrowed)."""

    op: str
    attribute: str = ""
    value: str = ""
    children: tuple[Node, ...] = ()
    parts: tuple[str, ...] = field(default=())


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0
        self.nodes = 0

    def fail(self, why: str) -> FilterError:
        return FilterError(f"{why} at character {self.at + 1}.")

    def expect(self, ch: str) -> None:
        if self.at >= len(self.text) or self.text[self.at] != ch:
            raise self.fail(f"Expected {ch!r}")
        self.at += 1

    def filter(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail("The filter is nested too deeply")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail("The filter has too many parts")
        self.expect("(")
        ch = self.text[self.at] if self.at < len(self.text) else ""
        if ch in ("&", "|"):
            self.at += 1
            children = []
            while self.at < len(self.text) and self.text[self.at] == "(":
                children.append(self.filter(depth + 1))
            node = Node("and" if ch == "&" else "or", children=tuple(children))
        elif ch == "!":
            self.at += 1
            node = Node("not", children=(self.filter(depth + 1),))
        else:
            node = self.item()
        self.expect(")")
        return node

    def item(self) -> Node:
        start = self.at
        while self.at < len(self.text) and self.text[self.at] in _ATTRIBUTE:
            self.at += 1
        attribute = self.text[start : self.at]
        rest = self.text[self.at : self.at + 2]
        if rest.startswith(":"):
            return self.extensible(attribute)
        if not attribute:
            raise self.fail("Expected an attribute name")
        for token, op in ((">=", "ge"), ("<=", "le"), ("~=", "approx")):
            if rest == token:
                self.at += 2
                return Node(op, attribute, self.value())
        self.expect("=")
        raw = self.raw_value()
        if raw == "*":
            return Node("present", attribute)
        if "*" in raw:
            return Node("substrings", attribute, parts=tuple(_unescape(p) for p in raw.split("*")))
        return Node("eq", attribute, _unescape(raw))

    def extensible(self, attribute: str) -> Node:
        """`attr:dn:rule:=value` and its variants (RFC 4515 extensibleMatch): taken whole."""
        while self.at < len(self.text) and self.text[self.at] != "=":
            if self.text[self.at] not in _ATTRIBUTE and self.text[self.at] != ":":
                raise self.fail("Unexpected character in an extensible match")
            self.at += 1
        self.expect("=")
        return Node("extensible", attribute, self.value())

    def raw_value(self) -> str:
        start = self.at
        while self.at < len(self.text) and self.text[self.at] not in "()":
            if self.text[self.at] == "\x00":
                raise self.fail("NUL in a value")
            self.at += 1
        return self.text[start : self.at]

    def value(self) -> str:
        raw = self.raw_value()
        if "*" in raw:
            raise self.fail("Unescaped '*' in a value")
        return _unescape(raw)


def _unescape(raw: str) -> str:
    """A value's `\\XX` escapes resolved (the bytes they spell read as UTF-8)."""
    if "\\" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out += ch.encode()
            i += 1
            continue
        pair = raw[i + 1 : i + 3]
        if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
            raise FilterError("A '\\' must be followed by two hexadecimal digits.")
        out.append(int(pair, 16))
        i += 3
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise FilterError("An escaped value is not UTF-8.") from None


def parse(text: str) -> Node:
    """The filter `text` as a tree; FilterError when it is not a filter. A filter without its
    outer parentheses (`uid=alice`, as ldapsearch accepts) is taken as if it had them."""
    text = text.strip()
    if not text:
        raise FilterError("The filter is empty.")
    if not text.startswith("("):
        text = f"({text})"
    parser = _Parser(text)
    node = parser.filter(0)
    if parser.at != len(text):
        raise parser.fail("Unexpected text after the filter")
    return node
