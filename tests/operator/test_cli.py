"""`tessera operator` as the Helm chart runs it (a process with `--namespace`, AUTHENTIK_HOST and
AUTHENTIK_TOKEN, the liveness probe on /healthz and Prometheus metrics), and kubectl driving the
operator through the emulated API server: apply, get (by kind, short name and category), delete."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from helpers import BOOTSTRAP_TOKEN, TESSERA, Server, base_env, free_port
from kmockkit import Cluster, eventually
from operatorkit import admin, application, create, provider, ready

pytestmark = pytest.mark.slow


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode(), err.decode()


async def _get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            return answer.status, await answer.text()
    except aiohttp.ClientError:
        return 0, ""


async def test_a_missing_token_stops_the_command_naming_the_key(cluster: Cluster) -> None:
    env = base_env(AUTHENTIK_HOST="http://127.0.0.1:9", KUBECONFIG=str(cluster.kubeconfig))
    code, _, err = await _run(TESSERA, "operator", env=env)
    assert code == 2
    assert "AUTHENTIK_TOKEN" in err
    env["AUTHENTIK_TOKEN"] = "t"
    env["AUTHENTIK_HOST"] = "core:9000"
    code, _, err = await _run(TESSERA, "operator", env=env)
    assert code == 2 and "AUTHENTIK_HOST" in err


async def test_the_command_reconciles_and_serves_health_and_metrics(
    cluster: Cluster, core: Server, tmp_path: Path
) -> None:
    health, metrics = free_port(), free_port()
    watched, other = f"w-{uuid.uuid4().hex[:6]}", f"o-{uuid.uuid4().hex[:6]}"
    env = base_env(
        AUTHENTIK_HOST=core.url,
        AUTHENTIK_TOKEN=BOOTSTRAP_TOKEN,
        KUBECONFIG=str(cluster.kubeconfig),
    )
    log = (tmp_path / "operator.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        TESSERA,
        "operator",
        f"--health=127.0.0.1:{health}",
        f"--metrics=127.0.0.1:{metrics}",
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        for _ in range(300):
            if (await _get(f"http://127.0.0.1:{health}/healthz"))[0] == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError((tmp_path / "operator.log").read_text())
        mine, theirs = provider("p", watched), provider("p", other)
        await create(cluster, mine)
        await create(cluster, theirs)
        try:
            await eventually(lambda: ready(cluster, mine)["status"] == "True", 30)
        except AssertionError as exc:
            raise AssertionError((tmp_path / "operator.log").read_text()[-3000:]) from exc
        # Cluster-wide here: kmock 0.8 cannot parse GET /api/v1/namespaces, which Kopf lists
        # when --namespace restricts it, so the namespace restriction is not exercised.
        await eventually(lambda: ready(cluster, theirs)["status"] == "True", 30)
        code, text = await _get(f"http://127.0.0.1:{metrics}/metrics")
        assert code == 200
        assert 'tessera_operator_reconciles_total{kind="OAuth2Provider",result="ok"}' in text
        assert "tessera_operator_reconcile_duration_seconds_bucket" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
        log.close()
    output = (tmp_path / "operator.log").read_text()
    assert code == 0, output
    assert BOOTSTRAP_TOKEN not in output
    # Kopf's records and the operator's own: one JSON object per line, as the core logs.
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert lines and all({"event", "level", "timestamp"} <= line.keys() for line in lines)
    assert any(line.get("logger", "").startswith("kopf") for line in lines)


async def test_a_bad_log_level_stops_the_command_naming_the_key(cluster: Cluster) -> None:
    env = base_env(
        AUTHENTIK_HOST="http://127.0.0.1:9",
        AUTHENTIK_TOKEN="t",
        AUTHENTIK_LOG_LEVEL="loud",
        KUBECONFIG=str(cluster.kubeconfig),
    )
    code, _, err = await _run(TESSERA, "operator", env=env)
    assert code == 2 and "AUTHENTIK_LOG_LEVEL" in err


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
async def test_kubectl_apply_get_and_delete(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any], tmp_path: Path
) -> None:
    space = f"k-{uuid.uuid4().hex[:6]}"
    slug = f"kubectl-{space}"
    manifests = [provider("wiki", space), application("wiki", space, slug)]
    path = tmp_path / "wiki.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}

    async def kubectl(*args: str) -> str:
        code, out, err = await _run("kubectl", *args, env=env)
        assert code == 0, err
        return out

    async with make_operator():
        applied = await kubectl("apply", "--validate=false", "-f", str(path))
        assert "oauth2provider.tessera.dev/wiki created" in applied
        assert "application.tessera.dev/wiki created" in applied
        await eventually(lambda: ready(cluster, manifests[1])["status"] == "True", 30)
        table = await kubectl("get", "oauth2providers", "-n", space)
        assert "wiki" in table
        both = await kubectl("get", "tessera", "-n", space, "-o", "json")
        kinds = sorted(item["kind"] for item in json.loads(both)["items"])
        assert kinds == ["Application", "OAuth2Provider"]
        reason = await kubectl(
            "get",
            "tsapp",
            "wiki",
            "-n",
            space,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].reason}',
        )
        assert reason == "Reconciled"
        assert admin(core, "GET", f"core/applications/{slug}/")["slug"] == slug
        deleted = await kubectl("delete", "-f", str(path), "--wait=false")
        assert 'application.tessera.dev "wiki" deleted' in deleted
        for plural in ("applications", "oauth2providers"):
            await eventually(
                lambda p=plural: not cluster.api.alive(f"tessera.dev/v1alpha1/{p}", space, "wiki"),
                30,
            )
        status, _ = core.request("GET", f"/api/v3/core/applications/{slug}/", BOOTSTRAP_TOKEN)
        assert status == 404


def test_concurrency_must_be_at_least_one() -> None:
    from tessera.operator import main

    environ = {"AUTHENTIK_HOST": "http://core:9000", "AUTHENTIK_TOKEN": "t"}
    with pytest.raises(main.SettingsError, match="--concurrency"):
        main.config_from(environ, main.Options(concurrency=0))
    assert main.config_from(environ, main.Options(concurrency=3)).concurrency == 3


def test_the_outpost_image_comes_from_the_environment() -> None:
    from tessera.operator import main

    environ = {"AUTHENTIK_HOST": "http://core:9000", "AUTHENTIK_TOKEN": "t"}
    assert main.config_from(environ, main.Options()).outpost_image == ""
    environ["TESSERA_OUTPOST_IMAGE"] = "registry.example/tessera:1.0"
    assert (
        main.config_from(environ, main.Options()).outpost_image == environ["TESSERA_OUTPOST_IMAGE"]
    )
