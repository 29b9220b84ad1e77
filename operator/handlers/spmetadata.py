"""A service provider's SAML metadata, as a `SAMLProvider`'s `spMetadata` gives it: read from the
spec or a ConfigMap, parsed, and turned into what the core provider needs (ACS and SLS URLs and
bindings, the SP's entity ID, its request-signing certificate).

SECURITY: the document comes from whoever may write the resource or the ConfigMap. It is bounded
in size, refused when it has a DOCTYPE (no entity expansion, no external entities, no DTD is ever
loaded), parsed without network access, and every value taken from it is checked (http(s) URLs,
a certificate that parses) before it reaches the core. Failures are `InvalidSpec` naming the
field, never the document's content beyond the offending value's kind.

`register` adds the index and ConfigMap handler that reconcile a SAMLProvider at once when the
ConfigMap of its SP metadata changes (as `secretrefs` does for client secrets).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree

from tessera.operator.handlers import kube, owned
from tessera.operator.handlers.runtime import InvalidSpec, Runtime
from tessera.operator.resources import common, proxyprovider, samlprovider

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
BINDINGS = {
    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST": "post",
    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect": "redirect",
}
MAX_BYTES = 256 * 1024
FIELD = "spec.spMetadata"
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)
_HTTP_URL = re.compile(proxyprovider.HTTP_URL)


@dataclasses.dataclass(frozen=True)
class ServiceProvider:
    """What the core provider takes from an SP's metadata."""

    entity_id: str
    acs_url: str
    acs_binding: str
    sls_url: str | None
    sls_binding: str | None
    certificate: str | None  # PEM of the SP's signing certificate
    fingerprint: str | None  # its SHA-256, as the core writes fingerprints


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _endpoint(sp: Any, name: str, where: str) -> tuple[str, str] | None:
    """(Location, binding) of the SP's endpoint of a kind: HTTP-POST first, then HTTP-Redirect
    (other bindings, e.g. Artifact, are not served)."""
    found: dict[str, str] = {}
    for element in sp.findall(_q(MD, name)):
        binding = BINDINGS.get(element.get("Binding") or "")
        location = (element.get("Location") or "").strip()
        if binding is None or binding in found:
            continue
        if not _HTTP_URL.fullmatch(location) or len(location) > 2000:
            raise InvalidSpec(f"{where}: the {name} Location is not an http(s) URL")
        found[binding] = location
    for binding in ("post", "redirect"):
        if binding in found:
            return found[binding], binding
    return None


def _certificate(sp: Any) -> tuple[str, str] | None:
    """(PEM, SHA-256 fingerprint) of the SP's signing certificate, if it names one."""
    for descriptor in sp.findall(_q(MD, "KeyDescriptor")):
        if descriptor.get("use") not in (None, "signing"):
            continue
        element = descriptor.find(
            f"{_q(DS, 'KeyInfo')}/{_q(DS, 'X509Data')}/{_q(DS, 'X509Certificate')}"
        )
        text = "".join((element.text or "").split()) if element is not None else ""
        if not text:
            continue
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise InvalidSpec(
                f"{FIELD}: the signing certificate is not a valid X.509 certificate"
            ) from None
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        fingerprint = ":".join(f"{b:02x}" for b in cert.fingerprint(hashes.SHA256()))
        return pem, fingerprint
    return None


