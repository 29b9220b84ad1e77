"""The operator's own Kubernetes calls (`handlers.kube`): what an absent object reads as, and that
every refusal or transport failure becomes `KubeUnavailable` naming the call, with no trace of the
API's answer (which may carry Secret data). Real `kubernetes_asyncio` clients talk to the emulated
API server, to a small aiohttp server answering a chosen status, or to a closed port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import kmockkit
import kopf
import operatorkit
import pytest
from aiohttp import web
from helpers import free_port
from kmockkit import Cluster
from kubernetes_asyncio import client

from tessera.operator.handlers import kube
from tessera.operator.resources import common

CANARY = "c2VjcmV0LWNhbmFyeS12YWx1ZQ=="  # what a leaked Secret value would look like
OWNER = kopf.Body(
    {
        "apiVersion": common.API_VERSION,
        "kind": "OAuth2Provider",
        "metadata": {"name": "grafana", "namespace": "team-a", "uid": "0f0e-owner"},
    }
)
Call = Callable[[client.ApiClient], Awaitable[Any]]


def _manifest() -> dict[str, Any]:
    return kube.secret_manifest(OWNER, "grafana-oidc", {"client_secret": "s3cret"}, {})


CALLS: dict[str, tuple[Call, str]] = {
    "read_secret": (
        lambda api: kube.read_secret(api, "team-a", "grafana-oidc"),
        "read Secret grafana-oidc",
    ),
    "secret_value": (
        lambda api: kube.secret_value(api, "team-a", "grafana-oidc", "client_secret"),
        "read Secret grafana-oidc",
    ),
    # write_secret reads the Secret first: a refused read is named as such.
    "write_secret": (lambda api: kube.write_secret(api, _manifest()), "read Secret grafana-oidc"),
    "read_custom": (
        lambda api: kube.read_custom(
            api, common.GROUP, common.VERSION, "oauth2providers", "team-a", "grafana"
        ),
        "read oauth2providers grafana",
    ),
    "annotate_custom": (
        lambda api: kube.annotate_custom(
            api, common.GROUP, common.VERSION, "oauth2providers", "team-a", "grafana", {"a": "b"}
        ),
        "annotate oauth2providers grafana",
    ),
}


async def _refused_by(call: Call, api: client.ApiClient) -> str:
    """The message of the KubeUnavailable that `call` raises, checked to carry no API answer."""
    with pytest.raises(kube.KubeUnavailable) as caught:
        await call(api)
    error = caught.value
    assert error.__cause__ is None and error.__suppress_context__
    assert CANARY not in str(error) and CANARY not in repr(error)
    return str(error)


@pytest.fixture
async def answering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[dict[str, tuple[int, dict[str, Any]]]], None]]:
    """`answering({"GET": (500, body)})` makes the kubeconfig's API server answer each method
    with that status and JSON body; a method not listed gets 404 with CANARY in the body."""
    answers: dict[str, tuple[int, dict[str, Any]]] = {}

    async def answer(request: web.Request) -> web.Response:
        status, body = answers.get(request.method, (404, {"kind": "Status", "message": CANARY}))
        return web.json_response(body, status=status)

    async with operatorkit.serve(answer) as url:
        path = kmockkit.kubeconfig(tmp_path / "kubeconfig", url)
        monkeypatch.setenv("KUBECONFIG", str(path))
        yield answers.update


def _status(code: int) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "code": code, "message": f"denied: {CANARY}"}


def _stored_secret(uid: str) -> tuple[int, dict[str, Any]]:
    """A Secret as the API returns it: owned by `uid`, with data other than the manifest's."""
    return 200, {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "grafana-oidc",
            "namespace": "team-a",
            "ownerReferences": [
                {
                    "apiVersion": common.API_VERSION,
                    "kind": "OAuth2Provider",
                    "name": "grafana",
                    "uid": uid,
                }
            ],
        },
        "data": {"client_secret": CANARY},
    }


async def test_absent_objects_read_as_none_and_are_not_annotated(cluster: Cluster) -> None:
    async with await kube.connect() as api:
        assert await kube.read_secret(api, "team-a", "grafana-oidc") is None
        assert await kube.secret_value(api, "team-a", "grafana-oidc", "client_secret") is None
        provider = ("oauth2providers", "team-a", "grafana")
        assert await kube.read_custom(api, common.GROUP, common.VERSION, *provider) is None
        annotations = {"tessera.dev/nudge": "1"}
        assert not await kube.annotate_custom(
            api, common.GROUP, common.VERSION, *provider, annotations
        )


async def test_a_written_secret_reads_back_and_an_equal_write_is_skipped(cluster: Cluster) -> None:
    async with await kube.connect() as api:
        assert await kube.write_secret(api, _manifest())
        assert await kube.secret_value(api, "team-a", "grafana-oidc", "client_secret") == "s3cret"
        assert not await kube.write_secret(api, _manifest())


@pytest.mark.parametrize("code", [401, 403, 500, 503])
@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_refusal_is_unavailable_and_its_body_never_leaks(
    answering: Callable[[dict[str, tuple[int, dict[str, Any]]]], None], name: str, code: int
) -> None:
    call, what = CALLS[name]
    answering({"GET": _status(code), "PATCH": _status(code)})
    async with await kube.connect() as api:
        assert await _refused_by(call, api) == f"{what}: Kubernetes API answered {code}"


@pytest.mark.parametrize("code", [404, 409, 422, 500])
async def test_a_refused_create_is_unavailable_even_when_it_says_not_found(
    answering: Callable[[dict[str, tuple[int, dict[str, Any]]]], None], code: int
) -> None:
    answering({"POST": _status(code)})  # the read before it finds no Secret (404)
    async with await kube.connect() as api:
        message = await _refused_by(lambda api: kube.write_secret(api, _manifest()), api)
    assert message == f"write Secret grafana-oidc: Kubernetes API answered {code}"


@pytest.mark.parametrize("code", [404, 403, 500])
async def test_a_refused_patch_is_unavailable_even_when_it_says_not_found(
    answering: Callable[[dict[str, tuple[int, dict[str, Any]]]], None], code: int
) -> None:
    answering({"GET": _stored_secret("0f0e-owner"), "PATCH": _status(code)})
    async with await kube.connect() as api:
        message = await _refused_by(lambda api: kube.write_secret(api, _manifest()), api)
    assert message == f"write Secret grafana-oidc: Kubernetes API answered {code}"


async def test_a_secret_of_another_owner_is_a_conflict_not_an_outage(
    answering: Callable[[dict[str, tuple[int, dict[str, Any]]]], None],
) -> None:
    answering({"GET": _stored_secret("someone-else"), "PATCH": (200, {})})
    async with await kube.connect() as api:
        with pytest.raises(kube.SecretConflict, match=r"^grafana-oidc$"):
            await kube.write_secret(api, _manifest())


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_an_unreachable_api_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    call, what = CALLS[name]
    closed = kmockkit.kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBECONFIG", str(closed))
    async with await kube.connect() as api:
        message = await _refused_by(call, api)
    assert message == f"{what}: Kubernetes API answered ClientConnectorError"
