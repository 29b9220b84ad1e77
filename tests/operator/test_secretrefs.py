"""A `clientSecretRef` Secret rotated, emptied of its key or deleted: the provider follows at once
(not at the resync), its status names the field, the operator never writes the user's Secret, and
no secret value reaches logs, Events or status. The operator runs against the emulated API
server and a real core; the resync timer is set far beyond the test's length."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Server
from kmockkit import Cluster, eventually
from operatorkit import admin, create, events, provider, ready, secret, stored

from tessera.operator.handlers import secretrefs
from tessera.operator.resources import common

pytestmark = pytest.mark.slow


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _secrets_url(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" + (f"/{name}" if name else "")


async def _put_secret(cluster: Cluster, namespace: str, name: str, data: dict[str, str]) -> None:
    """Create the Secret, or replace its data (a merge patch; null removes a key)."""
    body = {"metadata": {"name": name}, "data": data}
    if cluster.api.alive("v1/secrets", namespace, name):
        answer = await cluster.api.patch(
            _secrets_url(namespace, name),
            json=body,
            headers={"Content-Type": "application/merge-patch+json"},
        )
    else:
        answer = await cluster.api.post(
            _secrets_url(namespace), json={"apiVersion": "v1", "kind": "Secret", **body}
        )
    assert answer.status in (200, 201), await answer.text()


def _core_secret(core: Server, cluster: Cluster, manifest: dict[str, Any]) -> str:
    meta = stored(cluster, manifest)["metadata"]
    mark = common.managed_value("OAuth2Provider", meta["namespace"], meta["name"], meta["uid"])
    (found,) = admin(core, "GET", f"providers/oauth2/?managed={mark}")["results"]
    return str(found["client_secret"])


async def _condition(cluster: Cluster, manifest: dict[str, Any], status: str) -> dict[str, Any]:
    found: dict[str, Any] = await eventually(
        lambda: ready(cluster, manifest)["status"] == status and ready(cluster, manifest), 15
    )
    return found


async def test_a_rotated_deleted_or_emptied_secret_is_followed_at_once(
    cluster: Cluster,
    core: Server,
    make_operator: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = f"r-{uuid.uuid4().hex[:8]}"
    first, second = ("canary-" + uuid.uuid4().hex for _ in range(2))
    prov = provider("rot", space, clientSecretRef={"name": "brought", "key": "secret"})
    caplog.set_level("DEBUG")
    async with make_operator(resync_seconds=3600):
        await _put_secret(cluster, space, "brought", {"secret": _b64(first)})
        await _put_secret(cluster, space, "unrelated", {"secret": _b64("noise")})
        await create(cluster, prov)
        await _condition(cluster, prov, "True")
        assert secret(cluster, space, "rot-oidc")["client_secret"] == first

        await _put_secret(cluster, space, "brought", {"secret": _b64(second)})
        await eventually(lambda: secret(cluster, space, "rot-oidc")["client_secret"] == second)
        assert _core_secret(core, cluster, prov) == second
        annotations = stored(cluster, prov)["metadata"]["annotations"]
        user_secret = cluster.api.get("v1/secrets", space, "brought")
        assert annotations[secretrefs.ANNOTATION] == user_secret["metadata"]["resourceVersion"]
        # Another Secret's change announces nothing to this provider.
        await _put_secret(cluster, space, "unrelated", {"secret": _b64("more noise")})

        await _put_secret(cluster, space, "brought", {"secret": None, "other": _b64(first)})
        missing_key = await _condition(cluster, prov, "False")
        await _put_secret(cluster, space, "brought", {"secret": _b64(first)})
        await _condition(cluster, prov, "True")
        await eventually(lambda: secret(cluster, space, "rot-oidc")["client_secret"] == first)

        marks = [
            cluster.api.get("v1/secrets", space, name)["metadata"]
            for name in ("brought", "unrelated")
        ]
        answer = await cluster.api.delete(_secrets_url(space, "brought"))
        assert answer.status == 200, await answer.text()
        deleted = await _condition(cluster, prov, "False")
        final = stored(cluster, prov)
    assert missing_key["reason"] == deleted["reason"] == "InvalidSpec"
    assert missing_key["message"].startswith("spec.clientSecretRef.key:")
    assert deleted["message"].startswith("spec.clientSecretRef.name:")
    assert final["metadata"]["annotations"][secretrefs.ANNOTATION] == secretrefs.ABSENT
    assert _core_secret(core, cluster, prov) == first  # the last good value stays in the core
    # The users' Secrets are only read: the operator left no mark on them.
    for meta in marks:
        assert not meta.get("annotations") and not meta.get("finalizers")
        assert not meta.get("ownerReferences")
    found = (events(cluster, space, "rot"), events(cluster, space, "brought"))
    places = (str(final), str(found))
    for value in (first, second):
        for place in (*places, caplog.text):
            assert value not in place and _b64(value) not in place


def test_the_index_keys_providers_by_the_secret_they_name() -> None:
    spec = {"clientSecretRef": {"name": "brought", "key": "secret"}}
    assert secretrefs.entry("team", "app", spec) == {("team", "brought"): "app"}
    assert secretrefs.entry("team", "app", {}) == {}
    assert secretrefs.entry(None, "app", spec) == {}
    assert secretrefs.version("DELETED", {"metadata": {"resourceVersion": "7"}}) == "absent"
    assert secretrefs.version("MODIFIED", {"metadata": {"resourceVersion": "7"}}) == "7"
