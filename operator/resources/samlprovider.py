"""The `SAMLProvider` custom resource: a SAML 2.0 identity provider in the core, and its metadata.

The operator turns a spec into `/api/v3/providers/saml/` fields (flows by slug, key pairs and
property mappings by their core names) and writes the IdP metadata document an SP loads, with
the SSO and SLO URLs, into the ConfigMap named by `metadataConfigMap`. The CRD schema is
generated from these models (`tessera.operator.crds`); the CEL rules are checked again here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tessera.core.wire import common as wire
from tessera.operator.resources import common
from tessera.operator.resources.common import Rule
from tessera.operator.resources.oauth2provider import SigningKey
from tessera.operator.resources.proxyprovider import HTTP_URL

Binding = Literal["redirect", "post"]
LogoutMethod = Literal["frontchannel_iframe", "frontchannel_native", "backchannel"]
DigestAlgorithm = Literal["sha1", "sha256", "sha384", "sha512"]
SignatureAlgorithm = Literal[
    "rsa-sha1",
    "rsa-sha256",
    "rsa-sha384",
    "rsa-sha512",
    "ecdsa-sha1",
    "ecdsa-sha256",
    "ecdsa-sha384",
    "ecdsa-sha512",
    "dsa-sha1",
]
NameIDPolicy = Literal[
    "emailAddress",
    "persistent",
    "X509SubjectName",
    "WindowsDomainQualifiedName",
    "transient",
    "unspecified",
]

# The core's values (XML Signature and SAML URIs) of the short names above.
DIGESTS = {
    "sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
}
SIGNATURES = {
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "rsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "ecdsa-sha1": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
    "ecdsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "ecdsa-sha384": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "ecdsa-sha512": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "dsa-sha1": "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
}
NAME_ID_POLICIES = {
    "emailAddress": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
    "persistent": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "X509SubjectName": "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
    "WindowsDomainQualifiedName": (
        "urn:oasis:names:tc:SAML:2.0:nameid-format:WindowsDomainQualifiedName"
    ),
    "transient": "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    "unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
}
# The core's system SAML mappings, which a provider starts with (as one imported from metadata).
DEFAULT_MAPPINGS = [
    "authentik default SAML Mapping: UPN",
    "authentik default SAML Mapping: Name",
    "authentik default SAML Mapping: Email",
    "authentik default SAML Mapping: Username",
    "authentik default SAML Mapping: User ID",
    "authentik default SAML Mapping: Groups",
    "authentik default SAML Mapping: WindowsAccountname (Username)",
]

_UNIT = "(weeks|days|hours|minutes|seconds)=-?[0-9]{1,9}"
OFFSET_PATTERN = f"^{_UNIT}(;{_UNIT}){{0,4}}$"
# authentik's offsets: unit=amount pairs joined by ';', amounts may be negative (`minutes=-5`).
Offset = Annotated[str, Field(max_length=100, pattern=OFFSET_PATTERN)]
HttpURL = Annotated[str, Field(min_length=1, max_length=2000, pattern=HTTP_URL)]
MappingName = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]

_SIGNING_KEY_TO_SIGN = Rule(
    rule="has(self.signingKey) || !(self.signResponse || self.signLogoutRequest || "
    "self.signLogoutResponse)",
    message="signResponse, signLogoutRequest and signLogoutResponse need a signingKey",
    field_path=".signingKey",
)
_SLS_FOR_BACKCHANNEL = Rule(
    rule="self.logoutMethod != 'backchannel' || has(self.spMetadata) || "
    "(has(self.slsURL) && self.slsBinding == 'post')",
    message="backchannel logout posts to the SP: it needs slsURL and slsBinding post",
    field_path=".slsURL",
)
_ALGORITHM_FOR_GENERATED_KEY = Rule(
    rule="!has(self.signingKey) || !has(self.signingKey.generate) || "
    "(self.signingKey.generate == 'EC') == self.signatureAlgorithm.startsWith('ecdsa-')",
    message="signatureAlgorithm must suit the generated key: ecdsa-* for EC, rsa-* for RSA",
    field_path=".signatureAlgorithm",
)
_ACS_OR_METADATA = Rule(
    rule="has(self.acsURL) || has(self.spMetadata)",
    message="set acsURL, or spMetadata to take it from the SP's metadata",
    field_path=".acsURL",
)
_OWN_CONFIG_MAP = Rule(
    rule="!has(self.spMetadata) || !has(self.spMetadata.configMapRef) || "
    "self.spMetadata.configMapRef.name != self.metadataConfigMap.name",
    message="metadataConfigMap is written by the operator: it cannot be the SP metadata's "
    "ConfigMap",
    field_path=".metadataConfigMap.name",
)
_METADATA_CHOICE = Rule(
    rule="has(self.inline) != has(self.configMapRef)",
    message="set exactly one of inline and configMapRef",
)
MAX_INLINE = 128 * 1024


class KeyRef(common.Model):
    """An existing core certificate-key pair, by name."""

    name: wire.Name
    """Name of the core certificate-key pair."""


class ConfigMapKeyRef(common.Model):
    """A key of a ConfigMap in the resource's namespace."""

    name: common.KubeName
    """Name of the ConfigMap."""
    key: common.SecretKey = "metadata.xml"
    """Key in the ConfigMap's data."""


