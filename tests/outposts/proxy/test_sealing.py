"""The sealed session cookie and the signed login state (outposts/proxy/sealing.py)."""

from __future__ import annotations

import base64
import time

import pytest

from tessera.outposts.proxy import sealing

KEY, OTHER = b"k" * 32, b"o" * 32


def test_a_sealed_payload_opens_with_its_key_and_name_only() -> None:
    sealed = sealing.seal(KEY, "authentik_proxy_a", {"t": "token"})
    assert sealing.unseal(KEY, "authentik_proxy_a", sealed) == {"t": "token"}
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(OTHER, "authentik_proxy_a", sealed)
    with pytest.raises(sealing.Unreadable):  # moved to another provider's cookie
        sealing.unseal(KEY, "authentik_proxy_b", sealed)


def test_attack_tampered_cookie_does_not_open() -> None:
    sealed = sealing.seal(KEY, "n", {"t": "token"})
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
    raw[-1] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(KEY, "n", forged)


@pytest.mark.parametrize(
    "garbage", ["", "x", "!!!!", "A" * 20, "AQ" + "A" * 40, "A" * (sealing.MAX_SEALED + 1), "é"]
)
def test_attack_malformed_cookie_values_are_unreadable(garbage: str) -> None:
    with pytest.raises(sealing.Unreadable):
        sealing.unseal(KEY, "n", garbage)


def test_a_large_session_is_split_over_cookies_and_joined_back() -> None:
    sealed = "x" * (sealing.CHUNK * 2 + 10)
    cookies = sealing.split("n", sealed)
    assert sorted(cookies) == ["n", "n_1", "n_2"]
    assert all(len(v) <= sealing.CHUNK + 2 for v in cookies.values())
    assert sealing.join("n", cookies) == sealed
    assert sealing.join("n", {k: v for k, v in cookies.items() if k != "n_2"}) is None
    with pytest.raises(ValueError, match="too large"):
        sealing.split("n", "x" * (sealing.MAX_SEALED + 1))


@pytest.mark.parametrize("first", ["9.abc", "1.abc", "x.abc", ".abc", "99999999999.a"])
def test_attack_bad_chunk_counts_are_no_session(first: str) -> None:
    assert sealing.join("n", {"n": first, "n_1": "a"}) is None


def test_state_round_trip_and_refusals() -> None:
    state = sealing.new_state("https://app.example.com/x", "binding-cookie")
    encoded = sealing.encode_state(KEY, state)
    assert sealing.decode_state(KEY, encoded) == state
    assert state.binding == sealing.binding_hash("binding-cookie")
    with pytest.raises(sealing.Unreadable, match="not signed"):
        sealing.decode_state(OTHER, encoded)
    body, mac = encoded.split(".")
    with pytest.raises(sealing.Unreadable):
        sealing.decode_state(KEY, body + "x." + mac)
    with pytest.raises(sealing.Unreadable, match="expired"):
        sealing.decode_state(KEY, encoded, now=time.time() + sealing.STATE_TTL + 5)
    for garbage in ("", "a.b.c", "nodot", "a." + "b" * 5000, "%%%.%%%"):
        with pytest.raises(sealing.Unreadable):
            sealing.decode_state(KEY, garbage)


@pytest.mark.parametrize(
    "header",
    [
        "authentik_proxy_x=abc",
        "_ga=GA1.2.3; authentik_proxy_x=2.abc; authentik_proxy_x_1=def; theme=dark",
        "authentik_proxy_x=old;authentik_proxy_x=new",  # the last one wins
        "  authentik_proxy_x=a-b_c.d~e  ;   other=1",
        "authentik_proxy_x=; x=y",
        "flag; authentik_proxy_x=v=with=equals",
    ],
)
def test_the_hot_paths_cookie_split_reads_what_aiohttp_reads(header: str) -> None:
    """The forward-auth check splits the Cookie header itself (aiohttp's parser is a fifth of
    a check); for the values cookies carry, it reads the same as aiohttp."""
    from aiohttp.test_utils import make_mocked_request

    theirs = dict(make_mocked_request("GET", "/", headers={"Cookie": header}).cookies)
    ours = sealing.parse_cookies(header, "authentik_proxy_x")
    assert {k: v for k, v in ours.items() if k.startswith("authentik_proxy_x")} == {
        k: v for k, v in theirs.items() if k.startswith("authentik_proxy_x")
    }


def test_a_header_without_the_session_cookie_is_not_parsed() -> None:
    assert sealing.parse_cookies("a=1; b=2", "authentik_proxy_x") == {}
    assert sealing.parse_cookies(None, "authentik_proxy_x") == {}
