"""TRIGGER_UPDATE goes only to the outposts whose configuration changed (issue 17): every
instance of an outpost within a second of a change to that outpost, its providers, their
applications, key pairs or flows, also when the change is made through another process's hub;
nobody for a change no outpost reads; everyone when the hub cannot tell (its bus subscription
was lost, or reading what an outpost fetches failed).

Two outposts are connected: `alpha`, a proxy outpost with a proxy provider, and `beta`, an LDAP
outpost with an LDAP provider, each provider with its application, its own key pair and, for
beta, its own bind flow; `gamma` is a proxy provider and application no outpost holds. Before
targeting, every one of these changes reached every instance: the silent instance would fail."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hubkit import Outpost, create_outpost, hello_frame, receive
from ldapcorekit import make_ldap_provider
from oauth2kit import key_pair
from proxyadminkit import make_proxy_provider

from tessera.core import app, config, outpost_hub, store
from tessera.core.api import state
from tessera.core.outpost_hub import hub as hub_
from tessera.core.outpost_hub import prints
from tessera.core.wire import outpost_channel as oc

Client = Any
QUIET = 0.5  # seconds an instance that is not told must stay silent


@dataclass
class Scene:
    alpha: Outpost
    beta: Outpost
    alpha_provider: dict[str, Any]
    beta_provider: dict[str, Any]
    gamma_provider: dict[str, Any]
    keys: dict[str, str]  # alpha, beta, gamma: key pair pks
    sockets: dict[str, list[aiohttp.ClientWebSocketResponse]]


async def _next(ws: aiohttp.ClientWebSocketResponse, instruction: int, timeout: float) -> Any:
    """The next frame with `instruction`; the LDAP slice's directory pushes (PROVIDER_SPECIFIC,
    its outposts' service accounts are directory users) and ACKs are skipped."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await receive(ws, max(deadline - time.monotonic(), 0.001))
        if frame["instruction"] == instruction:
            return frame
        assert frame["instruction"] in (oc.Instruction.ACK, oc.Instruction.PROVIDER_SPECIFIC)


async def _connected(client: Client, outpost: Outpost) -> aiohttp.ClientWebSocketResponse:
    instance = str(uuid.uuid4())
    ws = await client.ws_connect(outpost.path(instance), headers=outpost.headers())
    await ws.send_str(hello_frame(instance))
    await _next(ws, oc.Instruction.ACK, 2.0)
    return ws


async def _silent(ws: aiohttp.ClientWebSocketResponse, seconds: float = QUIET) -> None:
    """No TRIGGER_UPDATE for `seconds`."""
    with pytest.raises(asyncio.TimeoutError):
        await _next(ws, oc.Instruction.TRIGGER_UPDATE, seconds)


async def _told_within_a_second(sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    started = time.monotonic()
    for ws in sockets:
        frame = await _next(ws, oc.Instruction.TRIGGER_UPDATE, 1.0)
        assert frame == {"instruction": 2, "args": {}}
    assert time.monotonic() - started < 1.0


async def _scene(api: Any, client: Client, db: store.Store) -> Scene:
    keys = {name: await key_pair(api, f"{name}-tls") for name in ("alpha", "beta", "gamma")}
    status, _ = await api(
        "POST",
        "flows/instances/",
        json={
            "name": "Beta bind",
            "slug": "beta-bind",
            "title": "Beta bind",
            "designation": "authentication",
        },
    )
    assert status == 201
    alpha_provider = await make_proxy_provider(api, "alpha", certificate=keys["alpha"])
    beta_provider = await make_ldap_provider(
        api, "beta", certificate=keys["beta"], bind_flow="beta-bind"
    )
    gamma_provider = await make_proxy_provider(api, "gamma", certificate=keys["gamma"])
    alpha = await create_outpost(db, "alpha-outpost", [alpha_provider["pk"]])
    beta = await create_outpost(db, "beta-outpost", [beta_provider["pk"]], type="ldap")
    sockets = {
        "alpha": [await _connected(client, alpha) for _ in range(2)],
        "beta": [await _connected(client, beta) for _ in range(2)],
    }
    return Scene(alpha, beta, alpha_provider, beta_provider, gamma_provider, keys, sockets)


@pytest.fixture
async def scene(api: Any, client: Client, bootstrapped: store.Store) -> AsyncIterator[Scene]:
    made = await _scene(api, client, bootstrapped)
    yield made
    for group in made.sockets.values():
        for ws in group:
            await ws.close()


async def _change(api: Any, scene: Scene, target: str, what: str) -> None:
    """Change `what` of the outpost `target` (alpha, beta) or of gamma, which no outpost holds."""
    provider = {
        "alpha": scene.alpha_provider,
        "beta": scene.beta_provider,
        "gamma": scene.gamma_provider,
    }[target]
    kind = "ldap" if target == "beta" else "proxy"
    if what == "provider":
        path, body = f"providers/{kind}/{provider['pk']}/", {"name": f"{target} renamed"}
    elif what == "application":
        path, body = f"core/applications/{target}/", {"name": f"{target.title()} App"}
    elif what == "key pair":
        path, body = f"crypto/certificatekeypairs/{scene.keys[target]}/", {"name": f"{target}-2"}
    elif what == "flow":
        path, body = "flows/instances/beta-bind/", {"slug": "beta-bind-2"}
    else:  # the outpost itself
        outpost = scene.alpha if target == "alpha" else scene.beta
        path, body = f"outposts/instances/{outpost.pk}/", {"name": f"{target}-outpost-2"}
    status, answer = await api("PATCH", path, json=body)
    assert status == 200, answer


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("alpha", "provider"),
        ("alpha", "application"),
        ("alpha", "key pair"),
        ("alpha", "outpost"),
        ("beta", "provider"),
        ("beta", "application"),
        ("beta", "key pair"),
        ("beta", "flow"),
    ],
)
async def test_a_change_reaches_the_instances_of_its_outpost_only(
    api: Any, scene: Scene, target: str, what: str
) -> None:
    other = "beta" if target == "alpha" else "alpha"
    await _change(api, scene, target, what)
    await _told_within_a_second(scene.sockets[target])
    for ws in scene.sockets[other]:
        await _silent(ws)


