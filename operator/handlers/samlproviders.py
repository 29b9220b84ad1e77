"""Reconcile a `SAMLProvider` resource into a core SAML provider and its IdP metadata ConfigMap.

Called by the handlers registered in `tessera.operator.handlers` (create, update, resume, the
drift timer, delete) through `runtime.Reconciler`. Flows are resolved by slug, key pairs and
property mappings by their core names. The core provider is found by its `managed` marker
(`tessera.dev/SAMLProvider/<ns>/<name>/<uid>`) before anything is created, so a retry never makes
a second one, and one edited or deleted in the core is put back by the next reconcile.

The metadata and the SSO URLs name the application's slug, so the ConfigMap is written once an
`Application` serves the provider: the Application's reconcile annotates the SAMLProvider
(`tessera.dev/application-slug`, by `link`), which runs this reconcile at once. The core signs
the metadata anew (a fresh ID and signature) on every request, so the ConfigMap is rewritten only
when the document differs in anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import kopf
from lxml import etree

from tessera.operator import client
from tessera.operator.handlers import kube, objects, owned, providers, spmetadata
from tessera.operator.handlers.runtime import InvalidSpec, Runtime
from tessera.operator.resources import common, samlprovider

KIND = samlprovider.KIND.kind
PATH = "providers/saml/"
MAPPINGS = "propertymappings/provider/saml/"
SYSTEM_MAPPINGS = "goauthentik.io/providers/saml/"
MAX_NAME = 200  # the core's limit on a provider's name
SLUG_ANNOTATION = "tessera.dev/application-slug"
METADATA_KEY = "metadata.xml"
DS = "http://www.w3.org/2000/09/xmldsig#"
_COMPARED = (
    "name",
    "authorization_flow",
    "invalidation_flow",
    "acs_url",
    "sls_url",
    "audience",
    "issuer_override",
    "assertion_valid_not_before",
    "assertion_valid_not_on_or_after",
    "session_valid_not_on_or_after",
    "name_id_mapping",
    "authn_context_class_ref_mapping",
    "digest_algorithm",
    "signature_algorithm",
    "signing_kp",
    "verification_kp",
    "encryption_kp",
    "sign_assertion",
    "sign_response",
    "sign_logout_request",
    "sign_logout_response",
    "sp_binding",
    "sls_binding",
    "logout_method",
    "default_relay_state",
    "default_name_id_policy",
)
# ConfigMap key -> the core provider's URL field.
URLS = {
    "metadata_url": "url_download_metadata",
    "sso_url_redirect": "url_sso_redirect",
    "sso_url_post": "url_sso_post",
    "sso_url_init": "url_sso_init",
    "slo_url_redirect": "url_slo_redirect",
    "slo_url_post": "url_slo_post",
}


def parse(body: Mapping[str, Any]) -> samlprovider.SAMLProviderSpec:
    return samlprovider.SAMLProviderSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


def core_name(body: Mapping[str, Any]) -> str:
    """The core provider's (unique) name: `<namespace>/saml/<name>`, which no other kind's core
    name can equal (a Kubernetes name has no `/`)."""
    name = f"{body['metadata']['namespace']}/saml/{body['metadata']['name']}"
    if len(name) > MAX_NAME:
        raise InvalidSpec(
            f"metadata.name: namespace and name together exceed the core's {MAX_NAME} characters"
        )
    return name


async def mapping_pk(rt: Runtime, name: str, where: str) -> str:
    """The core SAML property mapping named `name` (the system one first, if an admin made
    another of the same name)."""
    found = [m for m in await rt.core.list(MAPPINGS, name=name) if m.get("name") == name]
    if not found:
        raise InvalidSpec(f"{where}: the core has no SAML property mapping named {name!r}")
    found.sort(key=lambda m: not str(m.get("managed") or "").startswith(SYSTEM_MAPPINGS))
    return str(found[0]["pk"])


async def _optional_mapping(rt: Runtime, name: str | None, field: str) -> str | None:
    return None if name is None else await mapping_pk(rt, name, f"spec.{field}")


async def _optional_key(rt: Runtime, key: samlprovider.KeyRef | None, field: str) -> str | None:
    return None if key is None else await providers.keypair_pk(rt.core, key.name, field)


def sp_keypair_name(body: Mapping[str, Any]) -> str:
    """Name of the key pair holding the certificate of the SP's metadata (at most 64)."""
    return providers.keypair_name(body) + "-sp"