def parse(document: str) -> ServiceProvider:
    """The SP described by `document` (InvalidSpec when it is not usable SP metadata)."""
    data = document.encode()
    if len(data) > MAX_BYTES:
        raise InvalidSpec(f"{FIELD}: the metadata is larger than {MAX_BYTES // 1024} KiB")
    # SECURITY: no DTD at all: neither entity expansion (billion laughs) nor external entities.
    if re.search(rb"<!\s*(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise InvalidSpec(f"{FIELD}: a DOCTYPE or ENTITY declaration is not accepted")
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise InvalidSpec(f"{FIELD}: the metadata is not well-formed XML") from None
    if root.tag == _q(MD, "EntitiesDescriptor"):
        entities = root.findall(_q(MD, "EntityDescriptor"))
        if len(entities) != 1:
            raise InvalidSpec(f"{FIELD}: the metadata must describe exactly one service provider")
        root = entities[0]
    if root.tag != _q(MD, "EntityDescriptor"):
        raise InvalidSpec(f"{FIELD}: the document is not SAML metadata (no EntityDescriptor)")
    sp = root.find(_q(MD, "SPSSODescriptor"))
    if sp is None:
        raise InvalidSpec(f"{FIELD}: the metadata has no SPSSODescriptor")
    entity_id = (root.get("entityID") or "").strip()
    if not entity_id or len(entity_id) > 2000:
        raise InvalidSpec(f"{FIELD}: the metadata names no entityID (or one over 2000 characters)")
    acs = _endpoint(sp, "AssertionConsumerService", FIELD)
    if acs is None:
        raise InvalidSpec(
            f"{FIELD}: the metadata has no AssertionConsumerService with the HTTP-POST or "
            "HTTP-Redirect binding"
        )
    sls = _endpoint(sp, "SingleLogoutService", FIELD)
    cert = _certificate(sp)
    return ServiceProvider(
        entity_id=entity_id,
        acs_url=acs[0],
        acs_binding=acs[1],
        sls_url=sls[0] if sls else None,
        sls_binding=sls[1] if sls else None,
        certificate=cert[0] if cert else None,
        fingerprint=cert[1] if cert else None,
    )


async def read(api: Any, namespace: str, source: samlprovider.SPMetadata) -> ServiceProvider:
    """The SP of `spMetadata`: inline, or the key of a ConfigMap in the resource's namespace."""
    if source.inline is not None:
        return parse(source.inline)
    ref = source.config_map_ref
    assert ref is not None
    where = f"{FIELD}.configMapRef"
    # SECURITY: references stay in the resource's namespace.
    found = await owned.read(api, owned.Kind("v1", "configmaps"), namespace, ref.name)
    if found is None:
        raise InvalidSpec(f"{where}.name: no ConfigMap {ref.name!r} in namespace {namespace!r}")
    data: Mapping[str, Any] = found.get("data") or {}
    text = data.get(ref.key)
    if not isinstance(text, str) or not text.strip():
        raise InvalidSpec(f"{where}.key: ConfigMap {ref.name!r} has no text key {ref.key!r}")
    return parse(text)


# Prompt reconciles when a referenced ConfigMap changes -------------------------------------

ANNOTATION = "tessera.dev/sp-metadata-version"
INDEX = "samlproviders_by_config_map"
ABSENT = "absent"

Key = tuple[str, str]  # namespace, ConfigMap name


def entry(namespace: str | None, name: str | None, spec: Mapping[str, Any]) -> dict[Key, str]:
    """The index entry of one SAMLProvider: the ConfigMap of its SP metadata -> its name."""
    source = spec.get("spMetadata")
    ref = source.get("configMapRef") if isinstance(source, Mapping) else None
    if not namespace or not name or not isinstance(ref, Mapping) or not ref.get("name"):
        return {}
    return {(namespace, str(ref["name"])): name}


def version(event: str | None, body: Mapping[str, Any]) -> str:
    """The annotation's value for a ConfigMap event: its resourceVersion, or `absent`."""
    if event == "DELETED":
        return ABSENT
    return str(body.get("metadata", {}).get("resourceVersion") or ABSENT)


def register(reg: kopf.OperatorRegistry) -> None:
    """Add the index of SAMLProviders by SP metadata ConfigMap, and the ConfigMap handler: a
    change of the ConfigMap writes its resourceVersion into the annotation `ANNOTATION` of each
    SAMLProvider naming it, which Kopf answers with the provider's update handler at once.
    ConfigMaps no provider names are ignored (a `when` filter on the index)."""

    @kopf.index(common.GROUP, common.VERSION, samlprovider.KIND.plural, id=INDEX, registry=reg)
    def samlproviders_by_config_map(
        namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[Key, str]:
        return entry(namespace, name, spec)

    def referenced(namespace: str | None, name: str | None, **kwargs: Any) -> bool:
        return (namespace or "", name or "") in kwargs[INDEX]

    @kopf.on.event("v1", "configmaps", id="sp-metadata-ref", when=referenced, registry=reg)
    async def config_map_changed(
        memo: kopf.Memo,
        type: str | None,
        namespace: str | None,
        name: str | None,
        body: kopf.Body,
        **kwargs: Any,
    ) -> None:
        if type is None:
            return  # the initial listing: every provider's resume handler reads its ConfigMap
        rt: Runtime = memo["runtime"]
        value = version(type, body)
        for provider in sorted(set(kwargs[INDEX].get((namespace or "", name or ""), ()))):
            await kube.annotate_custom(
                rt.kube,
                common.GROUP,
                common.VERSION,
                samlprovider.KIND.plural,
                namespace or "",
                provider,
                {ANNOTATION: value},
            )
