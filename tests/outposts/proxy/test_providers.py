"""Provider configs compiled for the hot path: host lookup, skip paths, redirect targets."""

from __future__ import annotations

import time

import pytest
from proxykit import config

from tessera.outposts.proxy import handlers
from tessera.outposts.proxy.providers import ConfigRefused, Provider, Registry


def test_lookup_by_mode() -> None:
    single = Provider.build(config(external_host="https://app.example.com", client_id="a"))
    domain = Provider.build(
        config(
            external_host="https://auth.example.com",
            mode="forward_domain",
            cookie_domain=".example.com",
            client_id="b",
        )
    )
    deeper = Provider.build(
        config(
            external_host="https://auth.in.example.com",
            mode="forward_domain",
            cookie_domain="in.example.com",
            client_id="c",
        )
    )
    registry = Registry([single, domain, deeper])
    assert registry.lookup("app.example.com") is single
    assert registry.lookup("other.example.com") is domain
    assert registry.lookup("example.com") is domain
    assert registry.lookup("x.in.example.com") is deeper  # the longest cookie domain wins
    assert registry.lookup("evilexample.com") is None
    assert registry.lookup("nowhere.org") is None
    assert domain.cookie_domain == "example.com"


def test_a_lone_domain_provider_takes_every_host() -> None:
    domain = Provider.build(
        config(
            external_host="https://auth.example.com",
            mode="forward_domain",
            cookie_domain="example.com",
        )
    )
    assert Registry([domain]).lookup("nowhere.org") is domain


def test_cookie_names_and_keys_follow_authentik() -> None:
    provider = Provider.build(config(external_host="http://app.example.com", client_id="abc"))
    # authentik: authentik_proxy_<first 8 hex of sha256(client_id)>
    assert provider.cookie_name == "authentik_proxy_ba7816bf"
    assert provider.redirect_uri == (
        "http://app.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"
    )
    assert provider.session_key != provider.state_key


def test_skip_paths_are_anchored_and_domain_mode_matches_the_url() -> None:
    single = Provider.build(
        config(
            external_host="http://app.example.com", skip_path_regex="/api/.*\n^/health$\n(broken"
        )
    )
    assert single.skipped("/api/x", "http://app.example.com/api/x")
    assert single.skipped("/health", "")
    assert not single.skipped("/x/api/y", "")  # anchored at the start
    assert not single.skipped("/healthz", "")  # and at the end
    domain = Provider.build(
        config(
            external_host="http://auth.example.com",
            mode="forward_domain",
            cookie_domain="example.com",
            skip_path_regex=r"http://public\.example\.com/.*",
        )
    )
    assert domain.skipped("/x", "http://public.example.com/x")
    assert not domain.skipped("/x", "http://private.example.com/x")


def test_attack_a_backtracking_skip_regex_is_bounded() -> None:
    provider = Provider.build(
        config(external_host="http://app.example.com", skip_path_regex="(a+)+$")
    )
    started = time.monotonic()
    assert not provider.skipped("a" * 40 + "!", "")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"external_host": "ftp://app.example.com"},
        {"external_host": "not a url"},
        {"cookie_secret": "short"},
        {"mode": "forward_domain", "cookie_domain": ""},
        {"mode": "proxy", "internal_host": "not-a-url"},
    ],
)
def test_configs_that_cannot_be_served_are_refused(overrides: dict[str, str]) -> None:
    body = {"external_host": "http://app.example.com", **overrides}
    with pytest.raises(ConfigRefused):
        Provider.build(config(**body))


@pytest.mark.parametrize(
    ("rd", "ok"),
    [
        ("http://app.example.com/x?y=1", True),
        ("/local/path", True),
        ("http://app.example.com:8080/", False),
        ("https://evil.com/", False),
        ("//evil.com/", False),
        ("/\\evil.com", False),
        ("http://app.example.com@evil.com/", False),
        ("http://evil.com\\@app.example.com/", False),
        ("javascript:alert(1)", False),
        ("http://app.example.com/\r\nX: y", False),
        ("http://app.example.com:notaport/", False),
    ],
)
def test_attack_open_redirects_through_rd_single(rd: str, ok: bool) -> None:
    provider = Provider.build(config(external_host="http://app.example.com"))
    assert (handlers.checked_redirect(provider, rd) is not None) is ok


def test_rd_in_domain_mode_must_stay_under_the_cookie_domain() -> None:
    provider = Provider.build(
        config(
            external_host="https://auth.example.com",
            mode="forward_domain",
            cookie_domain="example.com",
        )
    )
    assert handlers.checked_redirect(provider, "https://a.example.com/x")
    assert handlers.checked_redirect(provider, "https://example.com/")
    assert not handlers.checked_redirect(provider, "https://example.com.evil.org/")
    assert not handlers.checked_redirect(provider, "https://notexample.com/")
