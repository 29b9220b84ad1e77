"""Wire models of SAML providers and SAML property mappings (authentik's shapes).

- `/api/v3/providers/saml/`: `SAMLProvider`, `SAMLProviderRequest`; `…/<pk>/metadata/` answers
  `SAMLMetadata`; `…/import_metadata/` takes `SAMLProviderImportRequest` (a form with the SP's
  metadata document);
- `/api/v3/propertymappings/provider/saml/`: `SAMLPropertyMapping`, `SAMLPropertyMappingRequest`.

The algorithm and NameID values are authentik's: the URIs of XML Signature and SAML. Offsets such
as `assertion_valid_not_before` are authentik's duration strings, which here may be negative
(`minutes=-5`), and are bounded to a year either way.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from tessera.core.wire.common import Name, Request, Response, Uuid
from tessera.core.wire.oauth2 import ProviderBase
from tessera.core.wire.outposts import HttpUrl, OptionalHttpUrl

SAMLBinding = Literal["redirect", "post"]
SAMLLogoutMethod = Literal["frontchannel_iframe", "frontchannel_native", "backchannel"]

NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_X509 = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName"
NAMEID_WINDOWS = "urn:oasis:names:tc:SAML:2.0:nameid-format:WindowsDomainQualifiedName"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NAMEID_UNSPECIFIED: Final = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NameIDPolicy = Literal[
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:WindowsDomainQualifiedName",
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
]
NAMEID_FORMATS: tuple[str, ...] = NameIDPolicy.__args__  # type: ignore[attr-defined]

DIGEST_SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
DIGEST_SHA256: Final = "http://www.w3.org/2001/04/xmlenc#sha256"
DigestAlgorithm = Literal[
    "http://www.w3.org/2000/09/xmldsig#sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
]
RSA_SHA256: Final = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SignatureAlgorithm = Literal[
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
]

# Offsets ------------------------------------------------------------------------------------

_OFFSET_PART = re.compile(r"(weeks|days|hours|minutes|seconds)=(-?[0-9]{1,9})", re.ASCII)
_OFFSET_SECONDS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
MAX_OFFSET = 366 * 86400 * 10  # authentik's session default is 60 days; ten years bound it
OFFSET_EXAMPLE = "Enter an offset such as 'minutes=-5' or 'hours=1;minutes=2'."


def offset(value: str) -> dt.timedelta:
    """The time offset a stored or given string names (ValueError when it names none)."""
    parts = [p.strip() for p in value.split(";") if p.strip()]
    if not parts or len(value) > 100:
        raise ValueError(OFFSET_EXAMPLE)
    total = 0
    for part in parts:
        match = _OFFSET_PART.fullmatch(part.lower())
        if match is None:
            raise ValueError(OFFSET_EXAMPLE)
        total += int(match.group(2)) * _OFFSET_SECONDS[match.group(1)]
    if abs(total) > MAX_OFFSET:
        raise ValueError("An offset may be at most ten years either way.")
    return dt.timedelta(seconds=total)


def _offset(value: str) -> str:
    try:
        offset(value)
    except ValueError as exc:
        raise PydanticCustomError("offset", "{message}", {"message": str(exc)}) from None
    return ";".join(p.strip().lower() for p in value.split(";") if p.strip())


Offset = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_offset)]


# Providers ----------------------------------------------------------------------------------


class SAMLProviderRequest(Request):
    name: Name
    authentication_flow: Uuid | None = None
    authorization_flow: Uuid
    invalidation_flow: Uuid
    property_mappings: Annotated[list[Uuid], Field(max_length=100)] = Field(default_factory=list)
    acs_url: HttpUrl
    sls_url: OptionalHttpUrl = ""
    audience: Annotated[str, Field(max_length=2000)] = ""
    issuer_override: Annotated[str, Field(max_length=2000)] = ""
    assertion_valid_not_before: Offset = "minutes=-5"
    assertion_valid_not_on_or_after: Offset = "minutes=5"
    session_valid_not_on_or_after: Offset = "minutes=86400"
    name_id_mapping: Uuid | None = None
    authn_context_class_ref_mapping: Uuid | None = None
    digest_algorithm: DigestAlgorithm = DIGEST_SHA256
    signature_algorithm: SignatureAlgorithm = RSA_SHA256
    signing_kp: Uuid | None = None
    verification_kp: Uuid | None = None
    encryption_kp: Uuid | None = None
    sign_assertion: bool = True
    sign_response: bool = False
    sign_logout_request: bool = False
    sign_logout_response: bool = False
    sp_binding: SAMLBinding = "redirect"
    sls_binding: SAMLBinding = "redirect"
    logout_method: SAMLLogoutMethod = "frontchannel_iframe"
    default_relay_state: Annotated[str, Field(max_length=2000)] = ""
    default_name_id_policy: NameIDPolicy = NAMEID_UNSPECIFIED
    managed: Annotated[str, Field(min_length=1, max_length=300)] | None = None

    @field_validator("authentication_flow")
    @classmethod
    def _no_authentication_flow(cls, value: str | None) -> None:
        if value is not None:
            raise ValueError(
                "Tessera signs users in with the brand's authentication flow; leave this empty."
            )
        return None


class SAMLProvider(ProviderBase):
    authorization_flow: Uuid
    invalidation_flow: Uuid
    acs_url: str
    sls_url: str
    audience: str
    issuer_override: str
    assertion_valid_not_before: str
    assertion_valid_not_on_or_after: str
    session_valid_not_on_or_after: str
    name_id_mapping: Uuid | None
    authn_context_class_ref_mapping: Uuid | None
    digest_algorithm: DigestAlgorithm
    signature_algorithm: SignatureAlgorithm
    signing_kp: Uuid | None
    verification_kp: Uuid | None
    encryption_kp: Uuid | None
    sign_assertion: bool
    sign_response: bool
    sign_logout_request: bool
    sign_logout_response: bool
    sp_binding: SAMLBinding
    sls_binding: SAMLBinding
    logout_method: SAMLLogoutMethod
    default_relay_state: str
    default_name_id_policy: NameIDPolicy
    url_download_metadata: str
    url_issuer: str
    url_unified: str
    url_unified_init: str
    url_sso_post: str
    url_sso_redirect: str
    url_sso_init: str
    url_slo_post: str
    url_slo_redirect: str


class SAMLProviderImportRequest(Request):
    """The multipart form of `import_metadata/` (described in the OpenAPI document; the handler
    reads the form itself): the SP's metadata document as `file`."""

    name: Name
    authorization_flow: Uuid
    invalidation_flow: Uuid
    file: Annotated[str, WithJsonSchema({"type": "string", "format": "binary"})]


class SAMLMetadata(Response):
    metadata: str
    download_url: str | None = None


# Property mappings --------------------------------------------------------------------------


class SAMLPropertyMappingRequest(Request):
    # Set only on the system mappings Tessera creates; a request may repeat a mapping's own.
    managed: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    name: Name
    expression: Annotated[str, Field(min_length=1, max_length=65536)]
    saml_name: Annotated[str, Field(min_length=1, max_length=500)]
    friendly_name: Annotated[str, Field(max_length=200)] | None = None


class SAMLPropertyMapping(Response):
    pk: Uuid
    managed: str | None
    name: str
    expression: str
    component: str
    verbose_name: str
    verbose_name_plural: str
    meta_model_name: str
    saml_name: str
    friendly_name: str | None
