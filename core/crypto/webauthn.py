"""WebAuthn relying-party ceremonies (W3C Web Authentication, level 2), over py_webauthn.

The WebAuthn stages call this module: `stages.authenticator_webauthn` builds creation options
with `registration_options` and checks the browser's answer with `verify_registration`;
`stages.authenticator_validate` builds request options with `authentication_options` and checks
an assertion with `verify_authentication`. py_webauthn does the parsing, the CBOR, COSE keys and
signatures; this module only fixes our choices and turns its many exceptions into one error.
py_webauthn is imported on first use (`_lib`), not at start-up, where it cost about 60 ms and
5 MiB for a feature many installations never turn on.

# SECURITY: the relying party (RP id and origin) comes only from the configured public URL
# (`web.public_url`), never from the request's Host header: a request sent to another name must
# not make us accept credentials scoped to that name (section 13.4.9, "Validating the origin").
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import urllib.parse
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from tessera.core import errors

if TYPE_CHECKING:
    from webauthn.helpers import structs

Requirement = Literal["required", "preferred", "discouraged"]
Attachment = Literal["platform", "cross-platform"]
TIMEOUT_MS = 60_000  # the browser's prompt; the server keeps a challenge for CHALLENGE_TTL
CHALLENGE_TTL = 300  # seconds


def _lib() -> ModuleType:
    import webauthn

    return webauthn


def _malformed() -> tuple[type[Exception], ...]:
    """What py_webauthn (and the base64 and CBOR decoders under it) raise on malformed input."""
    from webauthn.helpers import exceptions

    return (exceptions.WebAuthnException, ValueError, TypeError, KeyError, IndexError)


class WebAuthnError(errors.TesseraError):
    """A credential or assertion that does not verify; the message is safe to show."""


class NotConfigured(errors.TesseraError):
    """No usable relying party: `web.public_url` is not set or cannot be an RP id."""


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the host name of the public URL (section 5.1.2: a valid domain string)
    origin: str  # scheme://host[:port], as browsers serialise it in clientDataJSON
    name: str


@dataclass(frozen=True)
class Registered:
    credential_id: str  # base64url
    public_key: str  # base64url of the COSE key
    sign_count: int
    aaguid: str
    user_verified: bool
    device_type: str  # single_device | multi_device
    backed_up: bool


@dataclass(frozen=True)
class Asserted:
    credential_id: str  # base64url
    sign_count: int
    user_verified: bool


def relying_party(public_url: str, name: str = "authentik") -> RelyingParty:
    """The RP of a server published at `public_url`; NotConfigured when there is none."""
    if not public_url:
        raise NotConfigured("web.public_url is not set: WebAuthn needs the server's public URL")
    parts = urllib.parse.urlsplit(public_url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("https", "http") or not host:
        raise NotConfigured("web.public_url must be an http(s) URL with a host name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise NotConfigured("web.public_url must use a host name, not an IP address, for WebAuthn")
    default_port = {"https": 443, "http": 80}[parts.scheme]
    port = "" if parts.port in (None, default_port) else f":{parts.port}"
    return RelyingParty(id=host, origin=f"{parts.scheme}://{host}{port}", name=name)


def registration_options(
    rp: RelyingParty,
    *,
    user_id: bytes,
    user_name: str,
    display_name: str,
    exclude: list[str],
    user_verification: Requirement,
    resident_key: Requirement,
    attachment: Attachment | None,
) -> tuple[dict[str, Any], str]:
    """PublicKeyCredentialCreationOptions as JSON, and their challenge (base64url)."""
    from webauthn.helpers import structs

    webauthn = _lib()
    options = webauthn.generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user_id,
        user_name=user_name,
        user_display_name=display_name or user_name,
        timeout=TIMEOUT_MS,
        attestation=structs.AttestationConveyancePreference.NONE,
        authenticator_selection=structs.AuthenticatorSelectionCriteria(
            authenticator_attachment=(
                structs.AuthenticatorAttachment(attachment) if attachment else None
            ),
            resident_key=structs.ResidentKeyRequirement(resident_key),
            user_verification=structs.UserVerificationRequirement(user_verification),
        ),
        exclude_credentials=[_descriptor(c) for c in exclude],
    )
    return _as_json(options), webauthn.helpers.bytes_to_base64url(options.challenge)


def verify_registration(
    rp: RelyingParty, credential: dict[str, Any], challenge: str, *, require_uv: bool
) -> Registered:
    """Check the answer to navigator.credentials.create() (section 7.1); WebAuthnError if not."""
    webauthn = _lib()
    try:
        result = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=require_uv,
        )
    except _malformed() as exc:
        raise WebAuthnError(_reason(exc)) from None
    return Registered(
        credential_id=webauthn.helpers.bytes_to_base64url(result.credential_id),
        public_key=webauthn.helpers.bytes_to_base64url(result.credential_public_key),
        sign_count=result.sign_count,
        aaguid=result.aaguid,
        user_verified=result.user_verified,
        device_type=str(result.credential_device_type.value),
        backed_up=result.credential_backed_up,
    )


def authentication_options(
    rp: RelyingParty, allow: list[str], user_verification: Requirement
) -> tuple[dict[str, Any], str]:
    """PublicKeyCredentialRequestOptions as JSON, and their challenge (base64url)."""
    from webauthn.helpers import structs

    webauthn = _lib()
    options = webauthn.generate_authentication_options(
        rp_id=rp.id,
        timeout=TIMEOUT_MS,
        allow_credentials=[_descriptor(c) for c in allow],
        user_verification=structs.UserVerificationRequirement(user_verification),
    )
    return _as_json(options), webauthn.helpers.bytes_to_base64url(options.challenge)


def verify_authentication(
    rp: RelyingParty,
    credential: dict[str, Any],
    challenge: str,
    public_key: str,
    *,
    require_uv: bool,
) -> Asserted:
    """Check an assertion (section 7.2) except its signature counter, which the caller compares
    with the stored one under a lock (`identity.devices.use_webauthn`); WebAuthnError if not."""
    webauthn = _lib()
    try:
        result = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=webauthn.base64url_to_bytes(public_key),
            credential_current_sign_count=0,  # compared by the caller, see above
            require_user_verification=require_uv,
        )
    except _malformed() as exc:
        raise WebAuthnError(_reason(exc)) from None
    return Asserted(
        credential_id=webauthn.helpers.bytes_to_base64url(result.credential_id),
        sign_count=result.new_sign_count,
        user_verified=result.user_verified,
    )


def normalised_id(raw_id: str) -> str:
    """A credential id as the store keeps it (unpadded base64url); WebAuthnError if malformed."""
    webauthn = _lib()
    try:
        return str(webauthn.helpers.bytes_to_base64url(webauthn.base64url_to_bytes(raw_id)))
    except ValueError:
        raise WebAuthnError("The credential id is malformed.") from None


def encode_id(data: bytes) -> str:
    """Bytes (a user handle, a credential id) as unpadded base64url."""
    return str(_lib().helpers.bytes_to_base64url(data))


def same_id(a: str, b: str) -> bool:
    """Constant-time comparison of two normalised base64url ids."""
    return hmac.compare_digest(a.encode(), b.encode())


def _descriptor(credential_id: str) -> structs.PublicKeyCredentialDescriptor:
    from webauthn.helpers import structs

    return structs.PublicKeyCredentialDescriptor(id=_lib().base64url_to_bytes(credential_id))


def _as_json(options: Any) -> dict[str, Any]:
    return dict(json.loads(_lib().options_to_json(options)))


def _reason(exc: Exception) -> str:
    from webauthn.helpers import exceptions

    if isinstance(exc, exceptions.WebAuthnException) and str(exc):
        return str(exc)[:200]
    return "The credential is malformed."
