"""Reconcile a `ProxyProvider` resource into a core proxy provider (`/api/v3/providers/proxy/`).

Called by the handlers registered in `tessera.operator.handlers` (create, update, resume, the
drift timer, delete) through `runtime.Reconciler`; `outposts` and `applications` find the core
provider of a resource by its `managed` marker (`tessera.dev/ProxyProvider/<ns>/<name>/<uid>`).
The core provider is looked up by that marker before anything is created, so a retry never makes
a second one, and one edited or deleted in the core is put back by the next reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from tessera.operator.handlers import objects, providers
from tessera.operator.handlers.runtime import InvalidSpec, Runtime
from tessera.operator.resources import common, proxyprovider

KIND = proxyprovider.KIND.kind
PATH = "providers/proxy/"
VIA = {"name": "name__iexact"}  # the listing filters names case-insensitively only
MAX_NAME = 200  # the core's limit on a provider's name


def parse(body: Mapping[str, Any]) -> proxyprovider.ProxyProviderSpec:
    return proxyprovider.ProxyProviderSpec.model_validate(dict(body.get("spec") or {}))


def managed(body: Mapping[str, Any]) -> str:
    meta = body["metadata"]
    return common.managed_value(KIND, meta["namespace"], meta["name"], meta["uid"])


def core_name(body: Mapping[str, Any]) -> str:
    """The core provider's (unique) name: `<namespace>/proxy/<name>`, which no OAuth2Provider's
    `<namespace>/<name>` can equal (a Kubernetes name has no `/`)."""
    name = f"{body['metadata']['namespace']}/proxy/{body['metadata']['name']}"
    if len(name) > MAX_NAME:
        raise InvalidSpec(
            f"metadata.name: namespace and name together exceed the core's {MAX_NAME} characters"
        )
    return name


async def desired(rt: Runtime, body: Mapping[str, Any]) -> dict[str, Any]:
    """The core provider's fields for this resource (flows resolved to core pks)."""
    spec = parse(body)
    basic = spec.basic_auth
    return {
        "name": core_name(body),
        "authorization_flow": await providers.flow_pk(
            rt.core, spec.authorization_flow, "authorizationFlow"
        ),
        "invalidation_flow": await providers.flow_pk(
            rt.core, spec.invalidation_flow, "invalidationFlow"
        ),
        "mode": spec.mode,
        "external_host": spec.external_host,
        "internal_host": spec.internal_host or "",
        "internal_host_ssl_validation": spec.internal_host_ssl_validation,
        "cookie_domain": spec.cookie_domain or "",
        "skip_path_regex": "\n".join(spec.skip_path_regex),
        "basic_auth_enabled": basic is not None,
        "basic_auth_user_attribute": basic.user_attribute if basic else "",
        "basic_auth_password_attribute": basic.password_attribute if basic else "",
        "intercept_header_auth": spec.intercept_header_auth,
        "access_token_validity": spec.access_token_validity,
        "refresh_token_validity": spec.refresh_token_validity,
    }


async def reconcile(rt: Runtime, body: kopf.Body) -> tuple[dict[str, Any], str]:
    want = await desired(rt, body)
    marker = managed(body)
    unique = ("name", want["name"], "metadata.name")
    provider, happened = await objects.upsert(rt.core, PATH, marker, want, unique, via=VIA)
    fields = {
        "providerPk": provider["pk"],
        "clientID": provider.get("client_id"),
        "externalHost": provider.get("external_host"),
    }
    return fields, f"core proxy provider {provider['pk']} {happened}"


async def remove(rt: Runtime, body: kopf.Body) -> str:
    """Delete the core provider (`Delete`) or release it (`Orphan`)."""
    return await objects.release(rt.core, PATH, managed(body), body, "core proxy provider")


async def core_provider(rt: Runtime, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The core provider of a ProxyProvider resource, found by its marker."""
    return await rt.core.first(PATH, managed=managed(resource))