@pytest.mark.parametrize("what", ["provider", "application", "key pair"])
async def test_a_change_no_outpost_reads_reaches_nobody(
    api: Any, client: Client, scene: Scene, what: str
) -> None:
    hub = client.app[outpost_hub.HUB]
    before = hub.comparisons
    await _change(api, scene, "gamma", what)
    await key_pair(api, "unused")  # a key pair no provider names
    for group in scene.sockets.values():
        for ws in group:
            await _silent(ws)
    assert hub.comparisons > before  # it did compare, and found nothing changed


async def test_an_instance_connecting_after_a_change_is_not_told_of_it(
    api: Any, client: Client, scene: Scene
) -> None:
    await _change(api, scene, "alpha", "provider")
    await _told_within_a_second(scene.sockets["alpha"])
    late = await _connected(client, scene.alpha)  # fetches after its handshake: up to date
    scene.sockets["alpha"].append(late)
    await _change(api, scene, "gamma", "provider")
    await _silent(late)
    await _change(api, scene, "alpha", "application")
    await _told_within_a_second(scene.sockets["alpha"])


async def test_when_reading_fails_everyone_is_told(api: Any, client: Client, scene: Scene) -> None:
    hub = client.app[outpost_hub.HUB]
    assert hub.reading is not None
    # No configs registered for either outpost type: reading what they fetch raises.
    hub.reading = dataclasses.replace(hub.reading, configs={})
    await _change(api, scene, "gamma", "provider")
    await _told_within_a_second(scene.sockets["alpha"] + scene.sockets["beta"])


@pytest.fixture
async def other_replica(
    aiohttp_client: Callable[..., Awaitable[Client]], settings: config.Settings, client: Client
) -> AsyncIterator[Client]:
    """A second core on the same database with its own store and bus connection: its commits
    reach `client`'s hub through the bus only."""
    db = store.Store(settings)
    await db.open()
    other = await aiohttp_client(app.create_app(settings, db, run_tasks=False))
    hubs: list[hub_.Hub] = [client.app[outpost_hub.HUB], other.app[outpost_hub.HUB]]
    async with asyncio.timeout(10.0):
        for hub in hubs:
            await hub.listening.wait()
    yield other
    await other.close()
    await db.close()


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize(("target", "what"), [("alpha", "provider"), ("beta", "key pair")])
async def test_a_change_through_another_replica_is_targeted_too(
    admin_headers: dict[str, str], scene: Scene, other_replica: Client, target: str, what: str
) -> None:
    async def through_other(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await other_replica.request(
            method, f"/api/v3/{path}", headers=admin_headers, **kwargs
        )
        return response.status, await response.json()

    other = "beta" if target == "alpha" else "alpha"
    await _change(through_other, scene, target, what)
    await _told_within_a_second(scene.sockets[target])
    for ws in scene.sockets[other]:
        await _silent(ws)
    await _change(through_other, scene, "gamma", "application")
    for group in scene.sockets.values():
        for ws in group:
            await _silent(ws)


@pytest.mark.parametrize("name", ["alpha", "beta"])
async def test_the_digest_is_of_what_the_outpost_fetches(
    api: Any, client: Client, scene: Scene, name: str
) -> None:
    """What `prints.fetched` reads is what the outpost's own token gets from the endpoints."""
    outpost = scene.alpha if name == "alpha" else scene.beta
    kind = "proxy" if name == "alpha" else "ldap"
    hub = client.app[outpost_hub.HUB]
    assert hub.reading is not None
    async with client.app[state.STORE].read() as tx:
        read = await prints.fetched(tx, hub.reading, outpost.pk)
    assert read is not None
    status, instances = await api("GET", "outposts/instances/", headers=outpost.headers())
    assert status == 200 and instances["results"] == [read["instance"]]
    status, configs = await api("GET", f"outposts/{kind}/?page_size=100", headers=outpost.headers())
    base = str(client.make_url("")).rstrip("/")
    shown = json.loads(json.dumps(read["configs"]).replace(prints.BASE, base))
    assert status == 200 and configs["results"] == shown
    assert [p["pk"] for p in read["keypairs"]] == [scene.keys[name]]
    status, _ = await api(
        "GET",
        f"crypto/certificatekeypairs/{scene.keys[name]}/view_private_key/",
        headers=outpost.headers(),
    )
    assert status == 200  # the outpost may read it: its changes are its own
