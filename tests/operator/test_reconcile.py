"""The operator end to end: custom resources in the emulated API server become core objects
through the real core's admin API, with credentials Secrets that a real OAuth2 client can use;
changes propagate, drift in the core is undone, deletion honours deletionPolicy, and retries
never duplicate anything."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
from helpers import BOOTSTRAP_TOKEN, Server
from kmockkit import Cluster, eventually
from operatorkit import (
    admin,
    application,
    core_object,
    create,
    delete,
    events,
    is_ready,
    marker,
    patch_spec,
    provider,
    ready,
    secret,
    stored,
)

pytestmark = pytest.mark.slow

K8S_VERSIONS = ("1.29", "1.37")  # the oldest and newest the chart supports


def ns() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def core_provider(core: Server, cluster: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    return core_object(core, cluster, "providers/oauth2/", manifest)


async def client_credentials(data: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """A client_credentials grant with the Secret's values, endpoints from its discovery URL."""
    async with aiohttp.ClientSession() as http:
        async with http.get(data["discovery_url"]) as answer:
            assert answer.status == 200
            discovery = await answer.json()
        assert discovery["issuer"] == data["issuer"]
        auth = aiohttp.BasicAuth(data["client_id"], data["client_secret"])
        form = {"grant_type": "client_credentials", "scope": "openid"}
        async with http.post(discovery["token_endpoint"], data=form, auth=auth) as answer:
            return answer.status, await answer.json()


