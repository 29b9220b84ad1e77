"""SAMLProvider resources end to end: the operator (Kopf against the emulated API server) makes
the core SAML provider through a real core, writes the IdP metadata ConfigMap once an Application
serves it (the metadata parses and names the SSO and SLO URLs an SP needs), follows spec changes
and undoes drift, reports bad specs in the Ready condition, and deletes the core objects with the
resource."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from chartkit import NEWEST_KUBE, OLDEST_KUBE
from helpers import BOOTSTRAP_TOKEN, Server
from kmockkit import Cluster, eventually
from lxml import etree
from operatorkit import (
    admin,
    application,
    config_map,
    core_object,
    create,
    delete,
    is_ready,
    marker,
    not_ready,
    patch_spec,
    ready,
    saml_provider,
    sp_metadata_xml,
    stored,
)
from samlkit import rsa_pair

from tessera.core.wire import saml as wire_saml

pytestmark = pytest.mark.slow

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def ns() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def core_saml(core: Server, cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    return core_object(core, cluster, "providers/saml/", manifest)


def locations(root: Any, element: str) -> dict[str, str]:
    """Binding -> Location of the IdP's endpoints of one kind."""
    idp = root.find(f"{{{MD}}}IDPSSODescriptor")
    return {e.get("Binding"): e.get("Location") for e in idp.findall(f"{{{MD}}}{element}")}


