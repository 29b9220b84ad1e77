"""Wire models of `/api/v3/core/applications/` (authentik's `Application` and its request).

An application names its provider (`provider`, and the provider itself in `provider_obj`, as
`/api/v3/providers/all/` shows it). authentik's backchannel providers (SCIM and the like) are
kinds Tessera does not have, so `backchannel_providers` is always empty.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from tessera.core.wire.common import LongText, Name, Request, Response, ShortText, Slug, Url, Uuid
from tessera.core.wire.core import BigInt, LaunchUrl, PolicyEngineMode
from tessera.core.wire.oauth2 import Provider


def _icon(value: str) -> str:
    # SECURITY: the portal shows the icon: only web URLs or authentik's Font Awesome names.
    if value and not re.match(r"^(https?://[^\s]+|fa://[-a-z0-9 ]+)$", value, re.IGNORECASE):
        raise ValueError("Enter a valid http(s) URL, or a Font Awesome icon as fa://<name>.")
    return value


IconUrl = Annotated[Url, AfterValidator(_icon)]


def _no_backchannel(value: list[int]) -> list[int]:
    if value:
        raise ValueError(
            "Tessera has no backchannel providers (SCIM, Google Workspace, Microsoft Entra); "
            "leave this list empty."
        )
    return value


class ApplicationRequest(Request):
    name: Name
    slug: Slug
    provider: BigInt | None = None
    backchannel_providers: Annotated[list[BigInt], AfterValidator(_no_backchannel)] = Field(
        default_factory=list
    )
    open_in_new_tab: bool = False
    meta_launch_url: LaunchUrl = ""
    meta_icon: IconUrl = ""
    meta_description: LongText = ""
    meta_publisher: ShortText = ""
    policy_engine_mode: PolicyEngineMode = "any"
    group: ShortText = ""
    meta_hide: bool = False
    # The Kubernetes resource this application mirrors (set by the operator); see `api.resource`.
    managed: Annotated[str, Field(min_length=1, max_length=300)] | None = None


class ThemedUrls(Response):
    """An icon's URL per theme (authentik fills it for icons named with `%(theme)s`)."""

    light: str | None = None
    dark: str | None = None


class Application(Response):
    pk: Uuid
    pbm_uuid: Uuid  # the target policy bindings name: the application itself
    name: str
    slug: str
    provider: int | None
    provider_obj: Provider | None
    backchannel_providers: list[int]
    backchannel_providers_obj: list[Provider]
    launch_url: str | None
    open_in_new_tab: bool
    meta_launch_url: str
    meta_icon: str
    meta_icon_url: str | None
    meta_icon_themed_urls: ThemedUrls | None
    meta_description: str
    meta_publisher: str
    policy_engine_mode: PolicyEngineMode
    group: str
    meta_hide: bool
    managed: str | None = None
