"""Wire models of `/api/v3/authenticators/`: a user's MFA devices (authentik's fields).

A device's `pk` is its integer id (`num_pk`, as authentik's per-kind device ids); the store keeps
a UUID beside it for its own references. No model carries a device's secret: not the TOTP seed,
not the WebAuthn public key, and not the static codes: authentik lists them in `token_set`, but
Tessera keeps only their digests, so `token_set` is always empty (the codes are shown once, when
they are made).
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from tessera.core.wire.common import Request, Response, Uuid
from tessera.core.wire.core import PartialUser


class Device(Response):
    """One entry of `/authenticators/all/`."""

    verbose_name: str  # `TOTP Device`
    verbose_name_plural: str
    meta_model_name: str  # `authentik_stages_authenticator_totp.totpdevice`
    pk: str  # the integer id, as text (authentik's)
    name: str
    type: str  # authentik's model label, `authentik_stages_authenticator_totp.TOTPDevice`
    confirmed: bool
    created: dt.datetime
    last_updated: dt.datetime
    last_used: dt.datetime | None
    extra_description: str | None  # what authentik adds for some kinds (none of Tessera's)
    external_id: str | None  # a device known to an outside service (none in Tessera)


class TOTPDevice(Response):
    name: str
    pk: int
    user: PartialUser


class StaticDeviceToken(Response):
    token: str


class StaticDevice(Response):
    name: str
    token_set: list[StaticDeviceToken]  # always empty: only the codes' digests are stored
    pk: int
    user: PartialUser


class WebAuthnDeviceType(Response):
    """A model of authenticator from the FIDO metadata service (Tessera has none: `null`)."""

    aaguid: Uuid
    description: str


class WebAuthnDevice(Response):
    pk: int
    name: str
    created_on: dt.datetime
    device_type: WebAuthnDeviceType | None
    aaguid: str
    user: PartialUser


class DeviceRequest(Request):
    """A device's owner may rename it; nothing else of it changes through the API."""

    name: str = Field(min_length=1, max_length=64)


class WebAuthnDeviceRequest(DeviceRequest):
    name: str = Field(min_length=1, max_length=200)
