"""Certificate-key pairs: import of PEM, generation, and sealed storage of private keys."""

from __future__ import annotations

import typing
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "certificate_keypairs"


def _context(pk: str) -> str:
    return f"{TABLE}:{pk}"


async def _unique_name(tx: store.Tx, name: str, pk: str | None) -> None:
    clash = await crud.find(tx, TABLE, name=name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one(
            "name", "Certificate-Key Pair with this name already exists."
        )


async def create(
    tx: store.Tx,
    keyring: crypto.Keyring,
    body: wire.crypto.CertificateKeyPairRequest,
    managed: str | None = None,
) -> dict[str, Any]:
    await _unique_name(tx, body.name, None)
    try:
        info = crypto.certificates.parse(body.certificate_data, body.key_data)
    except crypto.certificates.CertificateError as exc:
        raise errors.ValidationFailed.one(exc.field, str(exc)) from None
    pk = util.new_uuid()
    return await crud.insert(
        tx,
        TABLE,
        {
            "pk": pk,
            "name": body.name,
            "certificate_data": body.certificate_data,
            "key_sealed": keyring.seal(body.key_data, _context(pk)) if body.key_data else "",
            "fingerprint_sha256": info.fingerprint_sha256,
            "fingerprint_sha1": info.fingerprint_sha1,
            "cert_expiry": info.cert_expiry,
            "cert_subject": info.cert_subject,
            "key_type": info.key_type,
            "managed": managed,
            "created": util.now(),
        },
    )


async def generate(
    body: wire.crypto.CertificateGeneration,
) -> wire.crypto.CertificateKeyPairRequest:
    """A new self-signed pair as an import request; run it before opening a transaction."""
    names = [n.strip() for n in body.subject_alt_name.split(",") if n.strip()]
    try:
        cert, key = await crypto.work.run(
            crypto.certificates.generate, body.common_name, names, body.validity_days, body.alg
        )
    except ValueError as exc:  # e.g. a subject alternative name that is no DNS name
        raise errors.ValidationFailed.one("subject_alt_name", str(exc)) from None
    return wire.crypto.CertificateKeyPairRequest(
        name=body.common_name, certificate_data=cert, key_data=key
    )


async def update(
    tx: store.Tx,
    keyring: crypto.Keyring,
    row: dict[str, Any],
    body: wire.crypto.CertificateKeyPairRequest,
) -> dict[str, Any]:
    """Rename or replace the pair; an empty `key_data` keeps the stored key if it still fits."""
    await _unique_name(tx, body.name, row["pk"])
    key = body.key_data or private_key(keyring, row)
    try:
        info = crypto.certificates.parse(body.certificate_data, key)
    except crypto.certificates.CertificateError as exc:
        raise errors.ValidationFailed.one(exc.field, str(exc)) from None
    values = {
        "name": body.name,
        "certificate_data": body.certificate_data,
        "key_sealed": keyring.seal(key, _context(row["pk"])) if key else "",
        "fingerprint_sha256": info.fingerprint_sha256,
        "fingerprint_sha1": info.fingerprint_sha1,
        "cert_expiry": info.cert_expiry,
        "cert_subject": info.cert_subject,
        "key_type": info.key_type,
    }
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, values)


def private_key(keyring: crypto.Keyring, row: dict[str, Any]) -> str:
    return keyring.unseal(row["key_sealed"], _context(row["pk"])) if row["key_sealed"] else ""


def _key_type(stored: str | None) -> wire.crypto.KeyType | None:
    """authentik's name for a stored key type (rows from before migration 0010 say "ecdsa")."""
    if stored is None:
        return None
    name = crypto.certificates.KEY_TYPE_ALIASES.get(stored, stored)
    known = name in typing.get_args(wire.crypto.KeyType)
    return typing.cast(wire.crypto.KeyType, name) if known else None


def serialize(
    rows: list[dict[str, Any]], base: str = "/api/v3/crypto/certificatekeypairs"
) -> list[wire.crypto.CertificateKeyPair]:
    return [
        wire.crypto.CertificateKeyPair(
            pk=r["pk"],
            name=r["name"],
            fingerprint_sha256=r["fingerprint_sha256"],
            fingerprint_sha1=r["fingerprint_sha1"],
            cert_expiry=r["cert_expiry"],
            cert_subject=r["cert_subject"],
            private_key_available=bool(r["key_sealed"]),
            key_type=_key_type(r["key_type"]),
            certificate_download_url=f"{base}/{r['pk']}/view_certificate/?download",
            private_key_download_url=f"{base}/{r['pk']}/view_private_key/?download",
            managed=r["managed"],
        )
        for r in rows
    ]