async def test_a_saml_provider_publishes_its_metadata_follows_changes_and_is_deleted(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    slug = f"cloud-{space}"
    cloud = saml_provider(
        "cloud",
        space,
        audience="https://cloud.example.com/saml/metadata",
        slsURL="https://cloud.example.com/saml/sls",
        signingKey={"generate": "EC"},
        signatureAlgorithm="ecdsa-sha256",
        defaultNameIdPolicy="emailAddress",
    )
    app = application("cloud", space, slug, providerRef={"kind": "SAMLProvider", "name": "cloud"})
    async with make_operator(resync_seconds=0.5):
        await create(cluster, cloud)
        await is_ready(cluster, cloud)
        # No application yet: the URLs would name no slug, so there is no ConfigMap yet.
        assert "waits for an Application" in ready(cluster, cloud)["message"]
        assert not cluster.api.alive("v1/configmaps", space, "cloud-idp")
        await create(cluster, app)
        await is_ready(cluster, app)
        data = await eventually(lambda: config_map(cluster, space, "cloud-idp"))
        await eventually(lambda: "metadataURL" in stored(cluster, cloud)["status"])
        version = cluster.api.get("v1/configmaps", space, "cloud-idp")["metadata"]
        # Resyncs twice a second get a freshly signed document (new ID, new signature) from the
        # core: the ConfigMap is not rewritten for that.
        await asyncio.sleep(1.5)
        again = cluster.api.get("v1/configmaps", space, "cloud-idp")["metadata"]
        assert again["resourceVersion"] == version["resourceVersion"]

        # The metadata parses and tells an SP where to send users: the URLs of the ConfigMap.
        root = etree.fromstring(data["metadata.xml"].encode(), SAFE)
        assert root.tag == f"{{{MD}}}EntityDescriptor"
        assert root.get("entityID") == data["entity_id"]
        assert f"/application/saml/{slug}/" in data["entity_id"]
        assert locations(root, "SingleSignOnService") == {
            REDIRECT: data["sso_url_redirect"],
            POST: data["sso_url_post"],
        }
        assert locations(root, "SingleLogoutService") == {
            REDIRECT: data["slo_url_redirect"],
            POST: data["slo_url_post"],
        }
        assert data["sso_url_redirect"].startswith(core.url + f"/application/saml/{slug}/sso/")
        assert data["sso_url_init"].endswith(f"/application/saml/{slug}/sso/binding/init/")
        assert root.find(f"{{{DS}}}Signature") is not None  # signed with the generated key
        assert root.find(f".//{{{MD}}}KeyDescriptor[@use='signing']") is not None
        # The metadata URL serves the same document to an SP.
        with urllib.request.urlopen(data["metadata_url"], timeout=5) as answer:
            served = etree.fromstring(answer.read(), SAFE)
        assert served.get("entityID") == data["entity_id"]

        status = stored(cluster, cloud)["status"]
        made = core_saml(core, cluster, cloud)
        assert status["providerPk"] == made["pk"]
        assert (status["entityID"], status["metadataURL"]) == (
            data["entity_id"],
            data["metadata_url"],
        )
        assert made["assigned_application_slug"] == slug
        assert made["acs_url"] == "https://cloud.example.com/saml/acs"
        assert made["sls_url"] == "https://cloud.example.com/saml/sls"
        assert made["audience"] == "https://cloud.example.com/saml/metadata"
        assert made["digest_algorithm"] == wire_saml.DIGEST_SHA256
        assert made["signature_algorithm"].endswith("#ecdsa-sha256")
        assert made["default_name_id_policy"] == wire_saml.NAMEID_EMAIL
        assert made["signing_kp"] is not None and made["verification_kp"] is None
        assert len(made["property_mappings"]) == 7  # the core's system mappings
        assert made["name"] == f"{space}/saml/cloud"

        configmap = cluster.api.get("v1/configmaps", space, "cloud-idp")
        (owner,) = configmap["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "SAMLProvider",
            stored(cluster, cloud)["metadata"]["uid"],
            True,
        )
        for kube in (OLDEST_KUBE, NEWEST_KUBE):
            kubernetes_validate.validate(configmap, kube, strict=True)

        # A change of the spec reaches the core and the ConfigMap.
        sp_key, sp_cert = rsa_pair("cloud-sp")
        verification = admin(
            core,
            "POST",
            "crypto/certificatekeypairs/",
            {"name": f"cloud-sp-{space}", "certificate_data": sp_cert, "key_data": ""},
        )
        await patch_spec(
            cluster,
            cloud,
            {
                "acsURL": "https://cloud.example.com/saml/acs2",
                "verificationKey": {"name": f"cloud-sp-{space}"},
                "propertyMappings": ["authentik default SAML Mapping: Email"],
            },
        )
        await eventually(
            lambda: core_saml(core, cluster, cloud)["acs_url"].endswith("/acs2"), timeout=20
        )
        changed = core_saml(core, cluster, cloud)
        assert changed["verification_kp"] == verification["pk"]
        assert len(changed["property_mappings"]) == 1
        # The metadata now asks for signed AuthnRequests.
        await eventually(
            lambda: (
                'WantAuthnRequestsSigned="true"'
                in config_map(cluster, space, "cloud-idp")["metadata.xml"]
            )
        )
        await eventually(lambda: ready(cluster, cloud).get("observedGeneration") == 2)

        # Drift made in the core (by a script sending the marker) is undone by the next resync.
        path = f"providers/saml/{made['pk']}/"
        assert _write(core, "PATCH", path, made["managed"], {"sign_assertion": False}) == 200
        await eventually(lambda: core_saml(core, cluster, cloud)["sign_assertion"] is True)

        await delete(cluster, app)
        await delete(cluster, cloud)
        await eventually(lambda: not cluster.api.alive(*_key(cloud)))
    gone = admin(core, "GET", f"providers/saml/?name={space}/saml/cloud")
    assert gone["results"] == []
    keys = admin(core, "GET", f"crypto/certificatekeypairs/?name={space}-cloud-")
    assert [k for k in keys["results"] if k["name"].startswith(f"{space}-cloud-")] == []


def _write(core: Server, method: str, path: str, marker: str, body: Any = None) -> int:
    """A write with the marker header, as a careless script might send it."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{core.url}/api/v3/{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {BOOTSTRAP_TOKEN}")
    req.add_header("X-Tessera-Managed-By", marker)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _key(manifest: dict[str, Any]) -> tuple[str, str, str]:
    meta = manifest["metadata"]
    return ("tessera.dev/v1alpha1/samlproviders", meta["namespace"], meta["name"])


async def test_bad_saml_specs_are_reported_and_fixing_them_makes_the_provider_ready(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    no_mapping = saml_provider("mapping", space, propertyMappings=["no such mapping"])
    no_key = saml_provider("key", space, verificationKey={"name": "no such key pair"})
    no_flow = saml_provider("flow", space, authorizationFlow="no-such-flow")
    key, cert = rsa_pair("idp")
    admin(
        core,
        "POST",
        "crypto/certificatekeypairs/",
        {"name": f"idp-{space}", "certificate_data": cert, "key_data": key},
    )
    admin(
        core,
        "POST",
        "crypto/certificatekeypairs/",
        {"name": f"cert-only-{space}", "certificate_data": cert, "key_data": ""},
    )
    wrong_algorithm = saml_provider(
        "algorithm",
        space,
        signingKey={"name": f"idp-{space}"},
        signatureAlgorithm="ecdsa-sha256",
    )
    no_private_key = saml_provider("nokey", space, signingKey={"name": f"cert-only-{space}"})
    taken = saml_provider("taken", space, metadataConfigMap={"name": "someone-elses"})
    app = application(
        "taken", space, f"taken-{space}", providerRef={"kind": "SAMLProvider", "name": "taken"}
    )
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "someone-elses", "namespace": space},
        "data": {"keep": "me"},
    }
    async with make_operator():
        answer = await cluster.api.post(f"/api/v1/namespaces/{space}/configmaps", json=foreign)
        assert answer.status in (200, 201)
        for manifest in (no_mapping, no_key, no_flow, taken, app, wrong_algorithm, no_private_key):
            await create(cluster, manifest)
        condition = await not_ready(cluster, no_mapping, "InvalidSpec")
        assert condition["message"] == (
            "spec.propertyMappings[0]: the core has no SAML property mapping named "
            "'no such mapping'"
        )
        condition = await not_ready(cluster, no_key, "InvalidSpec")
        assert condition["message"] == (
            "spec.verificationKey.name: the core has no key pair named 'no such key pair'"
        )
        condition = await not_ready(cluster, no_flow, "InvalidSpec")
        assert "spec.authorizationFlow" in condition["message"]
        condition = await not_ready(cluster, wrong_algorithm, "InvalidSpec")
        assert condition["message"] == (
            "spec.signatureAlgorithm: ecdsa-sha256 cannot sign with the signing key, whose type "
            "is rsa"
        )
        condition = await not_ready(cluster, no_private_key, "InvalidSpec")
        assert condition["message"] == (
            "spec.signingKey.name: the key pair has no private key to sign with"
        )
        condition = await not_ready(cluster, taken, "Conflict")
        assert "ConfigMap/someone-elses exists and is not owned" in condition["message"]
        # The foreign ConfigMap is untouched; nothing was made in the core for the bad specs.
        assert config_map(cluster, space, "someone-elses") == {"keep": "me"}
        for manifest in (no_mapping, no_key, no_flow, wrong_algorithm, no_private_key):
            found = admin(core, "GET", f"providers/saml/?managed={marker(cluster, manifest)}")
            assert found["results"] == []

        await patch_spec(
            cluster, no_mapping, {"propertyMappings": ["authentik default SAML Mapping: UPN"]}
        )
        await is_ready(cluster, no_mapping)


def _sp_config_map(namespace: str, document: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "wiki-sp", "namespace": namespace},
        "data": {"sp.xml": document},
    }


async def test_the_sp_metadata_of_a_config_map_configures_the_provider_and_is_followed(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    _, first_cert = rsa_pair("wiki-sp")
    _, second_cert = rsa_pair("wiki-sp-rotated")
    entity = f"https://wiki.example.com/{space}"
    document = sp_metadata_xml(
        entity, "https://wiki.example.com/acs", first_cert, "https://wiki.example.com/sls"
    )
    wiki = saml_provider(
        "wiki", space, spMetadata={"configMapRef": {"name": "wiki-sp", "key": "sp.xml"}}
    )
    del wiki["spec"]["acsURL"]
    cm_url = f"/api/v1/namespaces/{space}/configmaps"
    # No resync during the test: only the watch of the ConfigMap can bring its changes in time.
    async with make_operator(resync_seconds=300.0):
        await create(cluster, wiki)
        condition = await not_ready(cluster, wiki, "InvalidSpec")
        assert condition["message"] == (
            f"spec.spMetadata.configMapRef.name: no ConfigMap 'wiki-sp' in namespace {space!r}"
        )
        answer = await cluster.api.post(cm_url, json=_sp_config_map(space, document))
        assert answer.status in (200, 201)
        await is_ready(cluster, wiki)
        made = core_saml(core, cluster, wiki)
        assert (made["acs_url"], made["sp_binding"]) == ("https://wiki.example.com/acs", "post")
        assert made["audience"] == entity
        assert (made["sls_url"], made["sls_binding"]) == (
            "https://wiki.example.com/sls",
            "redirect",
        )
        assert stored(cluster, wiki)["status"]["acsURL"] == "https://wiki.example.com/acs"
        key = admin(core, "GET", f"crypto/certificatekeypairs/{made['verification_kp']}/")
        assert key["name"].endswith("-sp") and not key["private_key_available"]
        fingerprint = key["fingerprint_sha256"]

        # A new ACS URL and certificate in the ConfigMap reach the core within moments.
        rotated = sp_metadata_xml(entity, "https://wiki.example.com/acs2", second_cert)
        answer = await cluster.api.patch(
            f"{cm_url}/wiki-sp",
            json={"data": {"sp.xml": rotated}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status == 200
        await eventually(
            lambda: core_saml(core, cluster, wiki)["acs_url"] == "https://wiki.example.com/acs2",
            timeout=15,
        )
        now = core_saml(core, cluster, wiki)
        key = admin(core, "GET", f"crypto/certificatekeypairs/{now['verification_kp']}/")
        assert key["fingerprint_sha256"] != fingerprint

        # A hostile document is refused and the core keeps the last good values.
        hostile = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
        answer = await cluster.api.patch(
            f"{cm_url}/wiki-sp",
            json={"data": {"sp.xml": hostile}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert answer.status == 200
        condition = await not_ready(cluster, wiki, "InvalidSpec")
        assert "DOCTYPE or ENTITY declaration is not accepted" in condition["message"]
        assert core_saml(core, cluster, wiki)["acs_url"] == "https://wiki.example.com/acs2"

        await delete(cluster, wiki)
        await eventually(lambda: not cluster.api.alive(*_key(wiki)))
    keys = admin(core, "GET", f"crypto/certificatekeypairs/?name={key['name']}")
    assert keys["results"] == []
    # The SP's ConfigMap is only read: never owned, never changed by the operator.
    assert "ownerReferences" not in cluster.api.get("v1/configmaps", space, "wiki-sp")["metadata"]
