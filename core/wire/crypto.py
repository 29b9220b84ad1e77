"""Wire models of `/api/v3/crypto/certificatekeypairs/`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from tessera.core.wire.common import Name, Request, Response, Uuid

PEM = Annotated[str, Field(max_length=65536)]


class CertificateKeyPairRequest(Request):
    name: Name
    certificate_data: Annotated[str, Field(min_length=1, max_length=65536)]
    key_data: PEM = ""


class CertificateGeneration(Request):
    common_name: Annotated[str, Field(min_length=1, max_length=64)]
    subject_alt_name: Annotated[str, Field(max_length=2000)] = ""
    validity_days: Annotated[int, Field(ge=1, le=36500)] = 365
    alg: Literal["rsa", "ecdsa", "ed25519", "ed448"] = "rsa"


# The key's algorithm, in authentik's names (`crypto.certificates.KeyType`).
KeyType = Literal["rsa", "ec", "dsa", "ed25519", "ed448"]


class CertificateKeyPair(Response):
    pk: Uuid
    name: str
    fingerprint_sha256: str
    fingerprint_sha1: str
    cert_expiry: dt.datetime
    cert_subject: str
    private_key_available: bool
    key_type: KeyType | None
    certificate_download_url: str
    private_key_download_url: str
    managed: str | None


class CertificateData(Response):
    data: str
