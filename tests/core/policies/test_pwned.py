"""The password policy's breach check (`check_have_i_been_pwned`) against a local server that
answers as Have I Been Pwned's range API does (the third party; `policies.pwned` is under test):
only the digest's prefix leaves, padding lines count for nothing, `hibp_allowed_count` is the
number of sightings still allowed, and a service that cannot answer fails the policy."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import test_utils, web

from tessera.core import config, store
from tessera.core.policies import checks, engine, kinds, pwned

SEEN_THRICE = "Tr0ub4dor&3-sighted"
PADDED_ONLY = "only-in-the-padding-9"
CLEAN = "a password nobody has leaked 41"


def _sha1(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


@dataclass
class RangeServer:
    """What the range server was asked, and how it answers."""

    url: str = ""
    asked: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    mode: str = "ok"  # "ok", "error" (503), "garbage"

    def answer(self, prefix: str) -> str:
        lines = []
        for password, times in ((SEEN_THRICE, 3), (CLEAN, None), (PADDED_ONLY, 0)):
            digest = _sha1(password)
            if digest.startswith(prefix) and times is not None:
                lines.append(f"{digest[5:]}:{times}")  # count 0: a padding line
        lines += [f"{n:035X}:0" for n in range(1, 40)]  # padding, as `Add-Padding` asks
        return "\r\n".join(lines)


@pytest.fixture
async def range_server() -> AsyncIterator[RangeServer]:
    served = RangeServer()

    async def handle(request: web.Request) -> web.Response:
        served.asked.append((request.path, request.query_string, dict(request.headers)))
        if served.mode == "error":
            return web.Response(status=503, text="busy")
        if served.mode == "garbage":
            return web.Response(text="<html>captive portal</html>")
        return web.Response(text=served.answer(request.match_info["prefix"]))

    application = web.Application()
    application.router.add_get("/range/{prefix}", handle)
    server = test_utils.TestServer(application, host="127.0.0.1")
    await server.start_server()
    served.url = str(server.make_url("")).rstrip("/")
    yield served
    await server.close()


@pytest.fixture
def settings(
    make_settings: Callable[..., config.Settings], range_server: RangeServer
) -> config.Settings:
    return make_settings(outbound={"enabled": True, "pwned_passwords_url": range_server.url})


async def _check(db: store.Store, password: str, **policy: Any) -> kinds.Verdict:
    settings = {"check_static_rules": False, "check_zxcvbn": False, **policy}
    kind = kinds.build("password", settings)
    context = {"prompt_data": {"password": password}}
    return await kind.evaluate(engine.Request(user=None, context=context, db=db))


async def test_only_the_digest_prefix_is_sent_with_padding_asked_for(
    db: store.Store, range_server: RangeServer
) -> None:
    await _check(db, CLEAN)
    [(path, query, headers)] = range_server.asked
    digest = _sha1(CLEAN)
    assert path == f"/range/{digest[:5]}" and query == ""
    assert headers["Add-Padding"] == "true"
    sent = path + query + " ".join(f"{k}: {v}" for k, v in headers.items())
    assert digest[5:] not in sent.upper() and CLEAN not in sent


async def test_a_password_seen_more_often_than_allowed_fails_as_authentiks(
    db: store.Store,
) -> None:
    refused = await _check(db, SEEN_THRICE)  # hibp_allowed_count 0
    assert not refused.passing
    assert refused.messages == ["Password exists on 3 online lists."]
    assert not (await _check(db, SEEN_THRICE, hibp_allowed_count=2)).passing
    assert (await _check(db, SEEN_THRICE, hibp_allowed_count=3)).passing
    assert (await _check(db, CLEAN)).passing


async def test_padding_lines_count_for_nothing(db: store.Store) -> None:
    # The server lists this password's suffix only as a padding line (count 0).
    assert (await _check(db, PADDED_ONLY)).passing


async def test_the_policys_own_error_message_replaces_the_count(db: store.Store) -> None:
    verdict = await _check(db, SEEN_THRICE, error_message="Choose another password.")
    assert verdict.messages == ["Choose another password."]


@pytest.mark.parametrize("mode", ["error", "garbage"])
async def test_a_service_that_cannot_answer_fails_closed(
    db: store.Store, range_server: RangeServer, mode: str
) -> None:
    range_server.mode = mode
    verdict = await _check(db, CLEAN)
    assert not verdict.passing
    assert verdict.messages == [checks.HIBP_UNAVAILABLE]
    assert verdict.log[0]["log_level"] == "warning"


async def test_an_unreachable_service_fails_closed() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    outbound = config.Outbound(pwned_passwords_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(pwned.Unavailable):
        await pwned.count(outbound, CLEAN)


def test_a_malformed_or_oversized_answer_is_not_a_count() -> None:
    _, suffix = pwned.split(CLEAN)
    assert pwned.found(f"{suffix}:7\r\n\r\n".encode(), suffix) == 7
    for body in (b"\xff\xfe", f"{suffix}:seven".encode(), b"ABC:1"):
        with pytest.raises(pwned.Unavailable):
            pwned.found(body, suffix)


async def test_the_policy_test_endpoint_runs_the_check(api: Any, range_server: RangeServer) -> None:
    status, policy = await api(
        "POST",
        "policies/password/",
        json={"name": "breached", "check_static_rules": False, "check_zxcvbn": False},
    )
    assert status == 201 and policy["check_have_i_been_pwned"] is True, policy
    context = {"prompt_data": {"password": SEEN_THRICE}}
    status, result = await api(
        "POST", f"policies/all/{policy['pk']}/test/", json={"user": 1, "context": context}
    )
    assert status == 200 and result["passing"] is False, result
    assert result["messages"] == ["Password exists on 3 online lists."]
    assert len(range_server.asked) == 1
