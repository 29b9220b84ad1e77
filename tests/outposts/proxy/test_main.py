"""`tessera outpost proxy`'s own settings: the trusted proxy networks."""

from __future__ import annotations

import pytest

from tessera.outposts.proxy import main
from tessera.outposts.proxy.outpost import DEFAULT_TRUSTED, DEFAULT_TRUSTED_V6


def test_trusted_proxy_cidrs_from_the_environment() -> None:
    assert main.trusted_cidrs({}) == DEFAULT_TRUSTED + DEFAULT_TRUSTED_V6
    key = "AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS"
    assert main.trusted_cidrs({key: "10.1.0.0/16, 192.0.2.1/32"}) == ("10.1.0.0/16", "192.0.2.1/32")
    assert main.trusted_cidrs({key: '["::1/128"]'}) == ("::1/128",)
    assert main.trusted_cidrs(
        {"TESSERA_LISTEN__TRUSTED_PROXY_CIDRS": "127.0.0.1/32", key: "10.0.0.0/8"}
    ) == ("127.0.0.1/32",)
    with pytest.raises(ValueError, match="not-a-network"):
        main.trusted_cidrs({key: "10.0.0.0/8,not-a-network"})
    with pytest.raises(ValueError, match="list of CIDRs"):
        main.trusted_cidrs({key: "[1, 2]"})
