"""Reading SAML messages and metadata safely, and the names SAML uses.

Every XML input (AuthnRequest, LogoutRequest, LogoutResponse, SP metadata) comes through
`parse`: a size limit first, then lxml with no DTD loading, no entity resolution, no network and
no huge-tree mode; a document that declares a DTD at all (where XXE and entity expansion live) is
refused outright. The HTTP-Redirect binding's DEFLATE is inflated by `inflate` with a ceiling on
the output, so a small query cannot expand into gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any

from lxml import etree

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XS = "http://www.w3.org/2001/XMLSchema"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_RESPONDER = "urn:oasis:names:tc:SAML:2.0:status:Responder"
STATUS_REQUEST_DENIED = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
STATUS_INVALID_NAMEID_POLICY = "urn:oasis:names:tc:SAML:2.0:status:InvalidNameIDPolicy"
STATUS_NO_PASSIVE = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
CM_BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
AC_PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105
AC_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
ATTRNAME_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
ATTRNAME_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"

MAX_MESSAGE = 256 * 1024  # a decoded SAML message
MAX_METADATA = 1024 * 1024  # an SP's metadata document
MAX_ENCODED = 512 * 1024  # base64 of a message, as received
MAX_DEPTH = 64


class MessageError(ValueError):
    """A SAML message that cannot be read: malformed, too big, or hostile."""


_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=False,
    remove_pis=True,
    collect_ids=False,
)


def _depth(element: Any, limit: int) -> None:
    stack = [(element, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise MessageError("the XML is nested too deeply")
        stack.extend((child, depth + 1) for child in node)


def parse(data: bytes, *, limit: int = MAX_MESSAGE) -> Any:
    """The root element of `data`.

    # SECURITY: no DTD (so no external entity, no entity expansion), no network, bounded size
    # and depth. lxml's parser is shared; it holds no state between documents.
    """
    if len(data) > limit:
        raise MessageError("the XML document is too large")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise MessageError("XML documents with a DTD are refused")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except etree.XMLSyntaxError:
        raise MessageError("the XML is malformed") from None
    if root is None:
        raise MessageError("the XML is empty")
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise MessageError("XML documents with a DTD are refused")
    _depth(root, MAX_DEPTH)
    return root


def b64decode(value: str, limit: int = MAX_ENCODED) -> bytes:
    if len(value) > limit:
        raise MessageError("the message is too large")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise MessageError("the message is not base64") from None


def inflate(data: bytes, limit: int = MAX_MESSAGE) -> bytes:
    """Raw DEFLATE (the HTTP-Redirect binding), refusing output beyond `limit` bytes."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise MessageError("the message is not DEFLATE-compressed") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise MessageError("the message inflates beyond the size allowed")
    return out


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def text_of(element: Any) -> str:
    """An element's whole text content.

    # SECURITY: comments and processing instructions inside the element are skipped and the
    # text around them joined, so `admin@x<!---->.evil` reads as one value, never as its
    # first text node (the 2018 comment-truncation attacks).
    """
    if element is None:
        return ""
    return "".join(_texts(element)).strip()


def _texts(element: Any) -> list[str]:
    out: list[str] = []
    if element.text:
        out.append(element.text)
    for child in element:
        if isinstance(child.tag, str):
            out.extend(_texts(child))
        if child.tail:
            out.append(child.tail)
    return out


def q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def tostring(element: Any) -> bytes:
    return bytes(etree.tostring(element, encoding="UTF-8", xml_declaration=False))
