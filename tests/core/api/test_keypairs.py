"""`/api/v3/crypto/certificatekeypairs/`: generate, import, view, bad PEM, key sealed at rest."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

API = Any


async def test_generate_ecdsa_and_view(api: API) -> None:
    status, pair = await api(
        "POST",
        "crypto/certificatekeypairs/generate/",
        json={
            "common_name": "sso.example.com",
            "subject_alt_name": "sso.example.com, 10.0.0.1",
            "validity_days": 30,
            "alg": "ecdsa",
        },
    )
    assert status == 200, pair
    assert pair["key_type"] == "ec" and pair["private_key_available"] is True
    status, cert = await api("GET", f"crypto/certificatekeypairs/{pair['pk']}/view_certificate/")
    parsed = x509.load_pem_x509_certificate(cert["data"].encode())
    assert (
        parsed.subject.rfc4514_string().startswith("CN=sso.example.com")
        or "CN=sso.example.com" in parsed.subject.rfc4514_string()
    )
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sso.example.com"]
    status, key = await api("GET", f"crypto/certificatekeypairs/{pair['pk']}/view_private_key/")
    private = serialization.load_pem_private_key(key["data"].encode(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    status, events = await api("GET", "events/events/?action=secret_view")
    assert events["pagination"]["count"] == 1 and "PRIVATE KEY" not in str(events)


async def test_generate_rsa(api: API) -> None:
    status, pair = await api(
        "POST",
        "crypto/certificatekeypairs/generate/",
        json={"common_name": "rsa-key", "alg": "rsa"},
    )
    assert status == 200 and pair["key_type"] == "rsa"


async def test_import_pem_and_reject_mismatch(api: API) -> None:
    _, a = await api(
        "POST", "crypto/certificatekeypairs/generate/", json={"common_name": "a", "alg": "ecdsa"}
    )
    _, b = await api(
        "POST", "crypto/certificatekeypairs/generate/", json={"common_name": "b", "alg": "ecdsa"}
    )
    _, cert_a = await api("GET", f"crypto/certificatekeypairs/{a['pk']}/view_certificate/")
    _, key_a = await api("GET", f"crypto/certificatekeypairs/{a['pk']}/view_private_key/")
    _, key_b = await api("GET", f"crypto/certificatekeypairs/{b['pk']}/view_private_key/")
    status, imported = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "imported", "certificate_data": cert_a["data"], "key_data": key_a["data"]},
    )
    assert status == 201 and imported["fingerprint_sha256"] == a["fingerprint_sha256"]
    status, body = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "mismatch", "certificate_data": cert_a["data"], "key_data": key_b["data"]},
    )
    assert status == 400 and "key_data" in body
    status, body = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "garbage", "certificate_data": "-----BEGIN CERTIFICATE-----\nxx"},
    )
    assert status == 400 and "certificate_data" in body
    status, body = await api("GET", "crypto/certificatekeypairs/?has_key=true")
    assert body["pagination"]["count"] == 3
    status, only_cert = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "cert-only", "certificate_data": cert_a["data"]},
    )
    assert status == 201 and only_cert["private_key_available"] is False
    status, body = await api("GET", "crypto/certificatekeypairs/?has_key=false")
    assert [p["name"] for p in body["results"]] == ["cert-only"]


async def test_rename_keeps_the_key(api: API) -> None:
    _, pair = await api(
        "POST",
        "crypto/certificatekeypairs/generate/",
        json={"common_name": "old-name", "alg": "ecdsa"},
    )
    status, renamed = await api(
        "PATCH", f"crypto/certificatekeypairs/{pair['pk']}/", json={"name": "new-name"}
    )
    assert (
        status == 200 and renamed["name"] == "new-name" and renamed["private_key_available"] is True
    )


async def test_private_key_is_sealed_at_rest(api: API, bootstrapped: Any) -> None:
    _, pair = await api(
        "POST",
        "crypto/certificatekeypairs/generate/",
        json={"common_name": "sealed", "alg": "ecdsa"},
    )
    async with bootstrapped.read() as tx:
        rows = (await tx.conn.execute(sa.text("SELECT * FROM certificate_keypairs"))).all()
    assert "PRIVATE KEY" not in repr(rows)


async def test_invalid_generation_input(api: API) -> None:
    status, body = await api(
        "POST", "crypto/certificatekeypairs/generate/", json={"common_name": "x", "alg": "dsa"}
    )
    assert status == 400 and "alg" in body
    status, body = await api(
        "POST",
        "crypto/certificatekeypairs/generate/",
        json={"common_name": "x", "validity_days": 0},
    )
    assert status == 400 and "validity_days" in body


async def test_edwards_keys_are_generated_and_named_as_authentik_names_them(api: API) -> None:
    for alg in ("ed25519", "ed448"):
        status, pair = await api(
            "POST", "crypto/certificatekeypairs/generate/", json={"common_name": alg, "alg": alg}
        )
        assert status == 200 and pair["key_type"] == alg, pair
    status, page = await api("GET", "crypto/certificatekeypairs/?key_type=ed448")
    assert [p["name"] for p in page["results"]] == ["ed448"]


async def test_a_row_stored_with_the_old_ecdsa_name_reads_as_ec(
    api: API, bootstrapped: Any
) -> None:
    """A replica from before migration 0010 may still write "ecdsa": it reads as authentik's."""
    _, pair = await api(
        "POST", "crypto/certificatekeypairs/generate/", json={"common_name": "old", "alg": "ecdsa"}
    )
    async with bootstrapped.transaction() as tx:
        await tx.conn.execute(
            sa.text("UPDATE certificate_keypairs SET key_type = 'ecdsa' WHERE pk = :pk"),
            {"pk": pair["pk"]},
        )
    status, got = await api("GET", f"crypto/certificatekeypairs/{pair['pk']}/")
    assert status == 200 and got["key_type"] == "ec"
