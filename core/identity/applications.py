"""Applications: unique slugs, at most one application per provider; their authentik wire form.

The API resource (`api.resources.applications`) calls these; the provider objects an application
shows (`provider_obj`) come from the provider slices, which this layer cannot import, so the
caller passes them to `serialize`.

A launch URL may name fields of the user who opens it, as authentik's does
(`https://wiki.example.com/users/%(username)s`): `launch_url(..., user)` fills them in for the
API's `launch_url` and the portal's tiles. authentik formats the URL with Python's `%` operator
over all of the user's model fields; Tessera reads the same `%(field)s` form itself and fills
only the user's plain identity fields (`LAUNCH_URL_FIELDS`).

# SECURITY: never a secret (authentik's formatting also reaches the password hash: a launch URL
# `%(password)s` would show it to everyone who can see the application). The values are
# percent-encoded, so a user's own name or email address cannot change the host, the path or
# the query of the URL (`%(username)s.example.com` with a name ending in `/`, say). A URL that
# names another field, or whose `%` is not one of these placeholders (`%20`), is shown as it is,
# as authentik shows a URL it cannot format.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Mapping
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


# The user's fields a launch URL may name, under authentik's names (its model's `id` is the pk).
LAUNCH_URL_FIELDS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "id": lambda user: user["pk"],
    "uuid": lambda user: user["uuid"],
    "username": lambda user: user["username"],
    "name": lambda user: user["name"],
    "email": lambda user: user["email"],
    "path": lambda user: user["path"],
    "type": lambda user: user["type"],
}
_PLACEHOLDER = re.compile(r"%(?:%|\((?P<field>[a-z_]{1,32})\)(?P<conversion>[sdi]))")


def expand(url: str, user: Mapping[str, Any] | None) -> str:
    """`url` with its `%(field)s` placeholders filled from `user` (`%(id)d` too, `%%` is a
    percent sign); `url` unchanged when there is no user or it cannot be filled."""
    if user is None or "%" not in url:
        return url
    out: list[str] = []
    position = 0
    while (start := url.find("%", position)) != -1:
        found = _PLACEHOLDER.match(url, start)
        if found is None:
            return url  # a `%` that is not a placeholder: authentik's formatting fails too
        out.append(url[position:start])
        position = found.end()
        if found["field"] is None:
            out.append("%")
            continue
        value = _field(found["field"], found["conversion"], user)
        if value is None:
            return url
        out.append(urllib.parse.quote(value, safe=""))
    out.append(url[position:])
    return "".join(out)


def _field(name: str, conversion: str, user: Mapping[str, Any]) -> str | None:
    """The text of one placeholder, or None when it names no allowed field or the field does
    not take the conversion (`%d` of a name)."""
    read = LAUNCH_URL_FIELDS.get(name)
    if read is None:
        return None
    value = read(user)
    if conversion == "s":
        return "" if value is None else str(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return str(value)


def launch_url(
    row: dict[str, Any],
    provider_launch_urls: dict[int, str],
    user: Mapping[str, Any] | None = None,
) -> str | None:
    """authentik's `launch_url`: the application's own, else the one its provider suggests,
    its placeholders filled for `user` (when given)."""
    if row["meta_launch_url"]:
        return expand(str(row["meta_launch_url"]), user)
    suggested = provider_launch_urls.get(row["provider"]) if row["provider"] is not None else None
    return expand(suggested, user) if suggested else suggested


def serialize(
    rows: list[dict[str, Any]],
    providers: dict[int, wire.oauth2.Provider],
    provider_launch_urls: dict[int, str],
    user: Mapping[str, Any] | None = None,
) -> list[wire.applications.Application]:
    """`providers`: the providers the rows name, by pk (`provider_obj`); their launch URLs;
    `user`: the caller, whose fields fill the launch URLs' placeholders."""
    return [
        wire.applications.Application(
            **{k: r[k] for k in wire.applications.ApplicationRequest.model_fields if k in r},
            pk=r["pk"],
            pbm_uuid=r["pk"],  # policy bindings name the application itself as their target
            provider_obj=providers.get(r["provider"]) if r["provider"] is not None else None,
            backchannel_providers=[],
            backchannel_providers_obj=[],
            launch_url=launch_url(r, provider_launch_urls, user),
            meta_icon_url=r["meta_icon"] or None,
            meta_icon_themed_urls=_themed(r["meta_icon"]),
        )
        for r in rows
    ]