class SPMetadata(common.Model):
    """The service provider's SAML metadata (an EntityDescriptor with an SPSSODescriptor)."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(_METADATA_CHOICE)
    }

    inline: Annotated[str, Field(min_length=1, max_length=MAX_INLINE)] | None = None
    """The metadata document itself."""
    config_map_ref: ConfigMapKeyRef | None = None
    """A ConfigMap holding it; a change of the ConfigMap reconciles the provider at once."""

    @model_validator(mode="after")
    def _one_choice(self) -> SPMetadata:
        if (self.inline is None) == (self.config_map_ref is None):
            raise ValueError(_METADATA_CHOICE.message)
        return self


class SAMLProviderSpec(common.Model):
    """The desired SAML provider. What the SP is told is in metadataConfigMap."""

    model_config = common.Model.model_config | {
        "json_schema_extra": common.validations(
            _SIGNING_KEY_TO_SIGN,
            _SLS_FOR_BACKCHANNEL,
            _ACS_OR_METADATA,
            _OWN_CONFIG_MAP,
            _ALGORITHM_FOR_GENERATED_KEY,
        )
    }

    sp_metadata: SPMetadata | None = None
    """The SP's metadata: it gives acsURL and spBinding, audience (its entity ID), slsURL and
    slsBinding, and verificationKey (its signing certificate, when it signs its requests),
    each unless set here."""
    acs_url: Annotated[HttpURL | None, Field(alias="acsURL")] = None
    """The SP's Assertion Consumer Service URL, where responses are delivered."""
    sp_binding: Binding = "redirect"
    """How the SP sends its AuthnRequests (the response is always posted)."""
    audience: Text = ""
    """Audience restriction of the assertions (usually the SP's entity ID); empty: none (with
    spMetadata: its entity ID)."""
    issuer_override: Text = ""
    """The IdP's entity ID; empty: the core's `<core>/application/saml/<slug>/metadata/`."""
    sls_url: Annotated[HttpURL | None, Field(alias="slsURL")] = None
    """The SP's Single Logout Service URL; absent: no IdP-initiated logout."""
    sls_binding: Binding = "redirect"
    """How logout messages are sent to slsURL."""
    logout_method: LogoutMethod = "frontchannel_iframe"
    """How the IdP tells the SP of a logout (backchannel: a server-side POST to slsURL)."""
    assertion_valid_not_before: Offset = "minutes=-5"
    """Start of an assertion's validity relative to its issue (e.g. `minutes=-5`)."""
    assertion_valid_not_on_or_after: Offset = "minutes=5"
    """End of an assertion's validity relative to its issue."""
    session_valid_not_on_or_after: Offset = "minutes=86400"
    """End of the SP session (SessionNotOnOrAfter) relative to the login."""
    digest_algorithm: DigestAlgorithm = "sha256"
    """Digest of signatures (sha1 only for SPs that know nothing else)."""
    signature_algorithm: SignatureAlgorithm = "rsa-sha256"
    """Signature algorithm; must suit the signing key (rsa-* for RSA, ecdsa-* for EC keys)."""
    signing_key: SigningKey | None = None
    """The key that signs assertions, responses and the metadata; absent: nothing is signed."""
    verification_key: KeyRef | None = None
    """The SP's certificate: when set, AuthnRequests and LogoutRequests must be signed by it."""
    encryption_key: KeyRef | None = None
    """The SP's RSA certificate: when set, assertions are encrypted to it."""
    sign_assertion: bool = True
    """Sign the assertion (with signingKey)."""
    sign_response: bool = False
    """Sign the whole response (with signingKey)."""
    sign_logout_request: bool = False
    """Sign IdP-initiated LogoutRequests."""
    sign_logout_response: bool = False
    """Sign LogoutResponses."""
    property_mappings: Annotated[
        list[MappingName], Field(max_length=64), common.SET, common.UNIQUE
    ] = DEFAULT_MAPPINGS
    """Names of the core SAML property mappings giving the assertion's attributes."""
    name_id_mapping: MappingName | None = None
    """Name of the core SAML property mapping giving the NameID; absent: by the NameID policy."""
    authn_context_class_ref_mapping: MappingName | None = None
    """Name of the core SAML property mapping giving AuthnContextClassRef."""
    default_name_id_policy: NameIDPolicy = "unspecified"
    """NameID format when the AuthnRequest asks for none."""
    default_relay_state: Text = ""
    """RelayState of IdP-initiated logins."""
    authorization_flow: Annotated[
        wire.Slug, Field(description="Slug of the core flow run when a user authorizes the SP.")
    ] = "default-provider-authorization-implicit-consent"
    invalidation_flow: Annotated[
        wire.Slug,
        Field(description="Slug of the core flow run when a user signs out through the SP."),
    ] = "default-invalidation-flow"
    metadata_config_map: common.SecretRef
    """ConfigMap the operator writes: metadata.xml (the IdP metadata), entity_id, metadata_url
    and the SSO and SLO URLs of both bindings."""
    deletion_policy: common.DeletionPolicy = "Delete"
    """Delete: remove the core provider with the resource; Orphan: keep it, unmanaged."""

    @model_validator(mode="after")
    def _rules(self) -> SAMLProviderSpec:
        signs = self.sign_response or self.sign_logout_request or self.sign_logout_response
        if signs and self.signing_key is None:
            raise ValueError(_SIGNING_KEY_TO_SIGN.message)
        if (
            self.logout_method == "backchannel"
            and self.sp_metadata is None
            and (self.sls_url is None or self.sls_binding != "post")
        ):
            raise ValueError(_SLS_FOR_BACKCHANNEL.message)
        generate = self.signing_key.generate if self.signing_key else None
        if generate is not None and (generate == "EC") != self.signature_algorithm.startswith(
            "ecdsa-"
        ):
            raise ValueError(_ALGORITHM_FOR_GENERATED_KEY.message)
        if self.acs_url is None and self.sp_metadata is None:
            raise ValueError(_ACS_OR_METADATA.message)
        ref = self.sp_metadata.config_map_ref if self.sp_metadata else None
        if ref is not None and ref.name == self.metadata_config_map.name:
            raise ValueError(_OWN_CONFIG_MAP.message)
        return self


