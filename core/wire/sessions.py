"""Wire models of `/api/v3/core/authenticated_sessions/` (authentik's `AuthenticatedSession`)."""

from __future__ import annotations

import datetime as dt

from tessera.core.wire.common import Response, Uuid


class SessionUserAgentDevice(Response):
    brand: str | None
    family: str
    model: str | None


class SessionUserAgentOs(Response):
    family: str
    major: str | None
    minor: str | None
    patch: str | None
    patch_minor: str | None


class SessionUserAgentBrowser(Response):
    family: str
    major: str
    minor: str
    patch: str


class SessionUserAgent(Response):
    device: SessionUserAgentDevice
    os: SessionUserAgentOs
    user_agent: SessionUserAgentBrowser
    string: str


class SessionGeoIp(Response):
    continent: str | None
    country: str | None
    lat: int | float | None
    long: int | float | None
    city: str


class SessionAsn(Response):
    asn: int | None
    as_org: str | None
    network: str | None


class AuthenticatedSession(Response):
    """A login session (authentik's `AuthenticatedSession`); Tessera has no GeoIP database, so
    `geo_ip` and `asn` are null."""

    uuid: Uuid
    current: bool
    user_agent: SessionUserAgent
    geo_ip: SessionGeoIp | None
    asn: SessionAsn | None
    user: int
    last_ip: str
    last_user_agent: str
    last_used: dt.datetime
    expires: dt.datetime
