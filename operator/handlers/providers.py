"""Reconcile an `OAuth2Provider` resource into a core OAuth2 provider and a credentials Secret.

Called by the handlers registered in `tessera.operator.handlers` (create, update, resume, the
drift timer, delete) through `runtime.Reconciler`, and by `applications` to refresh the Secret
once an application serves the provider (the issuer needs the application's slug). Talks to the
core through `tessera.operator.client` and to Kubernetes through `kube`.

The core object is found by its `managed` marker (`tessera.dev/OAuth2Provider/<ns>/<name>/<uid>`)
before anything is created, so a retry after a lost answer never makes a second provider, and a
provider someone deleted or edited in the core is put back by the next reconcile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes_asyncio import client as kube_client

from tessera.operator import client
from tessera.operator.handlers import kube, objects
from tessera.operator.handlers.runtime import InvalidSpec, Runtime
from tessera.operator.resources import common, oauth2provider

KIND = oauth2provider.KIND.kind
PATH = "providers/oauth2/"
KEYPAIRS = "crypto/certificatekeypairs/"
SCOPES = "propertymappings/provider/scope/"
SYSTEM_SCOPES = "goauthentik.io/providers/oauth2/scope-"
_ALGORITHMS = {"RSA": "rsa", "EC": "ecdsa"}
_COMPARED = (
    "name",
    "authorization_flow",
    "invalidation_flow",
    "client_type",
    "signing_key",
    "access_code_validity",
    "access_token_validity",
    "refresh_token_validity",
    "sub_mode",
    "issuer_mode",
)


def parse(body: Mapping[str, Any]) -> oauth2provider.OAuth2ProviderSpec:
    return oauth2provider.OAuth2ProviderSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


def core_name(body: Mapping[str, Any]) -> str:
    """The core provider's (unique) name: `<namespace>/<name>`."""
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


def keypair_name(body: Mapping[str, Any]) -> str:
    """Name of the key pair the operator generates for `signingKey.generate` (at most 64)."""
    meta = body["metadata"]
    return f"{meta['namespace']}-{meta['name']}"[:50] + f"-{meta['uid'][:8]}"


async def flow_pk(core: client.CoreClient, slug: str, field: str) -> str:
    try:
        return str((await core.request("GET", f"flows/instances/{slug}/"))["pk"])
    except client.NotFound:
        raise InvalidSpec(f"spec.{field}: the core has no flow with slug {slug!r}") from None


async def scope_pks(core: client.CoreClient, scopes: list[str]) -> list[str]:
    pks = []
    for index, scope in enumerate(scopes):
        found = [
            m for m in await core.list(SCOPES, scope_name=scope) if m.get("scope_name") == scope
        ]
        if not found:
            raise InvalidSpec(f"spec.scopes[{index}]: the core has no scope mapping for {scope!r}")
        # The core's own mapping of a scope wins over one an admin added for the same name.
        found.sort(key=lambda m: not str(m.get("managed") or "").startswith(SYSTEM_SCOPES))
        pks.append(str(found[0]["pk"]))
    return pks


async def keypair_pk(core: client.CoreClient, name: str, field: str) -> str:
    """The core key pair named `name` (`field` names the spec field for the message)."""
    found = await core.first(KEYPAIRS, name=name)
    if found is None:
        raise InvalidSpec(f"spec.{field}.name: the core has no key pair named {name!r}")
    return str(found["pk"])


async def signing_key_pk(
    core: client.CoreClient, body: Mapping[str, Any], key: oauth2provider.SigningKey | None
) -> str | None:
    """The core key pair of a `signingKey`: the one named, or the one generated for `body`."""
    if key is None:
        return None
    if key.name is not None:
        return await keypair_pk(core, key.name, "signingKey")
    assert key.generate is not None
    name = keypair_name(body)
    found = await core.first(KEYPAIRS, name=name)
    if found is None:  # looked up first: a retry never generates a second pair
        request = {"common_name": name, "alg": _ALGORITHMS[key.generate], "validity_days": 3650}
        found = await core.request("POST", KEYPAIRS + "generate/", body=request)
    return str(found["pk"])


async def client_secret(
    api: kube_client.ApiClient, namespace: str, spec: oauth2provider.OAuth2ProviderSpec
) -> str | None:
    ref = spec.client_secret_ref
    if ref is None:
        return None
    try:  # SECURITY: the value goes to the core only; messages name the Secret, never its value.
        value = await kube.secret_value(api, namespace, ref.name, ref.key)
    except kube.MissingKey:
        raise InvalidSpec(
            f"spec.clientSecretRef.key: Secret {ref.name!r} has no text key {ref.key!r}"
        ) from None
    if value is None:
        raise InvalidSpec(
            f"spec.clientSecretRef.name: no Secret {ref.name!r} in namespace {namespace!r}"
        )
    if not value:
        raise InvalidSpec(f"spec.clientSecretRef.key: key {ref.key!r} is empty")
    return value


