"""`--namespace`: the operator reconciles the resources of the namespaces it is given and no
other. The emulated API server holds no Namespace objects, as a cluster where the operator may
not list namespaces looks to it: the operator watches the names given, without looking them up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Server
from kmockkit import Cluster, eventually
from operatorkit import admin, create, provider, ready, secret, stored

from tessera.operator import main

pytestmark = pytest.mark.slow


async def test_only_the_watched_namespaces_are_reconciled(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    tag = uuid.uuid4().hex[:8]
    watched, also, other = f"w-{tag}", f"a-{tag}", f"o-{tag}"
    inside = provider("inside", watched)
    second = provider("second", also)
    outside = provider("outside", other)
    async with make_operator(namespaces=(watched, also)):
        for manifest in (outside, inside, second):
            await create(cluster, manifest)
        await eventually(lambda: ready(cluster, inside)["status"] == "True")
        await eventually(lambda: ready(cluster, second)["status"] == "True")
        assert secret(cluster, watched, "inside-oidc")["client_id"]
        await asyncio.sleep(0.5)  # the outside one was created first: time enough to be seen
        untouched = stored(cluster, outside)
    assert "status" not in untouched
    assert not untouched["metadata"].get("finalizers")
    assert admin(core, "GET", f"providers/oauth2/?name={other}/outside")["results"] == []
    with pytest.raises(KeyError):
        secret(cluster, other, "outside-oidc")


@pytest.mark.parametrize("name", ["team-*", "Team", "-a", "a" * 64, ""])
def test_a_namespace_pattern_or_bad_name_is_refused_naming_the_flag(name: str) -> None:
    environ = {"AUTHENTIK_HOST": "http://core:9000", "AUTHENTIK_TOKEN": "t"}
    with pytest.raises(main.SettingsError, match=r"^--namespace: "):
        main.config_from(environ, main.Options(namespaces=("ok", name)))


def test_namespaces_are_kept_in_order_without_repeats() -> None:
    environ = {"AUTHENTIK_HOST": "http://core:9000", "AUTHENTIK_TOKEN": "t"}
    config = main.config_from(environ, main.Options(namespaces=("b", "a", "b")))
    assert config.namespaces == ("b", "a")
