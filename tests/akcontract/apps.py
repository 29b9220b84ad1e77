"""Contract cases for `core/applications`, `crypto/` and `events/`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from akcontract import Case, Setup


async def _application(setup: Setup) -> dict[str, Any]:
    return {
        "name": f"Wiki {setup.suffix}",
        "slug": f"wiki-{setup.suffix}",
        "meta_launch_url": "https://wiki.example.com/",
        "meta_description": "the team's wiki",
        "meta_publisher": "ops",
        "group": "docs",
        "policy_engine_mode": "any",
        "open_in_new_tab": True,
    }


def _pem_pair(name: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


async def _keypair(setup: Setup) -> dict[str, Any]:
    certificate, key = _pem_pair(f"contract-{setup.suffix}")
    return {"name": f"contract-{setup.suffix}", "certificate_data": certificate, "key_data": key}


async def _event(setup: Setup) -> Any:
    await setup.make("core/groups", {"name": f"audited-{setup.suffix}"})
    # As the client reads it: authentik's schema makes an event's pk a UUID.
    return uuid.UUID((await setup.first("events/events", action="model_created"))["pk"])


CASES = [
    Case(
        "core/applications",
        _application,
        change={"meta_publisher": "platform"},
        patch={"open_in_new_tab": False},
        lookup="slug",
    ),
    Case(
        "crypto/certificatekeypairs",
        _keypair,
        change={"name": "renamed-pair"},
        patch={"name": "patched-pair"},
        write_only=frozenset({"certificate_data", "key_data"}),
    ),
    Case("events/events", existing=_event),
]
