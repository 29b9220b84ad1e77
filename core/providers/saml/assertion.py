"""Building SAML Responses: NameID, attribute statements, conditions, signing and encryption.

The order is authentik's: the assertion is signed (`sign_assertion`), then encrypted
(`encryption_kp`), then the response is signed (`sign_response`). Attribute values come from the
provider's SAML property mappings: authentik's system mappings, unchanged, are computed here
directly; any other runs in the expression pool (`policies.pool`, shape `values`), and a mapping
that fails contributes no attribute.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from tessera.core import crypto, wire
from tessera.core.crypto import xmldsig
from tessera.core.identity import people
from tessera.core.policies import pool, sandbox, views
from tessera.core.providers.saml import records
from tessera.core.providers.saml.xml import (
    AC_PASSWORD_PROTECTED,
    ATTRNAME_URI,
    CM_BEARER,
    SAML,
    SAMLP,
    STATUS_REQUESTER,
    STATUS_RESPONDER,
    STATUS_SUCCESS,
    XS,
    XSI,
    q,
)

MAPPING_STEPS = 100_000
MAPPING_TIMEOUT = 2.0
NSMAP = {"samlp": SAMLP, "saml": SAML}
TOP_LEVEL = frozenset(
    {
        STATUS_SUCCESS,
        STATUS_REQUESTER,
        STATUS_RESPONDER,
        "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch",
    }
)


def new_id() -> str:
    return "_" + secrets.token_hex(20)


def instant(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Keys:
    """The provider's keys as loaded for one response."""

    signer: xmldsig.Signer | None = None
    encryption_cert: str | None = None
    verification_cert: str | None = None


@dataclass
class Subject:
    user: dict[str, Any]
    groups: list[dict[str, Any]] = field(default_factory=list)
    all_groups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Issue:
    """What one Response says and to whom."""

    issuer: str
    acs_url: str
    in_response_to: str | None
    name_id: str
    name_id_format: str
    session_index: str
    authn_instant: dt.datetime
    authn_context: str
    attributes: list[tuple[str, str | None, list[str]]]
    now: dt.datetime


# NameID -------------------------------------------------------------------------------------


def name_id(
    keyring: crypto.Keyring,
    fmt: str,
    subject: Subject,
    session_digest: str,
    provider_pk: int,
) -> str:
    """The NameID value of `fmt` for the user (authentik's choices)."""
    user = subject.user
    persistent = people.uid(keyring, user["pk"])
    attributes = user.get("attributes") or {}
    match fmt:
        case wire.saml.NAMEID_EMAIL:
            return str(user["email"])
        case wire.saml.NAMEID_X509:
            return str(attributes.get("distinguishedName") or persistent)
        case wire.saml.NAMEID_WINDOWS:
            return str(attributes.get("upn") or persistent)
        case wire.saml.NAMEID_TRANSIENT:
            return keyring.digest(f"saml-transient:{provider_pk}:{session_digest}")
        case _:
            return persistent


# Mappings -----------------------------------------------------------------------------------


def _native(mapping: dict[str, Any], subject: Subject) -> list[str] | None:
    """authentik's system mappings, unchanged, computed directly instead of in the sandbox."""
    managed = mapping.get("managed") or ""
    short = managed.removeprefix(records.managed_name(""))
    default = records.DEFAULT_MAPPINGS.get(short)
    if default is None or managed != records.managed_name(short):
        return None
    if default[2] != mapping["expression"]:
        return None
    user = subject.user
    match short:
        case "upn":
            return [str((user.get("attributes") or {}).get("upn", user["email"]))]
        case "name":
            return [str(user["name"])]
        case "email":
            return [str(user["email"])]
        case "username" | "ms-windowsaccountname":
            return [str(user["username"])]
        case "uid":
            return [str(user["pk"])]
        case "groups":
            return [str(g["name"]) for g in subject.groups]
    return None


async def evaluate(
    mapping: dict[str, Any], subject: Subject, context: dict[str, Any], client_ip: str
) -> list[str] | None:
    """A mapping's values (None when it failed)."""
    native = _native(mapping, subject)
    if native is not None:
        return native
    user = views.UserView(subject.user, subject.groups, subject.all_groups)
    variables = views.policy_variables(
        user, context=context, http_request=views.HttpRequestView(client_ip=client_ip)
    )
    try:
        result = await pool.evaluate(
            mapping["expression"],
            variables,
            shape="values",
            steps=MAPPING_STEPS,
            seconds=MAPPING_TIMEOUT,
        )
    except sandbox.SandboxError:
        return None
    value = result.value
    return list(value) if isinstance(value, list) else None


# The document -------------------------------------------------------------------------------


def _status(parent: Any, code: str, message: str | None = None) -> None:
    """`Status`; a second-level code (NoPassive, InvalidNameIDPolicy, …) goes inside the
    top-level one it belongs to (SAML core 3.2.2.2)."""
    status = etree.SubElement(parent, q(SAMLP, "Status"))
    if code in TOP_LEVEL:
        etree.SubElement(status, q(SAMLP, "StatusCode"), Value=code)
    else:
        top = etree.SubElement(status, q(SAMLP, "StatusCode"), Value=STATUS_REQUESTER)
        etree.SubElement(top, q(SAMLP, "StatusCode"), Value=code)
    if code != STATUS_SUCCESS and message:
        etree.SubElement(status, q(SAMLP, "StatusMessage")).text = message


