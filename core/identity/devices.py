"""Authenticator devices: TOTP, static (recovery) codes and WebAuthn credentials, over the
`authenticator_devices` table.

The authenticator stages call this module: the setup stages (`stages.authenticator_totp`,
`stages.authenticator_static`) create an unconfirmed device and confirm it; the validate stage
(`stages.authenticator_validate`) lists confirmed devices and checks a code with `verify_totp` or
`consume_static`. It calls `store.crud` and the keyring of `crypto`; pyotp computes the codes.
WebAuthn credentials are verified before they are stored (`stages.authenticator_webauthn` calls
`create_webauthn` with a checked credential), so they are confirmed at once; the validate stage
finds one with `find_webauthn` and records its use with `use_webauthn`.

# SECURITY: the TOTP seed and the static codes' digests are sealed under the row's context
# (`authenticator_devices:<pk>`), never stored in clear. A TOTP code is accepted once: the
# device's last used time step is kept in `data` and a step at or before it is refused, under a
# lock on the device, so that two concurrent submissions of one code cannot both pass. A static
# code is removed in the transaction that accepts it, under the same lock. A WebAuthn credential's
public key is sealed too; its row's pk is derived from the credential id, so one credential
belongs to one user at most, and its signature counter only moves forward, under the lock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyotp

from tessera.core import crypto, store
from tessera.core.crypto import webauthn
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "authenticator_devices"
TOTP_STEP = 30  # seconds (RFC 6238 section 4, the default X)
TOTP_DRIFT = 1  # steps accepted either side of the current one
ISSUER = "authentik"
MAX_CODE_LENGTH = 100  # the longest static code a stage may issue, and the validate input limit


@dataclass(frozen=True)
class Model:
    """How authentik names a device kind: its Django app, model and verbose name."""

    app: str
    model_name: str
    label: str
    verbose_name: str


MODELS = {
    "totp": Model("authentik_stages_authenticator_totp", "totpdevice", "TOTPDevice", "TOTP Device"),
    "static": Model(
        "authentik_stages_authenticator_static", "staticdevice", "StaticDevice", "Static Device"
    ),
    "webauthn": Model(
        "authentik_stages_authenticator_webauthn",
        "webauthndevice",
        "WebAuthnDevice",
        "WebAuthn Device",
    ),
}
KINDS = tuple(MODELS)  # every device kind the store holds


def model_ref(device: dict[str, Any]) -> dict[str, Any]:
    """The `model` of an audit event about `device` (authentik's app label and model name)."""
    model = MODELS[device["kind"]]
    return {
        "app": model.app,
        "model_name": model.model_name,
        "pk": device["pk"],
        "name": device["name"],
    }


def _context(pk: str) -> str:
    return f"{TABLE}:{pk}"


def _lock_name(pk: str) -> str:
    return f"device:{pk}"


async def _create(
    tx: store.Tx,
    keyring: crypto.Keyring,
    user_pk: int,
    kind: str,
    secret: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    """Insert an unconfirmed device; the user's other unconfirmed ones of this kind go."""
    await crud.delete(tx, TABLE, user_pk=user_pk, kind=kind, confirmed=False)
    pk = util.new_uuid()
    return await crud.insert(
        tx,
        TABLE,
        {
            "pk": pk,
            "user_pk": user_pk,
            "kind": kind,
            "name": f"{kind} device",
            "confirmed": False,
            "secret_sealed": keyring.seal(secret, _context(pk)),
            "data": data,
            **await _stamped(tx),
        },
    )


async def _stamped(tx: store.Tx) -> dict[str, Any]:
    """`created`, `last_updated` and the integer id (`num_pk`, authentik's device pk) of a new
    row."""
    await crud.lock(tx, "authenticator_devices.num_pk")  # max + 1 must not race between replicas
    num_pk = int(await crud.max_value(tx, TABLE, "num_pk") or 0) + 1
    now = util.now()
    return {"created": now, "last_updated": now, "num_pk": num_pk}


def _changed(values: dict[str, Any], used: bool = False) -> dict[str, Any]:
    """`values` with `last_updated` (and with `used`, `last_used`) set to now."""
    now = util.now()
    return {**values, "last_updated": now, **({"last_used": now} if used else {})}


async def create_totp(
    tx: store.Tx, keyring: crypto.Keyring, user_pk: int, digits: int
) -> dict[str, Any]:
    return await _create(
        tx, keyring, user_pk, "totp", pyotp.random_base32(), {"digits": digits, "last_step": -1}
    )


async def create_static(tx: store.Tx, keyring: crypto.Keyring, user_pk: int) -> dict[str, Any]:
    return await _create(tx, keyring, user_pk, "static", "[]", {})


def secret(keyring: crypto.Keyring, device: dict[str, Any]) -> str:
    """The device's clear secret (a TOTP seed; for static devices, the JSON list of digests)."""
    return keyring.unseal(device["secret_sealed"], _context(device["pk"]))


def provisioning_uri(keyring: crypto.Keyring, device: dict[str, Any], username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    totp = pyotp.TOTP(secret(keyring, device), digits=device["data"]["digits"], interval=TOTP_STEP)
    return totp.provisioning_uri(name=username, issuer_name=ISSUER)


async def set_static_codes(
    tx: store.Tx, keyring: crypto.Keyring, device: dict[str, Any], codes: list[str]
) -> None:
    """Replace an unconfirmed static device's codes (their keyed digests, sealed)."""
    digests = json.dumps([keyring.digest(code) for code in codes])
    sealed = keyring.seal(digests, _context(device["pk"]))
    await crud.update(
        tx, TABLE, {"pk": device["pk"], "confirmed": False}, _changed({"secret_sealed": sealed})
    )


async def pending(tx: store.Tx, pk: object, user_pk: int, kind: str) -> dict[str, Any] | None:
    """The unconfirmed device `pk` of this user and kind, if it still exists."""
    if not isinstance(pk, str):
        return None
    return await crud.find(tx, TABLE, pk=pk, user_pk=user_pk, kind=kind, confirmed=False)


async def confirm(tx: store.Tx, pk: str, name: str = "") -> dict[str, Any]:
    values: dict[str, Any] = {"confirmed": True}
    if name:
        values["name"] = name
    return await crud.update(tx, TABLE, {"pk": pk}, _changed(values))


async def confirmed(tx: store.Tx, user_pk: int, kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The user's confirmed devices of these kinds, oldest first."""
    rows = await crud.rows(
        tx,
        TABLE,
        [crud.Filter("user_pk", "eq", user_pk), crud.Filter("confirmed", "eq", True)],
        ordering=("created",),
    )
    return [row for row in rows if row["kind"] in kinds]


async def delete(tx: store.Tx, pk: str, user_pk: int) -> bool:
    return await crud.delete(tx, TABLE, pk=pk, user_pk=user_pk) > 0


async def remove(tx: store.Tx, pk: object, user_pk: int) -> dict[str, Any] | None:
    """Delete the device `pk` if it is `user_pk`'s and return it (for the audit event); None
    when there is no such device of this user, whoever else may own it."""
    if not isinstance(pk, str) or not _is_uuid(pk):
        return None
    # SECURITY: found by pk *and* owner, so another user's pk finds nothing.
    device = await crud.find(tx, TABLE, pk=pk, user_pk=user_pk)
    if device is None or not await delete(tx, device["pk"], user_pk):
        return None
    return device


async def rename(tx: store.Tx, device: dict[str, Any], name: str) -> dict[str, Any]:
    """Rename the device; the same name is no change (`last_updated` stays)."""
    if name == device["name"]:
        return device
    return await crud.update(tx, TABLE, {"pk": device["pk"]}, _changed({"name": name}))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def last_updated(device: dict[str, Any]) -> Any:
    """When the device last changed (a row written before revision 0005 may lack it)."""
    return device.get("last_updated") or device["last_used"] or device["created"]


async def lock_user(tx: store.Tx, user_pk: int) -> None:
    """Serialise second-factor attempts of one user (until the transaction ends)."""
    await crud.lock(tx, f"mfa:user:{user_pk}")


async def verify_totp(
    tx: store.Tx, keyring: crypto.Keyring, pk: str, code: str, now: float | None = None
) -> bool:
    """Accept `code` for device `pk` once: a step within the drift and after the last used one."""
    # SECURITY: the lock, then a fresh read, serialise concurrent submissions of one code.
    await crud.lock(tx, _lock_name(pk))
    device = await crud.find(tx, TABLE, pk=pk, kind="totp")
    if device is None:
        return False
    data = dict(device["data"])
    totp = pyotp.TOTP(secret(keyring, device), digits=data["digits"], interval=TOTP_STEP)
    current = int((time.time() if now is None else now) // TOTP_STEP)
    for step in range(current - TOTP_DRIFT, current + TOTP_DRIFT + 1):
        # SECURITY: a step at or before the last accepted one is a replay.
        if step > data["last_step"] and crypto.secrets.equal(totp.generate_otp(step), code):
            data["last_step"] = step
            await crud.update(tx, TABLE, {"pk": pk}, _changed({"data": data}, used=True))
            return True
    return False


async def consume_static(
    tx: store.Tx, keyring: crypto.Keyring, device: dict[str, Any], code: str
) -> bool:
    """Accept `code` on a confirmed static device and remove it, in this transaction."""
    await crud.lock(tx, _lock_name(device["pk"]))
    fresh = await crud.find(tx, TABLE, pk=device["pk"], kind="static", confirmed=True)
    if fresh is None:
        return False
    wanted = keyring.digest(code)
    digests: list[str] = json.loads(secret(keyring, fresh))
    kept = [d for d in digests if not crypto.secrets.equal(d, wanted)]
    if len(kept) == len(digests):
        return False
    sealed = keyring.seal(json.dumps(kept), _context(fresh["pk"]))
    await crud.update(
        tx, TABLE, {"pk": fresh["pk"]}, _changed({"secret_sealed": sealed}, used=True)
    )
    return True


def new_static_codes(count: int, length: int) -> list[str]:
    return [crypto.secrets.new_token(length) for _ in range(count)]


# WebAuthn ------------------------------------------------------------------------------------


def webauthn_pk(credential_id: str) -> str:
    """The row pk of a WebAuthn credential: derived from its id, so lookups use the key and a
    credential cannot be stored twice (for one user or for two)."""
    return str(
        uuid.UUID(hex=crypto.secrets.sha256_hex("webauthn:" + credential_id)[:32], version=5)
    )


async def create_webauthn(
    tx: store.Tx,
    keyring: crypto.Keyring,
    user_pk: int,
    credential: webauthn.Registered,
    name: str,
) -> dict[str, Any] | None:
    """Store a verified credential as a confirmed device; None when it is already registered."""
    pk = webauthn_pk(credential.credential_id)
    await crud.lock(tx, _lock_name(pk))
    if await crud.exists(tx, TABLE, pk=pk):
        return None
    data = {
        "credential_id": credential.credential_id,
        "sign_count": credential.sign_count,
        "aaguid": credential.aaguid,
        "device_type": credential.device_type,
        "backed_up": credential.backed_up,
    }
    return await crud.insert(
        tx,
        TABLE,
        {
            "pk": pk,
            "user_pk": user_pk,
            "kind": "webauthn",
            "name": name or "WebAuthn device",
            "confirmed": True,
            "secret_sealed": keyring.seal(credential.public_key, _context(pk)),
            "data": data,
            **await _stamped(tx),
        },
    )


def webauthn_ids(found: Sequence[dict[str, Any]]) -> list[str]:
    """The credential ids of these devices' WebAuthn credentials."""
    return [str(d["data"]["credential_id"]) for d in found if d["kind"] == "webauthn"]


async def find_webauthn(tx: store.Tx, user_pk: int, credential_id: str) -> dict[str, Any] | None:
    """This user's confirmed WebAuthn device holding `credential_id`, if any."""
    return await crud.find(
        tx, TABLE, pk=webauthn_pk(credential_id), user_pk=user_pk, kind="webauthn", confirmed=True
    )


async def find_credential(tx: store.Tx, credential_id: str) -> dict[str, Any] | None:
    """The confirmed WebAuthn device holding `credential_id`, whoever its user (passkey login)."""
    pk = webauthn_pk(credential_id)
    return await crud.find(tx, TABLE, pk=pk, kind="webauthn", confirmed=True)


async def use_webauthn(tx: store.Tx, pk: str, sign_count: int) -> bool:
    """Record a verified assertion's signature counter; False when it did not move forward.

    WebAuthn section 6.1.1: when either counter is non-zero, a new value at or below the stored
    one means the credential may have been cloned; the stored value is then left unchanged.
    """
    await crud.lock(tx, _lock_name(pk))
    device = await crud.find(tx, TABLE, pk=pk, kind="webauthn", confirmed=True)
    if device is None:
        return False
    data = dict(device["data"])
    stored = int(data.get("sign_count", 0))
    # SECURITY: a counter that does not increase is a possible cloned authenticator.
    if (sign_count > 0 or stored > 0) and sign_count <= stored:
        return False
    data["sign_count"] = sign_count
    await crud.update(tx, TABLE, {"pk": pk}, _changed({"data": data}, used=True))
    return True
