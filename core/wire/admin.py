"""Wire models of `/api/v3/admin/`: `version/`, `system/` and `settings/` (authentik's shapes).

Scripts call these first. `Settings` holds authentik's system settings; Tessera stores the ones
its behaviour reads and refuses, naming the field, a value it would ignore (`api.admin`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, Field

from tessera.core.wire import durations
from tessera.core.wire.common import Request, Response

# The modes of `identity.avatars`, comma-separated, tried in order (authentik's `avatars`).
AVATAR_MODES = ("none", "initials")


def _avatars(value: str) -> str:
    modes = [m.strip() for m in value.split(",")]
    for mode in modes:
        if mode == "gravatar":
            raise ValueError(
                "Tessera fetches no Gravatar pictures: use none, initials or attributes.<path>."
            )
        if mode not in AVATAR_MODES and not (
            mode.startswith("attributes.") and len(mode) > len("attributes.")
        ):
            raise ValueError(
                f"Unknown avatar mode {mode!r}: use none, initials or attributes.<path>."
            )
    return ",".join(modes)


Avatars = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_avatars)]


class Version(Response):
    version_current: str
    version_latest: str
    version_latest_valid: bool
    build_hash: str
    outdated: bool
    outpost_outdated: bool


class SystemInfoRuntime(Response):
    python_version: str
    environment: str
    architecture: str
    platform: str
    uname: str
    openssl_version: str
    openssl_fips_enabled: bool | None
    authentik_version: str


class SystemInfo(Response):
    http_headers: dict[str, str]
    http_host: str
    http_is_secure: bool
    runtime: SystemInfoRuntime
    brand: str
    server_time: dt.datetime
    embedded_outpost_disabled: bool
    embedded_outpost_host: str
    base_url: str


class FooterLink(Request):
    href: Annotated[str, Field(max_length=2000)] | None
    name: Annotated[str, Field(min_length=1, max_length=200)]


class SettingsFlags(Request):
    core_default_app_access: bool = True
    enterprise_audit_include_expanded_diff: bool = False
    flows_continuous_login: bool = False
    flows_refresh_others: bool = False


class SettingsFlagValues(Response):
    core_default_app_access: bool
    enterprise_audit_include_expanded_diff: bool
    flows_continuous_login: bool
    flows_refresh_others: bool


class SettingsRequest(Request):
    """A full update (PUT); a partial one (PATCH) is merged onto the current settings first."""

    avatars: Avatars = "initials"
    base_url: Annotated[str, Field(max_length=200)] = ""
    default_user_change_name: bool = True
    default_user_change_email: bool = True
    default_user_change_username: bool = True
    event_retention: durations.Positive = "days=365"
    reputation_lower_limit: Annotated[int, Field(ge=-(2**31), le=0)] = -20
    reputation_upper_limit: Annotated[int, Field(ge=0, le=2**31 - 1)] = 5
    footer_links: Annotated[list[FooterLink], Field(max_length=50)] = Field(default_factory=list)
    gdpr_compliance: bool = False
    impersonation: bool = False
    impersonation_require_reason: bool = True
    default_token_duration: durations.Positive = "minutes=30"  # noqa: S105 - a duration
    default_token_length: Annotated[int, Field(ge=1, le=2**31 - 1)] = 60
    pagination_default_page_size: Annotated[int, Field(ge=0, le=2**31 - 1)] = 20
    pagination_max_page_size: Annotated[int, Field(ge=0, le=2**31 - 1)] = 100
    flags: SettingsFlags = Field(default_factory=SettingsFlags)


class Settings(Response):
    avatars: str
    base_url: str
    default_user_change_name: bool
    default_user_change_email: bool
    default_user_change_username: bool
    event_retention: str
    reputation_lower_limit: int
    reputation_upper_limit: int
    footer_links: list[dict[str, str | None]]
    gdpr_compliance: bool
    impersonation: bool
    impersonation_require_reason: bool
    default_token_duration: str
    default_token_length: int
    pagination_default_page_size: int
    pagination_max_page_size: int
    flags: SettingsFlagValues
