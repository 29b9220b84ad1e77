"""`tessera ensure-secrets` (`operator.secretgen`), the Helm chart's hook, against the emulated API
server: a Secret is made once, a missing key is added, a present value is never changed, two runs
at once leave one set of values, and no value is ever printed."""

from __future__ import annotations

import asyncio
import base64
import string
from pathlib import Path

import kmockkit
import pytest
from helpers import free_port
from kmockkit import Cluster
from kubernetes_asyncio import client

from tessera.core.cli import commands
from tessera.operator import secretgen
from tessera.operator.handlers import kube

NS = "idp"
SECRETS = ["rel-secrets:secret-key=64,bootstrap-token=64", "rel-postgresql:password=40"]


async def _data(name: str) -> dict[str, str]:
    async with await kube.connect() as api:
        secret = await kube.read_secret(api, NS, name)
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def _run(*argv: str) -> int:
    return commands.main(["ensure-secrets", "--namespace", NS, *argv])


async def test_made_once_then_kept(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for spec in SECRETS for a in ("--secret", spec)]
    assert await asyncio.to_thread(_run, *args, "--label", "app.kubernetes.io/instance=rel") == 0
    first = {name: await _data(name) for name in ("rel-secrets", "rel-postgresql")}
    assert {k: len(v) for k, v in first["rel-secrets"].items()} == {
        "secret-key": 64,
        "bootstrap-token": 64,
    }
    assert len(first["rel-postgresql"]["password"]) == 40
    values = [v for data in first.values() for v in data.values()]
    assert all(set(v) <= set(string.ascii_letters + string.digits) for v in values)
    assert len(set(values)) == 3
    out = capsys.readouterr().out
    assert "generated bootstrap-token, secret-key" in out
    assert not any(v in out for v in values)  # SECURITY: no value is printed

    # A second run (every upgrade's hook) changes nothing.
    assert await asyncio.to_thread(_run, *args) == 0
    assert {name: await _data(name) for name in first} == first
    assert capsys.readouterr().out.count("nothing (all keys present)") == 2

    async with await kube.connect() as api:
        secret = await kube.read_secret(api, NS, "rel-secrets")
    assert secret.metadata.labels == {"app.kubernetes.io/instance": "rel"}


async def test_a_missing_key_is_added_and_present_values_kept(cluster: Cluster) -> None:
    """A Secret brought by hand (or by an older chart) keeps its values; only lacking keys are
    generated, and keys the chart does not know are left alone."""
    mine = {"secret-key": "kept-as-it-was", "extra": "the user's own"}
    async with await kube.connect() as api:
        await client.CoreV1Api(api).create_namespaced_secret(
            NS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "rel-secrets"},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in mine.items()},
            },
        )
        wanted = secretgen.Wanted.parse(SECRETS[0])
        assert await secretgen.ensure(api, NS, wanted) == ["bootstrap-token"]
        assert await secretgen.ensure(api, NS, wanted) == []
    data = await _data("rel-secrets")
    assert data["secret-key"] == "kept-as-it-was" and data["extra"] == "the user's own"
    assert len(data["bootstrap-token"]) == 64


async def test_a_secret_without_data_gets_its_keys(cluster: Cluster) -> None:
    async with await kube.connect() as api:
        await client.CoreV1Api(api).create_namespaced_secret(
            NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rel-postgresql"}}
        )
        made = await secretgen.ensure(api, NS, secretgen.Wanted.parse(SECRETS[1]))
    assert made == ["password"]
    assert len((await _data("rel-postgresql"))["password"]) == 40


async def test_runs_at_once_agree_on_one_value(cluster: Cluster) -> None:
    """Several hook Jobs at once (a retried upgrade): whatever the interleaving, every key ends
    with one value, and a later run sees it unchanged."""
    wanted = secretgen.Wanted.parse(SECRETS[0])
    async with await kube.connect() as api:
        results = await asyncio.gather(*(secretgen.ensure(api, NS, wanted) for _ in range(6)))
    made = [key for keys in results for key in keys]
    assert sorted(made) == ["bootstrap-token", "secret-key"]  # each generated exactly once
    data = await _data("rel-secrets")
    async with await kube.connect() as api:
        assert await secretgen.ensure(api, NS, wanted) == []
    assert await _data("rel-secrets") == data


async def test_a_value_changed_meanwhile_is_not_overwritten(cluster: Cluster) -> None:
    """The patch tests the resourceVersion it read: a Secret written between the read and the
    patch makes the run read again instead of writing over it."""
    wanted = secretgen.Wanted.parse(SECRETS[1])
    async with await kube.connect() as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_secret(
            NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rel-postgresql"}}
        )
        original = kube.read_secret
        raced = False

        async def read_then_race(api_: client.ApiClient, namespace: str, name: str) -> object:
            nonlocal raced
            secret = await original(api_, namespace, name)
            if not raced:
                raced = True
                encoded = base64.b64encode(b"set-by-someone-else-first").decode()
                await core.patch_namespaced_secret(name, namespace, {"data": {"password": encoded}})
            return secret

        kube_read = pytest.MonkeyPatch()
        kube_read.setattr(kube, "read_secret", read_then_race)
        try:
            assert await secretgen.ensure(api, NS, wanted) == []
        finally:
            kube_read.undo()
    assert (await _data("rel-postgresql"))["password"] == "set-by-someone-else-first"


@pytest.mark.parametrize(
    "spec",
    [
        "no-keys",
        "Upper:key=64",
        "rel:key",
        "rel:key=8",  # too short to be a secret
        "rel:key=100000",
        "rel:bad/key=64",
        "rel:key=sixty",
    ],
)
def test_bad_specs_are_refused_before_any_call(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # No cluster: a parse error must stop the command before it looks for one.
    assert _run("--secret", spec) == 2
    assert "ensure-secrets:" in capsys.readouterr().out


def test_no_cluster_is_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert _run("--secret", SECRETS[1]) == 1
    assert "no Kubernetes API" in capsys.readouterr().out
    # An API server that is not there (a closed port): the read is named, nothing else.
    config = kmockkit.kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert _run("--secret", SECRETS[1]) == 1
    assert "read Secret rel-postgresql" in capsys.readouterr().out