def _response(issuer: str, acs_url: str, in_response_to: str | None, now: dt.datetime) -> Any:
    root = etree.Element(q(SAMLP, "Response"), nsmap=NSMAP)
    root.set("ID", new_id())
    root.set("Version", "2.0")
    root.set("IssueInstant", instant(now))
    root.set("Destination", acs_url)
    if in_response_to:
        root.set("InResponseTo", in_response_to)
    etree.SubElement(root, q(SAML, "Issuer")).text = issuer
    return root


def _assertion(row: dict[str, Any], issue: Issue) -> Any:
    now = issue.now
    not_before = now + wire.saml.offset(row["assertion_valid_not_before"])
    not_after = now + wire.saml.offset(row["assertion_valid_not_on_or_after"])
    session_end = now + wire.saml.offset(row["session_valid_not_on_or_after"])
    assertion = etree.Element(q(SAML, "Assertion"), nsmap={"saml": SAML})
    assertion.set("ID", new_id())
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", instant(now))
    etree.SubElement(assertion, q(SAML, "Issuer")).text = issue.issuer
    subject = etree.SubElement(assertion, q(SAML, "Subject"))
    nid = etree.SubElement(subject, q(SAML, "NameID"), Format=issue.name_id_format)
    nid.text = issue.name_id
    confirmation = etree.SubElement(subject, q(SAML, "SubjectConfirmation"), Method=CM_BEARER)
    data = etree.SubElement(confirmation, q(SAML, "SubjectConfirmationData"))
    data.set("NotOnOrAfter", instant(not_after))
    data.set("Recipient", issue.acs_url)
    if issue.in_response_to:
        data.set("InResponseTo", issue.in_response_to)
    conditions = etree.SubElement(assertion, q(SAML, "Conditions"))
    conditions.set("NotBefore", instant(not_before))
    conditions.set("NotOnOrAfter", instant(not_after))
    if row["audience"]:
        restriction = etree.SubElement(conditions, q(SAML, "AudienceRestriction"))
        etree.SubElement(restriction, q(SAML, "Audience")).text = row["audience"]
    statement = etree.SubElement(assertion, q(SAML, "AuthnStatement"))
    statement.set("AuthnInstant", instant(issue.authn_instant))
    statement.set("SessionIndex", issue.session_index)
    statement.set("SessionNotOnOrAfter", instant(session_end))
    context = etree.SubElement(statement, q(SAML, "AuthnContext"))
    etree.SubElement(context, q(SAML, "AuthnContextClassRef")).text = (
        issue.authn_context or AC_PASSWORD_PROTECTED
    )
    if issue.attributes:
        attributes = etree.SubElement(assertion, q(SAML, "AttributeStatement"))
        for saml_name, friendly, values in issue.attributes:
            attribute = etree.SubElement(
                attributes, q(SAML, "Attribute"), Name=saml_name, NameFormat=ATTRNAME_URI
            )
            if friendly:
                attribute.set("FriendlyName", friendly)
            for value in values:
                # The prefixes are declared here: `xs:string` is a QName in content, which
                # an SP re-serializing a decrypted assertion would otherwise leave unbound.
                element = etree.SubElement(
                    attribute, q(SAML, "AttributeValue"), nsmap={"xs": XS, "xsi": XSI}
                )
                element.set(q(XSI, "type"), "xs:string")
                element.text = value
    return assertion


def _sign(element: Any, row: dict[str, Any], signer: xmldsig.Signer) -> None:
    xmldsig.sign(
        element,
        signer,
        signature_algorithm=row["signature_algorithm"],
        digest_algorithm=row["digest_algorithm"],
    )


def success(row: dict[str, Any], keys: Keys, issue: Issue) -> bytes:
    """A signed (and maybe encrypted) Response carrying one assertion."""
    response = _response(issue.issuer, issue.acs_url, issue.in_response_to, issue.now)
    _status(response, STATUS_SUCCESS)
    assertion = _assertion(row, issue)
    response.append(assertion)
    if row["sign_assertion"] and keys.signer is not None:
        _sign(assertion, row, keys.signer)
    if keys.encryption_cert is not None:
        xmldsig.encrypt(assertion, keys.encryption_cert)
    if row["sign_response"] and keys.signer is not None:
        _sign(response, row, keys.signer)
    return bytes(etree.tostring(response, encoding="UTF-8", xml_declaration=True))


def failure(
    row: dict[str, Any],
    keys: Keys,
    issuer: str,
    acs_url: str,
    in_response_to: str | None,
    code: str,
    message: str,
    now: dt.datetime,
) -> bytes:
    """A Response with an error status and no assertion."""
    response = _response(issuer, acs_url, in_response_to, now)
    _status(response, code, message)
    if row["sign_response"] and keys.signer is not None:
        _sign(response, row, keys.signer)
    return bytes(etree.tostring(response, encoding="UTF-8", xml_declaration=True))