async def desired(rt: Runtime, body: Mapping[str, Any]) -> dict[str, Any]:
    """The core provider's fields for this resource (references resolved to core pks)."""
    spec = parse(body)
    fields: dict[str, Any] = {
        "name": core_name(body),
        "authorization_flow": await flow_pk(rt.core, spec.authorization_flow, "authorizationFlow"),
        "invalidation_flow": await flow_pk(rt.core, spec.invalidation_flow, "invalidationFlow"),
        "client_type": spec.client_type,
        "redirect_uris": [
            {"matching_mode": u.matching_mode, "url": u.url, "redirect_uri_type": "authorization"}
            for u in spec.redirect_uris
        ],
        "signing_key": await signing_key_pk(rt.core, body, spec.signing_key),
        "access_code_validity": spec.access_code_validity,
        "access_token_validity": spec.access_token_validity,
        "refresh_token_validity": spec.refresh_token_validity,
        "sub_mode": spec.sub_mode,
        "issuer_mode": spec.issuer_mode,
        "property_mappings": await scope_pks(rt.core, list(spec.scopes)),
    }
    secret = await client_secret(rt.kube, body["metadata"]["namespace"], spec)
    if secret is not None:
        fields["client_secret"] = secret
    return fields


def changes(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `want` that the core object `have` does not match (drift included)."""
    out = {k: want[k] for k in _COMPARED if objects.text(want[k]) != objects.text(have.get(k))}
    if sorted(map(str, want["property_mappings"])) != sorted(
        map(str, have.get("property_mappings") or [])
    ):
        out["property_mappings"] = want["property_mappings"]
    if _uris(want["redirect_uris"]) != _uris(have.get("redirect_uris") or []):
        out["redirect_uris"] = want["redirect_uris"]
    if "client_secret" in want and want["client_secret"] != have.get("client_secret"):
        out["client_secret"] = want["client_secret"]
    return out


def _uris(items: list[Any]) -> list[tuple[str, str, str]]:
    return [
        (
            str(i.get("matching_mode", "strict")),
            str(i.get("url", "")),
            str(i.get("redirect_uri_type", "authorization")),
        )
        for i in items
        if isinstance(i, Mapping)
    ]


def credentials(
    rt: Runtime, spec: oauth2provider.OAuth2ProviderSpec, provider: Mapping[str, Any]
) -> dict[str, str]:
    """The credentials Secret's data: client id and secret, and the OIDC endpoints."""
    base = rt.config.public_url
    data = {
        "client_id": str(provider["client_id"]),
        "authorize_url": f"{base}/application/o/authorize/",
        "token_url": f"{base}/application/o/token/",
        "userinfo_url": f"{base}/application/o/userinfo/",
    }
    if spec.client_type == "confidential" and provider.get("client_secret"):
        data["client_secret"] = str(provider["client_secret"])
    slug = provider.get("assigned_application_slug")
    if slug:
        per_app = f"{base}/application/o/{slug}/"
        data["issuer"] = per_app if spec.issuer_mode == "per_provider" else f"{base}/"
        data["discovery_url"] = f"{per_app}.well-known/openid-configuration"
        data["jwks_url"] = f"{per_app}jwks/"
        data["end_session_url"] = f"{per_app}end-session/"
    return data


async def publish(rt: Runtime, body: Mapping[str, Any], provider: Mapping[str, Any]) -> bool:
    """Write the credentials Secret of `body` (an OAuth2Provider) from the core `provider`."""
    spec = parse(body)
    labels = {"tessera.dev/oauth2provider": body["metadata"]["name"]}
    owner = kopf.Body(cast(kopf.RawBody, dict(body)))
    data = credentials(rt, spec, provider)
    manifest = kube.secret_manifest(owner, spec.credentials_secret.name, data, labels)
    return await kube.write_secret(rt.kube, manifest)


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    want = await desired(rt, body)
    unique = ("name", want["name"], "metadata.name")
    provider, happened = await objects.upsert(rt.core, PATH, managed(body), want, unique, changes)
    if "client_secret" not in provider or provider.get("assigned_application_slug") is None:
        provider = await rt.core.request("GET", f"{PATH}{provider['pk']}/")
    wrote = await publish(rt, body, provider)
    secret = parse(body).credentials_secret.name
    fields = {"providerPk": provider["pk"], "clientID": provider["client_id"]}
    message = f"core provider {provider['pk']} {happened}; Secret {secret} " + (
        "written" if wrote else "up to date"
    )
    return fields, message


async def remove(rt: Runtime, body: kopf.Body) -> str:
    """Delete the core provider (and a generated key pair), or release it (`Orphan`)."""
    outcome = await objects.release(rt.core, PATH, managed(body), body, "core provider")
    await drop_generated_key(rt, body)
    return outcome


async def drop_generated_key(rt: Runtime, body: kopf.Body) -> None:
    """Delete the key pair generated for `signingKey.generate` (with `deletionPolicy: Delete`)."""
    signing_key = (body.get("spec") or {}).get("signingKey") or {}
    if objects.deletion_policy(body) == "Delete" and signing_key.get("generate"):
        key = await rt.core.first(KEYPAIRS, name=keypair_name(body))
        if key is not None:
            with contextlib.suppress(client.NotFound):
                await rt.core.request("DELETE", f"{KEYPAIRS}{key['pk']}/")
