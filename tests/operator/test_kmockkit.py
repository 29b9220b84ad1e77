"""The emulated API server behaves as Kopf and kubectl need (tests/kmockkit.py): the gaps of
plain kmock 0.8 it fills would otherwise stall the operator or break kubectl."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from typing import Any

import aiohttp
import pytest
from kmockkit import Cluster

PROVIDERS_URL = "/apis/tessera.dev/v1alpha1/namespaces/default/oauth2providers"
SAMPLE = {
    "apiVersion": "tessera.dev/v1alpha1",
    "kind": "OAuth2Provider",
    "metadata": {"name": "sample", "namespace": "default"},
    "spec": {"credentialsSecret": {"name": "sample-oidc"}},
}


async def _json(response: Any) -> Any:
    return json.loads(await response.read())


async def test_objects_get_resource_versions_uids_and_generations(cluster: Cluster) -> None:
    api = cluster.api
    created = await _json(await api.post(PROVIDERS_URL, json=SAMPLE))
    meta = created["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"]
    first = int(meta["resourceVersion"])
    patched = await _json(
        await api.patch(
            f"{PROVIDERS_URL}/sample",
            json={"spec": {"scopes": ["openid"]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    assert int(patched["metadata"]["resourceVersion"]) > first
    assert patched["metadata"]["generation"] == 2
    status = await _json(
        await api.patch(
            f"{PROVIDERS_URL}/sample/status",
            json={"status": {"observedGeneration": 2}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
    )
    assert status["metadata"]["generation"] == 2  # a status write is no new generation


async def test_a_stale_json_patch_is_refused_with_422_as_kopf_expects(cluster: Cluster) -> None:
    api = cluster.api
    await api.post(PROVIDERS_URL, json=SAMPLE)
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
    ]
    answer = await api.patch(
        f"{PROVIDERS_URL}/sample",
        json=stale,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert answer.status == 422
    stored = cluster.api.get("tessera.dev/v1alpha1/oauth2providers", "default", "sample")
    assert "finalizers" not in stored["metadata"]


async def test_a_watch_replays_existing_objects_then_streams_new_ones_as_json(
    cluster: Cluster,
) -> None:
    api = cluster.api
    await api.post(PROVIDERS_URL, json=SAMPLE)
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{cluster.url}{PROVIDERS_URL}?watch=true") as response,
        ):
            assert response.headers["Content-Type"].startswith("application/json")
            async for line in response.content:
                if line.strip():
                    seen.append(json.loads(line))

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await api.post(PROVIDERS_URL, json={**SAMPLE, "metadata": {"name": "second"}})
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in seen]
    assert names == [("ADDED", "sample"), ("ADDED", "second")]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_lists_with_kind_and_finds_core_resources(cluster: Cluster) -> None:
    await cluster.api.post(PROVIDERS_URL, json=SAMPLE)

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", f"--kubeconfig={cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = await asyncio.to_thread(kubectl, "get", "oauth2providers", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["items"][0]["metadata"]["name"] == "sample"
    secrets = await asyncio.to_thread(kubectl, "get", "secrets")
    assert secrets.returncode == 0, secrets.stderr  # /api/v1 discovery is usable