async def sp_certificate_pk(
    rt: Runtime, body: Mapping[str, Any], sp: spmetadata.ServiceProvider
) -> str | None:
    """The core key pair (certificate only) of the SP's signing certificate: imported once,
    replaced when the metadata names another certificate."""
    if sp.certificate is None:
        return None
    name = sp_keypair_name(body)
    found = await rt.core.first(providers.KEYPAIRS, name=name)
    request = {"name": name, "certificate_data": sp.certificate, "key_data": ""}
    if found is None:
        found = await rt.core.request("POST", providers.KEYPAIRS, body=request)
    elif found.get("fingerprint_sha256") != sp.fingerprint:
        found = await rt.core.request("PATCH", f"{providers.KEYPAIRS}{found['pk']}/", body=request)
    return str(found["pk"])


# The key types (the core's names) each family of signature algorithms needs.
_KEY_TYPES = {"rsa-": "rsa", "ecdsa-": "ec", "dsa-": "dsa"}


async def check_algorithm(
    rt: Runtime, spec: samlprovider.SAMLProviderSpec, key_pk: str | None
) -> None:
    """The signing key must be able to sign with `signatureAlgorithm`: an EC key cannot make an
    RSA signature (the core would fail at the first login, not now)."""
    if key_pk is None:
        return
    key = await rt.core.request("GET", f"{providers.KEYPAIRS}{key_pk}/")
    if not key.get("private_key_available", True):
        raise InvalidSpec("spec.signingKey.name: the key pair has no private key to sign with")
    algorithm = spec.signature_algorithm
    wanted = next(t for prefix, t in _KEY_TYPES.items() if algorithm.startswith(prefix))
    if key.get("key_type") is not None and key.get("key_type") != wanted:
        raise InvalidSpec(
            f"spec.signatureAlgorithm: {algorithm} cannot sign with the signing key, whose "
            f"type is {key.get('key_type')}"
        )


async def desired(rt: Runtime, body: Mapping[str, Any]) -> dict[str, Any]:
    """The core provider's fields for this resource (references resolved to core pks, what the
    spec leaves open taken from the SP's metadata)."""
    spec = parse(body)
    fields = await _from_spec(rt, body, spec)
    await check_algorithm(rt, spec, fields["signing_kp"])
    if spec.sp_metadata is None:
        return fields
    sp = await spmetadata.read(rt.kube, body["metadata"]["namespace"], spec.sp_metadata)
    if spec.acs_url is None:
        fields["acs_url"], fields["sp_binding"] = sp.acs_url, sp.acs_binding
    if not spec.audience:
        fields["audience"] = sp.entity_id
    if spec.sls_url is None and sp.sls_url is not None:
        fields["sls_url"], fields["sls_binding"] = sp.sls_url, sp.sls_binding
    if spec.verification_key is None:
        fields["verification_kp"] = await sp_certificate_pk(rt, body, sp)
    return fields


async def _from_spec(
    rt: Runtime, body: Mapping[str, Any], spec: samlprovider.SAMLProviderSpec
) -> dict[str, Any]:
    return {
        "name": core_name(body),
        "authorization_flow": await providers.flow_pk(
            rt.core, spec.authorization_flow, "authorizationFlow"
        ),
        "invalidation_flow": await providers.flow_pk(
            rt.core, spec.invalidation_flow, "invalidationFlow"
        ),
        "property_mappings": [
            await mapping_pk(rt, name, f"spec.propertyMappings[{index}]")
            for index, name in enumerate(spec.property_mappings)
        ],
        "acs_url": spec.acs_url or "",
        "sls_url": spec.sls_url or "",
        "audience": spec.audience,
        "issuer_override": spec.issuer_override,
        "assertion_valid_not_before": spec.assertion_valid_not_before,
        "assertion_valid_not_on_or_after": spec.assertion_valid_not_on_or_after,
        "session_valid_not_on_or_after": spec.session_valid_not_on_or_after,
        "name_id_mapping": await _optional_mapping(rt, spec.name_id_mapping, "nameIdMapping"),
        "authn_context_class_ref_mapping": await _optional_mapping(
            rt, spec.authn_context_class_ref_mapping, "authnContextClassRefMapping"
        ),
        "digest_algorithm": samlprovider.DIGESTS[spec.digest_algorithm],
        "signature_algorithm": samlprovider.SIGNATURES[spec.signature_algorithm],
        "signing_kp": await providers.signing_key_pk(rt.core, body, spec.signing_key),
        "verification_kp": await _optional_key(rt, spec.verification_key, "verificationKey"),
        "encryption_kp": await _optional_key(rt, spec.encryption_key, "encryptionKey"),
        "sign_assertion": spec.sign_assertion,
        "sign_response": spec.sign_response,
        "sign_logout_request": spec.sign_logout_request,
        "sign_logout_response": spec.sign_logout_response,
        "sp_binding": spec.sp_binding,
        "sls_binding": spec.sls_binding,
        "logout_method": spec.logout_method,
        "default_relay_state": spec.default_relay_state,
        "default_name_id_policy": samlprovider.NAME_ID_POLICIES[spec.default_name_id_policy],
    }


