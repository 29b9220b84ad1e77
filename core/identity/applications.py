"""Applications: unique slugs, at most one application per provider; their authentik wire form.

The API resource (`api.resources.applications`) calls these; the provider objects an application
shows (`provider_obj`) come from the provider slices, which this layer cannot import, so the
caller passes them to `serialize`.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "applications"
THEME = "%(theme)s"  # authentik's placeholder for an icon with a light and a dark variant


async def _check(tx: store.Tx, body: wire.applications.ApplicationRequest, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, slug=body.slug)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("slug", "Application with this slug already exists.")
    if body.provider is None:
        return
    if not await crud.exists(tx, "providers", pk=body.provider):
        raise errors.ValidationFailed.one(
            "provider", f'Invalid pk "{body.provider}" - object does not exist.'
        )
    user = await crud.find(tx, TABLE, provider=body.provider)
    if user is not None and user["pk"] != pk:
        raise errors.ValidationFailed.one(
            "provider", "This provider is already used by another application."
        )


def _stored(body: wire.applications.ApplicationRequest) -> dict[str, Any]:
    return body.model_dump(exclude={"backchannel_providers"})  # always empty (see the wire model)


async def create(tx: store.Tx, body: wire.applications.ApplicationRequest) -> dict[str, Any]:
    await _check(tx, body, None)
    return await crud.insert(
        tx, TABLE, {**_stored(body), "pk": util.new_uuid(), "created": util.now()}
    )


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.applications.ApplicationRequest
) -> dict[str, Any]:
    await _check(tx, body, row["pk"])
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, _stored(body))


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    fields = wire.applications.ApplicationRequest.model_fields
    return {**{k: row[k] for k in fields if k in row}, "backchannel_providers": []}


def _themed(icon: str) -> wire.applications.ThemedUrls | None:
    if THEME not in icon:
        return None
    return wire.applications.ThemedUrls(
        light=icon.replace(THEME, "light"), dark=icon.replace(THEME, "dark")
    )


def launch_url(row: dict[str, Any], provider_launch_urls: dict[int, str]) -> str | None:
    """authentik's `launch_url`: the application's own, else the one its provider suggests."""
    if row["meta_launch_url"]:
        return str(row["meta_launch_url"])
    return provider_launch_urls.get(row["provider"]) if row["provider"] is not None else None


def serialize(
    rows: list[dict[str, Any]],
    providers: dict[int, wire.oauth2.Provider],
    provider_launch_urls: dict[int, str],
) -> list[wire.applications.Application]:
    """`providers`: the providers the rows name, by pk (`provider_obj`); their launch URLs."""
    return [
        wire.applications.Application(
            **{k: r[k] for k in wire.applications.ApplicationRequest.model_fields if k in r},
            pk=r["pk"],
            pbm_uuid=r["pk"],  # policy bindings name the application itself as their target
            provider_obj=providers.get(r["provider"]) if r["provider"] is not None else None,
            backchannel_providers=[],
            backchannel_providers_obj=[],
            launch_url=launch_url(r, provider_launch_urls),
            meta_icon_url=r["meta_icon"] or None,
            meta_icon_themed_urls=_themed(r["meta_icon"]),
        )
        for r in rows
    ]
