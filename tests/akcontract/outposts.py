"""Contract cases for `outposts/instances` and `providers/proxy`."""

from __future__ import annotations

from typing import Any

from akcontract import Case, Setup


async def _proxy_provider(setup: Setup) -> dict[str, Any]:
    authorize = await setup.first(
        "flows/instances", slug="default-provider-authorization-implicit-consent"
    )
    logout = await setup.first("flows/instances", slug="default-invalidation-flow")
    return {
        "name": f"grafana-{setup.suffix}",
        "authorization_flow": authorize["pk"],
        "invalidation_flow": logout["pk"],
        "external_host": f"https://grafana-{setup.suffix}.example.com",
        "internal_host": "http://grafana.internal:3000",
        "internal_host_ssl_validation": False,
        "mode": "proxy",
        "skip_path_regex": "^/api/health$\n^/public/.*",
        "basic_auth_enabled": True,
        "basic_auth_user_attribute": "grafana_user",
        "basic_auth_password_attribute": "grafana_password",
        "intercept_header_auth": True,
        "cookie_domain": "",
        "access_token_validity": "hours=8",
        "refresh_token_validity": "days=7",
    }


async def _outpost(setup: Setup) -> dict[str, Any]:
    provider = await setup.make("providers/proxy", await _proxy_provider(setup))
    status, defaults = await setup.api("GET", "outposts/instances/default_settings/")
    assert status == 200, defaults
    config = {**defaults["config"], "refresh_interval": "minutes=10", "kubernetes_replicas": 2}
    return {
        "name": f"edge-{setup.suffix}",
        "type": "proxy",
        "providers": [provider["pk"]],
        "config": config,
    }


CASES = [
    Case(
        "providers/proxy",
        _proxy_provider,
        change={"mode": "forward_single", "internal_host": ""},
        patch={"skip_path_regex": "^/healthz$"},
    ),
    Case(
        "outposts/instances",
        _outpost,
        change={"name": "edge-renamed"},
        patch={"providers": []},
    ),
]
