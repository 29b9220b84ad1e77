"""An Application applied before its provider waits (`Ready=False, ProviderNotReady`) without a
retry timer; the provider's reconcile nudges it through the annotation `tessera.dev/provider-pk`,
so it links within moments of the provider's core object, once, and never in a loop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Server
from kmockkit import Cluster, eventually
from operatorkit import application, create, patch_spec, provider, ready, stored

from tessera.operator import metrics

pytestmark = pytest.mark.slow


def reconciles(meters: metrics.Metrics, kind: str, result: str) -> float:
    labels = {"kind": kind, "result": result}
    return meters.registry.get_sample_value("tessera_operator_reconciles_total", labels) or 0.0


async def test_a_waiting_application_is_nudged_once_its_provider_exists(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = f"n-{uuid.uuid4().hex[:8]}"
    prov = provider("late", space)
    app = application("late", space, f"late-{space}")
    # The drift timer is 300 s away: only the nudge can make the Application Ready here.
    async with make_operator() as meters:
        await create(cluster, app)
        await eventually(lambda: ready(cluster, app)["reason"] == "ProviderNotReady")
        await create(cluster, prov)
        await eventually(lambda: ready(cluster, prov)["status"] == "True")
        provider_ready = time.monotonic()
        await eventually(lambda: ready(cluster, app)["status"] == "True")
        # Typically 0.1-0.3 s; the bound leaves room for a busy machine. Without the nudge the
        # Application would wait for the drift timer (300 s here).
        assert time.monotonic() - provider_ready < 1.5
        pk = str(stored(cluster, prov)["status"]["providerPk"])
        assert stored(cluster, app)["metadata"]["annotations"]["tessera.dev/provider-pk"] == pk
        assert reconciles(meters, "Application", "error") == 1  # the wait: no retries
        assert reconciles(meters, "Application", "ok") == 1
        # The provider reconciles again (a spec change): same core provider, so no nudge.
        await patch_spec(cluster, prov, {"redirectURIs": [{"url": "http://late.example/2"}]})
        await eventually(lambda: stored(cluster, prov)["status"]["observedGeneration"] == 2)
        await eventually(lambda: reconciles(meters, "OAuth2Provider", "ok") == 2)
        await asyncio.sleep(0.5)  # time for a (wrong) nudge to reach the Application
    assert reconciles(meters, "Application", "ok") == 1
    assert reconciles(meters, "Application", "error") == 1
    assert reconciles(meters, "OAuth2Provider", "ok") == 2


async def test_an_application_that_linked_on_its_own_is_not_nudged(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = f"n-{uuid.uuid4().hex[:8]}"
    prov = provider("early", space)
    app = application("early", space, f"early-{space}")
    async with make_operator() as meters:
        await create(cluster, prov)
        await eventually(lambda: ready(cluster, prov)["status"] == "True")
        await create(cluster, app)
        await eventually(lambda: ready(cluster, app)["status"] == "True")
        await patch_spec(cluster, prov, {"redirectURIs": [{"url": "http://early.example/2"}]})
        await eventually(lambda: reconciles(meters, "OAuth2Provider", "ok") == 2)
        await asyncio.sleep(0.5)  # time for a (wrong) nudge to reach the Application
    assert "tessera.dev/provider-pk" not in stored(cluster, app)["metadata"].get("annotations", {})
    assert reconciles(meters, "Application", "ok") == 1
    assert reconciles(meters, "Application", "error") == 0
