"""Wire models of `/api/v3/authenticators/`: a user's MFA devices (authentik's fields).

No model carries a device's secret: not the TOTP seed, not the static codes (authentik's
`token_set`), not the WebAuthn public key.
"""

from __future__ import annotations

import datetime as dt

from tessera.core.wire.common import Name, Request, Response


class Device(Response):
    """One entry of `/authenticators/all/` and `/authenticators/admin/all/`."""

    name: str
    pk: str
    type: str  # authentik's model label, `authentik_stages_authenticator_totp.TOTPDevice`
    confirmed: bool
    created: dt.datetime
    last_updated: dt.datetime
    last_used: dt.datetime | None
    meta_model_name: str  # `authentik_stages_authenticator_totp.totpdevice`
    verbose_name: str  # `TOTP Device`


class DeviceUser(Response):
    pk: int
    username: str
    name: str


class _Stamps(Response):
    """When a device was created, last changed and last used (authentik's device fields)."""

    created: dt.datetime
    last_updated: dt.datetime
    last_used: dt.datetime | None


class TOTPDevice(_Stamps):
    name: str
    pk: str
    user: DeviceUser


class StaticDevice(_Stamps):
    name: str
    pk: str
    user: DeviceUser


class WebAuthnDevice(_Stamps):
    pk: str
    name: str
    created_on: dt.datetime
    aaguid: str
    user: DeviceUser


class DeviceRequest(Request):
    """A device's owner may rename it; nothing else of it changes through the API."""

    name: Name
