"""A software WebAuthn authenticator for the flow tests: an EC P-256 key (COSE ES256), `none`
attestation, and the client's side (clientDataJSON), built from the WebAuthn level 2 formats with
`cryptography` and `cbor2`. Each knob lets a test play an attacker or a broken authenticator:
another origin or RP id, no user verification, a signature counter that goes backwards."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40  # authenticator data flags (section 6.1)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """One credential on one authenticator, for the relying party at `origin`."""

    def __init__(self, origin: str, *, counter_step: int = 1, user_verified: bool = True) -> None:
        self.origin = origin
        self.rp_id = origin.split("://", 1)[1].split(":", 1)[0]
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.aaguid = bytes(range(16))
        self.counter = 0
        self.counter_step = counter_step  # 0: an authenticator without a counter (many passkeys)
        self.user_verified = user_verified
        self.user_handle: str | None = None  # a discoverable credential's user.id (base64url)

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, rp_id: str | None, uv: bool | None, attested: bool) -> bytes:
        flags = UP | (UV if (self.user_verified if uv is None else uv) else 0)
        data = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        if attested:
            flags |= AT
        data += bytes([flags]) + self.counter.to_bytes(4, "big")
        if attested:
            data += self.aaguid + len(self.credential_id).to_bytes(2, "big")
            data += self.credential_id + self.cose_key()
        return data

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        ).encode()

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.create(options), as the browser's JSON."""
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps(
            {"fmt": "none", "attStmt": {}, "authData": self._auth_data(rp_id, uv, attested=True)}
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        uv: bool | None = None,
        counter: int | None = None,
        user_handle: str | None = None,
    ) -> dict[str, Any]:
        """The answer to navigator.credentials.get(options), signed with this key; with the user
        handle when the credential is discoverable (or `user_handle` is given)."""
        self.counter = self.counter + self.counter_step if counter is None else counter
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = self._auth_data(rp_id, uv, attested=False)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                **({"userHandle": handle} if (handle := user_handle or self.user_handle) else {}),
            },
            "clientExtensionResults": {},
        }
