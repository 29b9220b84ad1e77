"""What a proxy outpost reads of its providers: authentik's `ProxyOutpostConfig`.

`/api/v3/outposts/proxy/` (`resources.OutpostProxyConfigs`) serves these to an outpost's token;
the embedded outpost calls `outpost_proxy_configs` in process. Only providers that an application
uses are served (as authentik's `application__isnull=False`): without one there is no slug, so
no issuer, and nothing to protect.

`oidc_configuration` is the part of the provider's discovery document
(`/application/o/<slug>/.well-known/openid-configuration`, served by the OAuth2 slice) that
authentik embeds; a test compares the two. A proxy provider's issuer is always per provider and
its tokens are HS256 (no signing key), so the document follows from the slug and the base URL.
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, store, wire
from tessera.core.identity import outposts
from tessera.core.providers.proxy import records
from tessera.core.store import crud

# The OAuth2 slice's answers for every client (`oauth2.views.discovery`).
RESPONSE_TYPES = sorted(
    {"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"}
)
AUTH_METHODS = ["client_secret_post", "client_secret_basic"]


def oidc_configuration(base: str, slug: str) -> wire.outposts.OpenIDConnectConfiguration:
    """The discovery document's fields an outpost needs, for the application `slug` served at
    `base` (this server's external URL, without a trailing slash)."""
    return wire.outposts.OpenIDConnectConfiguration(
        issuer=f"{base}/application/o/{slug}/",
        authorization_endpoint=f"{base}/application/o/authorize/",
        token_endpoint=f"{base}/application/o/token/",
        userinfo_endpoint=f"{base}/application/o/userinfo/",
        end_session_endpoint=f"{base}/application/o/{slug}/end-session/",
        introspection_endpoint=f"{base}/application/o/introspect/",
        jwks_uri=f"{base}/application/o/{slug}/jwks/",
        response_types_supported=RESPONSE_TYPES,
        id_token_signing_alg_values_supported=["HS256"],
        subject_types_supported=["public"],
        token_endpoint_auth_methods_supported=AUTH_METHODS,
    )


async def scope_names(tx: store.Tx, oauth_rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """The scope names of each provider's scope mappings (authentik's `scopes_to_request`)."""
    wanted = {pk for row in oauth_rows for pk in row["property_mappings"]}
    mappings = await crud.find_many(tx, records.MAPPINGS, "pk", wanted) if wanted else []
    scope_of = {m["pk"]: m["scope_name"] for m in mappings}
    return {
        row["pk"]: sorted({scope_of[pk] for pk in row["property_mappings"] if pk in scope_of})
        for row in oauth_rows
    }


async def configs(
    tx: store.Tx, keyring: crypto.Keyring, bases: list[dict[str, Any]], base_url: str
) -> list[wire.outposts.ProxyOutpostConfig]:
    """The outpost configurations of these proxy providers (each must have an application)."""
    oauth, proxy, apps = await records.rows_of(tx, bases)
    scopes = await scope_names(tx, list(oauth.values()))
    out = []
    for base in bases:
        o, p, app = oauth[base["pk"]], proxy[base["pk"]], apps[base["pk"]]
        out.append(
            wire.outposts.ProxyOutpostConfig(
                pk=base["pk"],
                name=base["name"],
                internal_host=p["internal_host"],
                external_host=p["external_host"],
                internal_host_ssl_validation=p["internal_host_ssl_validation"],
                client_id=o["client_id"],
                client_secret=records.client_secret(keyring, o),
                oidc_configuration=oidc_configuration(base_url, app["slug"]),
                cookie_secret=records.cookie_secret(keyring, p),
                certificate=p["certificate"],
                skip_path_regex=p["skip_path_regex"],
                basic_auth_enabled=p["basic_auth_enabled"],
                basic_auth_password_attribute=p["basic_auth_password_attribute"],
                basic_auth_user_attribute=p["basic_auth_user_attribute"],
                mode=p["mode"],
                cookie_domain=p["cookie_domain"],
                access_token_validity=wire.durations.parse(
                    o["access_token_validity"]
                ).total_seconds(),
                intercept_header_auth=p["intercept_header_auth"],
                scopes_to_request=scopes[base["pk"]],
                assigned_application_slug=app["slug"],
                assigned_application_name=app["name"],
            )
        )
    return out


async def served_providers(tx: store.Tx, outpost_pk: str) -> list[dict[str, Any]]:
    """The `providers` rows of an outpost's proxy providers that an application uses, by name."""
    linked = (await outposts.providers_of(tx, [outpost_pk]))[outpost_pk]
    if not linked:
        return []
    bases = await crud.find_many(tx, "providers", "pk", linked)
    with_app = {a["provider"] for a in await crud.find_many(tx, "applications", "provider", linked)}
    kept = [b for b in bases if b["component"] == records.KIND and b["pk"] in with_app]
    return sorted(kept, key=lambda b: (b["name"], b["pk"]))


async def for_outpost(
    tx: store.Tx, keyring: crypto.Keyring, outpost_pk: str, base_url: str
) -> list[wire.outposts.ProxyOutpostConfig]:
    """Every `ProxyOutpostConfig` of the outpost `outpost_pk` (what `/api/v3/outposts/proxy/`
    pages through), with discovery URLs under `base_url` (`api.state.OUTPOST_CONFIGS`)."""
    return await configs(tx, keyring, await served_providers(tx, outpost_pk), base_url)


async def outpost_proxy_configs(
    db: store.Store, keyring: crypto.Keyring, outpost_pk: str, base_url: str
) -> list[wire.outposts.ProxyOutpostConfig]:
    """`for_outpost` in a read transaction of its own; for the embedded outpost."""
    async with db.read() as tx:
        return await for_outpost(tx, keyring, outpost_pk, base_url)
