"""What the outpost believes of forwarded headers (outposts/proxy/forwarded.py)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from tessera.outposts.proxy import forwarded


@pytest.mark.parametrize(
    ("value", "scheme", "expected"),
    [
        ("App.Example.com", "http", "app.example.com"),
        ("app.example.com:80", "http", "app.example.com"),
        ("app.example.com:443", "https", "app.example.com"),
        ("app.example.com:8443", "https", "app.example.com:8443"),
        ("[::1]:8080", "http", "[::1]:8080"),
        ("", "http", None),
        ("evil.com/path", "http", None),
        ("a b", "http", None),
        ("app.example.com:99999", "http", None),
        ("app.example.com:", "http", None),
        ("x" * 300, "http", None),
        ("app\r\nX: y", "http", None),
    ],
)
def test_hosts_are_normalised_or_refused(value: str, scheme: str, expected: str | None) -> None:
    assert forwarded.normal_host(value, scheme) == expected


def _request(headers: dict[str, str], path: str = "/outpost.goauthentik.io/auth/traefik") -> object:
    return make_mocked_request("GET", path, headers=headers)


def test_traefik_original_from_forwarded_headers() -> None:
    request = _request(
        {
            "Host": "outpost:9000",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "app.example.com",
            "X-Forwarded-Uri": "/a/b?c=d",
        }
    )
    original = forwarded.original(request, "traefik", believe=True)  # type: ignore[arg-type]
    assert original.url == "https://app.example.com/a/b?c=d"
    assert original.path == "/a/b"


def test_attack_forwarded_headers_from_an_untrusted_peer_are_not_believed() -> None:
    request = _request({"Host": "outpost:9000", "X-Forwarded-Host": "app.example.com"})
    with pytest.raises(forwarded.BadForwarding, match="trusted proxy"):
        forwarded.original(request, "traefik", believe=False)  # type: ignore[arg-type]
    assert forwarded.host_of(request, believe=False) == "outpost:9000"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Forwarded-Proto": "gopher"}, "X-Forwarded-Proto"),
        ({"X-Forwarded-Host": "evil.com/x"}, "X-Forwarded-Host"),
        ({"X-Forwarded-Uri": "//evil.com/"}, "X-Forwarded-Uri"),
        ({"X-Forwarded-Uri": "relative"}, "X-Forwarded-Uri"),
        ({"X-Forwarded-Uri": "/a b"}, "X-Forwarded-Uri"),
        ({"X-Forwarded-Uri": "/" + "a" * 9000}, "X-Forwarded-Uri"),
    ],
)
def test_attack_malformed_forwarded_headers_are_refused(
    headers: dict[str, str], message: str
) -> None:
    request = _request({"Host": "app.example.com", **headers})
    with pytest.raises(forwarded.BadForwarding, match=message):
        forwarded.original(request, "traefik", believe=True)  # type: ignore[arg-type]


def test_nginx_original_url_and_uri() -> None:
    full = _request({"X-Original-URL": "https://app.example.com/x?y=1", "Host": "o"})
    assert forwarded.original(full, "nginx", True).url == "https://app.example.com/x?y=1"  # type: ignore[arg-type]
    path = _request({"X-Original-URI": "/x", "Host": "app.example.com"})
    assert forwarded.original(path, "nginx", True).url == "http://app.example.com/x"  # type: ignore[arg-type]
    bad = _request({"X-Original-URL": "javascript:alert(1)", "Host": "o"})
    with pytest.raises(forwarded.BadForwarding):
        forwarded.original(bad, "nginx", True)  # type: ignore[arg-type]


def test_envoy_path_follows_the_prefix() -> None:
    request = _request({"Host": "app.example.com"}, "/outpost.goauthentik.io/auth/envoy/p/q?r=1")
    original = forwarded.original(request, "envoy", False, tail="/p/q")  # type: ignore[arg-type]
    assert original.url == "http://app.example.com/p/q?r=1"


def test_trusted_networks() -> None:
    nets = forwarded.networks(["127.0.0.0/8", "::1/128"])
    assert forwarded._peer_trusted("127.0.0.1", nets)
    assert not forwarded._peer_trusted("10.0.0.1", nets)
    assert not forwarded._peer_trusted("garbage", nets)
    assert not forwarded._peer_trusted("fe80::1%eth0", nets)
    assert forwarded._peer_trusted("::1", nets)
    with pytest.raises(ValueError, match="not-a-cidr"):
        forwarded.networks(["not-a-cidr"])


def test_a_peer_is_judged_by_each_outposts_own_networks() -> None:
    """The peer cache (`trusted`) keys on the networks' identity: another outpost's networks,
    equal or not, get their own verdict for the same peer."""

    class Peer:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return ("127.0.0.1", 40000) if name == "peername" else default

    request = make_mocked_request("GET", "/", headers={"Host": "a"}, transport=Peer())
    assert request.remote == "127.0.0.1"
    trusting = forwarded.networks(["127.0.0.0/8"])
    distrusting = forwarded.networks(["10.0.0.0/8"])
    for _ in range(2):  # the second round reads the cache
        assert forwarded.trusted(request, trusting)  # type: ignore[arg-type]
        assert not forwarded.trusted(request, distrusting)  # type: ignore[arg-type]
        assert not forwarded.trusted(request, ())  # type: ignore[arg-type]


def test_attack_made_up_hosts_keep_the_host_cache_bounded() -> None:
    """Hosts are normalised through a cache; a client making up hosts fills at most its 1,024
    entries, and a value too long to be a host never enters it."""
    before = forwarded._normal_host.cache_info().currsize
    assert forwarded.normal_host("a" * 5000 + ".example.com") is None
    assert forwarded._normal_host.cache_info().currsize == before
    for i in range(3000):
        forwarded.normal_host(f"h{i}.example.com")
    assert forwarded._normal_host.cache_info().currsize <= 1024
    assert forwarded.normal_host("APP.example.com:80") == "app.example.com"