async def test_resources_become_core_objects_and_a_usable_secret(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    slug = f"app-{space}"
    prov = provider("grafana", space, scopes=["openid", "email", "profile"])
    app = application("grafana", space, slug, launchURL="http://grafana.example/")
    async with make_operator():
        await create(cluster, prov)
        await create(cluster, app)
        await is_ready(cluster, prov, app)
        data = await eventually(
            lambda: (
                "issuer" in secret(cluster, space, "grafana-oidc")
                and secret(cluster, space, "grafana-oidc")
            )
        )
    made = core_provider(core, cluster, prov)
    linked = admin(core, "GET", f"core/applications/{slug}/")
    assert linked["provider"] == made["pk"]
    assert linked["managed"] == marker(cluster, app)
    status = stored(cluster, prov)["status"]
    assert status["providerPk"] == made["pk"] and status["clientID"] == made["client_id"]
    assert status["observedGeneration"] == 1
    assert ready(cluster, prov)["observedGeneration"] == 1
    assert stored(cluster, app)["status"]["applicationUID"] == linked["pk"]
    # The Secret: owned by the provider resource, valid for Kubernetes, and it works.
    raw = cluster.api.get("v1/secrets", space, "grafana-oidc")
    owner = raw["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "OAuth2Provider",
        "grafana",
        stored(cluster, prov)["metadata"]["uid"],
    )
    assert owner["controller"] is True
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(raw, version, strict=True)
    assert data["client_id"] == made["client_id"]
    assert data["client_secret"] == made["client_secret"]
    assert data["issuer"] == f"{core.url}/application/o/{slug}/"
    status_code, token = await client_credentials(data)
    assert status_code == 200, token
    assert token["token_type"].lower() == "bearer"
    wrong = {**data, "client_secret": data["client_secret"] + "x"}
    assert (await client_credentials(wrong))[0] == 401
    # Status and events never carry the secret.
    assert data["client_secret"] not in str(stored(cluster, prov))
    assert data["client_secret"] not in str(events(cluster, space, "grafana"))
    assert {"Reconciled"} <= {e["reason"] for e in events(cluster, space, "grafana")}


async def test_an_update_propagates_and_bumps_observed_generation(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    prov = provider("wiki", space)
    async with make_operator():
        await create(cluster, prov)
        await is_ready(cluster, prov)
        before = ready(cluster, prov)["lastTransitionTime"]
        new = [{"url": "https://wiki.example/callback", "matchingMode": "strict"}]
        await patch_spec(cluster, prov, {"redirectURIs": new})
        await eventually(lambda: stored(cluster, prov)["status"]["observedGeneration"] == 2)
    uris = core_provider(core, cluster, prov)["redirect_uris"]
    assert [u["url"] for u in uris] == ["https://wiki.example/callback"]
    condition = ready(cluster, prov)
    assert condition["observedGeneration"] == 2
    assert condition["lastTransitionTime"] == before  # still True: no transition


async def test_drift_in_the_core_is_undone_by_the_timer(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    slug = f"drift-{space}"
    prov = provider("drift", space)
    app = application("drift", space, slug, description="as declared")
    async with make_operator(resync_seconds=0.5):
        await create(cluster, prov)
        await create(cluster, app)
        await is_ready(cluster, prov, app)
        made = core_provider(core, cluster, prov)
        managed = made["managed"]
        # Without the marker header, an admin's write is refused: the object is managed.
        status, _ = core.request(
            "PATCH", f"/api/v3/providers/oauth2/{made['pk']}/", BOOTSTRAP_TOKEN, {"name": "x"}
        )
        assert status == 409
        # With it (as a careless script might), the change lands, and the timer undoes it.
        patched = _write(
            core,
            "PATCH",
            f"providers/oauth2/{made['pk']}/",
            managed,
            {"redirect_uris": [{"matching_mode": "regex", "url": ".*"}]},
        )
        assert patched == 200
        await eventually(
            lambda: (
                [u["url"] for u in core_provider(core, cluster, prov)["redirect_uris"]]
                == ["http://drift.example/cb"]
            )
        )
        app_marker = admin(core, "GET", f"core/applications/{slug}/")["managed"]
        assert _write(core, "DELETE", f"core/applications/{slug}/", app_marker) == 204
        recreated = await eventually(lambda: _app_or_none(core, slug))
    assert recreated["meta_description"] == "as declared"
    assert recreated["provider"] == made["pk"]


def _app_or_none(core: Server, slug: str) -> dict[str, Any] | None:
    status, body = core.request("GET", f"/api/v3/core/applications/{slug}/", BOOTSTRAP_TOKEN)
    return body if status == 200 else None


def _write(core: Server, method: str, path: str, marker: str, body: Any = None) -> int:
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{core.url}/api/v3/{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {BOOTSTRAP_TOKEN}")
    req.add_header("X-Tessera-Managed-By", marker)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_delete_removes_core_objects_and_orphan_keeps_them_unmanaged(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = ns()
    gone, kept = f"gone-{space}", f"kept-{space}"
    prov_gone = provider("gone", space)
    app_gone = application("gone", space, gone)
    prov_kept = provider("kept", space, deletionPolicy="Orphan")
    app_kept = application("kept", space, kept, deletionPolicy="Orphan")
    async with make_operator():
        for m in (prov_gone, app_gone, prov_kept, app_kept):
            await create(cluster, m)
        await is_ready(cluster, prov_gone, app_gone, prov_kept, app_kept)
        gone_pk = core_provider(core, cluster, prov_gone)["pk"]
        kept_pk = core_provider(core, cluster, prov_kept)["pk"]
        for m in (app_gone, prov_gone, app_kept, prov_kept):
            await delete(cluster, m)
        for m in (app_gone, prov_gone, app_kept, prov_kept):
            meta = m["metadata"]
            await eventually(
                lambda meta=meta, m=m: (
                    not cluster.api.alive(
                        f"tessera.dev/v1alpha1/{m['kind'].lower()}s",
                        meta["namespace"],
                        meta["name"],
                    )
                )
            )
    assert _app_or_none(core, gone) is None
    assert core.request("GET", f"/api/v3/providers/oauth2/{gone_pk}/", BOOTSTRAP_TOKEN)[0] == 404
    orphan = _app_or_none(core, kept)
    assert orphan is not None and orphan["managed"] is None
    provider_left = admin(core, "GET", f"providers/oauth2/{kept_pk}/")
    assert provider_left["managed"] is None
    # Released: an admin edits it without any header now.
    admin(core, "PATCH", f"core/applications/{kept}/", {"meta_description": "mine now"})


async def test_own_secret_generated_key_and_access_groups(
    cluster: Cluster,
    core: Server,
    make_operator: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    space = ns()
    slug = f"own-{space}"
    canary = "canary-" + uuid.uuid4().hex  # the client secret, never to be seen outside Secrets
    group = admin(core, "POST", "core/groups/", {"name": f"staff-{space}"})
    user_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "brought", "namespace": space},
        "data": {"secret": base64.b64encode(canary.encode()).decode()},
    }
    prov = provider(
        "own",
        space,
        clientSecretRef={"name": "brought", "key": "secret"},
        signingKey={"generate": "EC"},
    )
    app = application("own", space, slug, accessGroups=[f"staff-{space}"])
    caplog.set_level("DEBUG")
    async with make_operator():
        answer = await cluster.api.post(f"/api/v1/namespaces/{space}/secrets", json=user_secret)
        assert answer.status in (200, 201)
        await create(cluster, prov)
        await create(cluster, app)
        await is_ready(cluster, prov, app)
        data = await eventually(
            lambda: (
                "issuer" in secret(cluster, space, "own-oidc")
                and secret(cluster, space, "own-oidc")
            )
        )
    made = core_provider(core, cluster, prov)
    assert made["client_secret"] == canary == data["client_secret"]
    assert made["signing_key"] is not None
    key = admin(core, "GET", f"crypto/certificatekeypairs/{made['signing_key']}/")
    assert key["name"].startswith(f"{space}-own-")
    app_pk = admin(core, "GET", f"core/applications/{slug}/")["pk"]
    bindings = admin(core, "GET", f"policies/bindings/?target={app_pk}")["results"]
    assert [b["group"] for b in bindings] == [group["pk"]]
    # The brought Secret is only read: never owned, never changed.
    assert "ownerReferences" not in cluster.api.get("v1/secrets", space, "brought")["metadata"]
    encoded = base64.b64encode(canary.encode()).decode()
    for place in (str(stored(cluster, prov)), str(events(cluster, space, "own")), caplog.text):
        assert canary not in place and encoded not in place
    # The access groups are enforced by the core: the client's own service account (what a
    # client_credentials grant acts as) is in none of them, so even valid credentials are denied.
    status_code, token = await client_credentials(data)
    assert (status_code, token["error"]) == (400, "invalid_grant"), token