def changes(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `want` that the core object `have` does not match (drift included)."""
    out = {k: want[k] for k in _COMPARED if objects.text(want[k]) != objects.text(have.get(k))}
    if sorted(map(str, want["property_mappings"])) != sorted(
        map(str, have.get("property_mappings") or [])
    ):
        out["property_mappings"] = want["property_mappings"]
    return out


# The metadata ConfigMap -----------------------------------------------------------------------

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
)


def essence(document: str) -> bytes:
    """The metadata without what changes on every request (the root's ID, the signature):
    two documents with the same essence tell an SP the same. A document that does not parse
    is its own essence."""
    try:
        root = etree.fromstring(document.encode(), _PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return document.encode()
    root.attrib.pop("ID", None)
    for signature in root.findall(f"{{{DS}}}Signature"):
        root.remove(signature)
    return bytes(etree.tostring(root, method="c14n"))


def same_data(have: Mapping[str, Any], want: Mapping[str, Any]) -> bool:
    """Whether the ConfigMap's data already tells what `want` does."""
    if {k: v for k, v in have.items() if k != METADATA_KEY} != {
        k: v for k, v in want.items() if k != METADATA_KEY
    }:
        return False
    old = have.get(METADATA_KEY)
    return isinstance(old, str) and essence(old) == essence(want[METADATA_KEY])


def config_data(provider: Mapping[str, Any], metadata: str) -> dict[str, str]:
    """The ConfigMap's data: the IdP metadata, the entity ID and where an SP sends users."""
    data = {key: str(provider.get(field) or "") for key, field in URLS.items()}
    data["entity_id"] = str(provider.get("issuer_override") or provider.get("url_issuer") or "")
    data[METADATA_KEY] = metadata
    return data


async def publish(rt: Runtime, body: Mapping[str, Any], provider: Mapping[str, Any]) -> str:
    """Write the metadata ConfigMap of `body` from the core `provider`; what was done."""
    spec = parse(body)
    answer = await rt.core.request("GET", f"{PATH}{provider['pk']}/metadata/")
    data = config_data(provider, str(answer["metadata"]))
    labels = {**kube.MANAGED_BY, "tessera.dev/samlprovider": body["metadata"]["name"]}
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": spec.metadata_config_map.name,
            "namespace": body["metadata"]["namespace"],
            "labels": labels,
        },
        "data": data,
    }
    kopf.adopt(manifest, owner=kopf.Body(dict(body)))  # type: ignore[arg-type]
    return await owned.write_data(rt.kube, manifest, str(body["metadata"]["uid"]), same_data)


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    want = await desired(rt, body)
    unique = ("name", want["name"], "metadata.name")
    provider, happened = await objects.upsert(rt.core, PATH, managed(body), want, unique, changes)
    if "url_sso_redirect" not in provider:  # a PATCH answer may be partial: read it whole
        provider = await rt.core.request("GET", f"{PATH}{provider['pk']}/")
    fields: dict[str, Any] = {"providerPk": provider["pk"], "acsURL": provider.get("acs_url")}
    config_map = parse(body).metadata_config_map.name
    message = f"core SAML provider {provider['pk']} {happened}; "
    if provider.get("assigned_application_slug"):
        done = await publish(rt, body, provider)
        fields["entityID"] = str(provider.get("issuer_override") or provider.get("url_issuer"))
        fields["metadataURL"] = str(provider.get("url_download_metadata"))
        message += f"ConfigMap {config_map} {done}"
    else:
        message += f"ConfigMap {config_map} waits for an Application serving this provider"
    return fields, message


async def remove(rt: Runtime, body: kopf.Body) -> str:
    """Delete the core provider (and a generated key pair), or release it (`Orphan`)."""
    outcome = await objects.release(rt.core, PATH, managed(body), body, "core SAML provider")
    await providers.drop_generated_key(rt, body)
    if objects.deletion_policy(body) == "Delete":
        key = await rt.core.first(providers.KEYPAIRS, name=sp_keypair_name(body))
        if key is not None:
            with contextlib.suppress(client.NotFound):
                await rt.core.request("DELETE", f"{providers.KEYPAIRS}{key['pk']}/")
    return outcome


async def link(rt: Runtime, resource: Mapping[str, Any], slug: str) -> bool:
    """Tell the SAMLProvider `resource` that application `slug` serves it (its reconcile then
    writes the metadata ConfigMap); False when it was told already or is gone."""
    meta = resource.get("metadata") or {}
    if (meta.get("annotations") or {}).get(SLUG_ANNOTATION) == slug:
        return False
    return await kube.annotate_custom(
        rt.kube,
        common.GROUP,
        common.VERSION,
        samlprovider.KIND.plural,
        str(meta.get("namespace")),
        str(meta.get("name")),
        {SLUG_ANNOTATION: slug},
    )