class SAMLProviderStatus(common.Status):
    """The core provider this resource manages and where SPs find it."""

    provider_pk: Annotated[int, Field(ge=1, json_schema_extra={"format": "int64"})] | None = None
    """Primary key of the core SAML provider."""
    acs_url: Annotated[str | None, Field(alias="acsURL", max_length=2000)] = None
    """The ACS URL the core provider has (from the spec or the SP's metadata)."""
    entity_id: Annotated[str | None, Field(alias="entityID", max_length=2000)] = None
    """The IdP's entity ID (issuer)."""
    metadata_url: Annotated[str | None, Field(alias="metadataURL", max_length=2000)] = None
    """Where SPs download the IdP metadata (once an Application serves the provider)."""


KIND = common.Kind(
    kind="SAMLProvider",
    plural="samlproviders",
    short_names=("tssaml",),
    spec=SAMLProviderSpec,
    status=SAMLProviderStatus,
    description="A SAML 2.0 provider in Tessera's core, with its IdP metadata ConfigMap.",
    columns=(
        *common.READY_COLUMNS,
        common.Column("ACS URL", "string", ".status.acsURL", "The SP's Assertion Consumer Service"),
        common.Column("Metadata URL", "string", ".status.metadataURL", "IdP metadata", priority=1),
        common.Column(
            "Provider", "integer", ".status.providerPk", "Core provider primary key", priority=1
        ),
        common.AGE_COLUMN,
    ),
)
