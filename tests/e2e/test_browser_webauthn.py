"""Chromium through the flow pages with a passkey: the DevTools virtual authenticator (CTAP2,
internal transport, resident keys, user verification) enrols through the setup flow, then the
login asks for it after the password and webauthn.js answers with it; and a login with only the
passkey, through the identification page's passwordless link (a discoverable credential).

WebAuthn needs a secure context; http://localhost is one, so the server's public URL (from which
the RP id and origin come) is http://localhost:<port>, and the browser uses that name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port
from playwright.sync_api import Browser, CDPSession, Page


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://localhost:{port}",
    )
    instance = Server(env, tmp_path, port=port)
    instance.wait_ready()
    yield instance
    instance.stop()


def _authenticator(page: Page) -> tuple[CDPSession, str]:
    session = page.context.new_cdp_session(page)
    session.send("WebAuthn.enable", {"enableUI": False})
    added = session.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return session, str(added["authenticatorId"])


def _credentials(session: CDPSession, authenticator: str) -> list[dict[str, Any]]:
    found = session.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    return list(found["credentials"])


def _password(page: Page, base: str) -> None:
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.fill("#uid_field", "akadmin")
    page.click("button[type=submit]")
    page.fill("#password", BOOTSTRAP_PASSWORD)
    page.click("button[type=submit]")


def _enrolled(browser: Browser, server: Server) -> tuple[Page, CDPSession, str]:
    """A page whose authenticator holds akadmin's passkey; logged out again."""
    base = f"http://localhost:{server.port}"
    page = browser.new_context().new_page()
    session, authenticator = _authenticator(page)
    _password(page, base)
    page.wait_for_url(base + "/if/user/")
    page.goto(base + "/if/flow/default-authenticator-webauthn-setup/")
    page.click("#webauthn-create")
    page.wait_for_url(base + "/if/user/")
    page.goto(base + "/if/flow/default-invalidation-flow/")
    return page, session, authenticator


def test_enrol_a_passkey_and_log_in_with_it_in_chromium(browser: Browser, server: Server) -> None:
    base = f"http://localhost:{server.port}"
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    session, authenticator = _authenticator(page)
    _password(page, base)
    page.wait_for_url(base + "/if/user/")
    # Enrol from the portal's link (authentik's configure URL), through the setup flow's page.
    page.click("a:has-text('Add a passkey or security key')")
    page.wait_for_url(base + "/if/flow/default-authenticator-webauthn-setup/")
    page.wait_for_selector("#webauthn-create")
    page.click("#webauthn-create")
    page.wait_for_url(base + "/if/user/")
    assert "security key or passkey" in (page.locator("#devices").text_content() or "")
    (credential,) = _credentials(session, authenticator)
    assert credential["rpId"] == "localhost" and credential["isResidentCredential"] is True
    # Log out; the next login asks for the passkey after the password.
    page.goto(base + "/if/flow/default-invalidation-flow/")
    _password(page, base)
    page.wait_for_selector("#webauthn-get")
    page.click("#webauthn-get")
    page.wait_for_url(base + "/if/user/")
    (credential,) = _credentials(session, authenticator)
    assert credential["signCount"] >= 1
    status, events = server.request("GET", "/api/v3/events/events/?action=login", BOOTSTRAP_TOKEN)
    assert status == 200
    assert sorted(e["context"]["auth_method"] for e in events["results"]) == [
        "auth_mfa",
        "password",
    ]
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_an_authenticator_without_the_credential_cannot_log_in(
    browser: Browser, server: Server
) -> None:
    """After enrolment the authenticator is swapped for an empty one: the browser finds no allowed
    credential, the page shows the error, and the login does not complete."""
    base = f"http://localhost:{server.port}"
    page, session, authenticator = _enrolled(browser, server)
    # Swap the authenticator for an empty one: the registered credential is gone.
    session.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    _authenticator(page)
    _password(page, base)
    page.wait_for_selector("#webauthn-get")
    page.click("#webauthn-get")
    page.wait_for_selector("[data-webauthn-error]:not([hidden])", timeout=90_000)
    assert "/if/user/" not in page.url


def _admin(server: Server, method: str, path: str, body: Any = None) -> Any:
    """An admin API call with the bootstrap token; it must succeed."""
    status, found = server.request(method, "/api/v3/" + path, BOOTSTRAP_TOKEN, body)
    assert status in (200, 201), found
    return found


def _passwordless_flow(server: Server) -> None:
    """An admin's passwordless flow (validate with WebAuthn only, then login), linked from the
    default identification stage."""

    def call(method: str, path: str, body: Any = None) -> Any:
        return _admin(server, method, path, body)

    flow = call(
        "POST",
        "flows/instances/",
        {
            "name": "Passkey",
            "slug": "passwordless",
            "title": "Passkey",
            "designation": "authentication",
        },
    )
    validate = call(
        "POST", "stages/authenticator/validate/", {"name": "pwl", "device_classes": ["webauthn"]}
    )
    login = call("POST", "stages/user_login/", {"name": "pwl-login"})
    for order, stage in ((10, validate), (20, login)):
        call(
            "POST", "flows/bindings/", {"target": flow["pk"], "stage": stage["pk"], "order": order}
        )
    found = call("GET", "stages/identification/?search=default-authentication")["results"]
    (identification,) = [s for s in found if s["name"] == "default-authentication-identification"]
    call(
        "PATCH",
        f"stages/identification/{identification['pk']}/",
        {"passwordless_flow": flow["pk"]},
    )


def test_log_in_with_only_a_passkey_in_chromium(browser: Browser, server: Server) -> None:
    base = f"http://localhost:{server.port}"
    _passwordless_flow(server)
    page, _, _ = _enrolled(browser, server)
    # No username, no password: the link, then the passkey the browser finds by itself.
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.click("#passwordless")
    page.wait_for_selector("#webauthn-get")
    page.click("#webauthn-get")
    page.wait_for_url(base + "/if/user/")
    status, events = server.request("GET", "/api/v3/events/events/?action=login", BOOTSTRAP_TOKEN)
    assert status == 200
    methods = sorted(e["context"]["auth_method"] for e in events["results"])
    assert methods == ["auth_webauthn_pwl", "password"]


def _passkey_autofill(server: Server) -> None:
    """The default identification stage offers passkeys (its `webauthn_stage`)."""
    found = _admin(server, "GET", "stages/all/?search=default-authentication")["results"]
    pks = {s["name"]: s["pk"] for s in found}
    _admin(
        server,
        "PATCH",
        f"stages/identification/{pks['default-authentication-identification']}/",
        {"webauthn_stage": pks["default-authentication-mfa-validation"]},
    )


# Records each navigator.credentials.get() of the page in sessionStorage (it survives the
# navigation that follows): its mediation, its challenge, and the challenge the page was served.
RECORD_GETS = r"""
(() => {
  const original = navigator.credentials.get.bind(navigator.credentials);
  const text = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  navigator.credentials.get = (request) => {
    const served = document.querySelector("form[data-webauthn=get] [data-webauthn-options]");
    const calls = JSON.parse(sessionStorage.getItem("gets") || "[]");
    calls.push({
      mediation: request.mediation || "optional",
      challenge: text(request.publicKey.challenge),
      served: served ? JSON.parse(served.textContent).challenge : null,
    });
    sessionStorage.setItem("gets", JSON.stringify(calls));
    return original(request);
  };
})();
"""


def _gets(page: Page) -> list[dict[str, str]]:
    return list(page.evaluate("JSON.parse(sessionStorage.getItem('gets') || '[]')"))


def _login_methods(server: Server) -> list[str]:
    status, events = server.request("GET", "/api/v3/events/events/?action=login", BOOTSTRAP_TOKEN)
    assert status == 200
    return sorted(e["context"]["auth_method"] for e in events["results"])


def test_passkey_autofill_logs_in_without_a_username(browser: Browser, server: Server) -> None:
    """Chromium's virtual authenticator answers a conditional request by itself (a resident
    credential for the RP, presence simulated): opening the login page logs the user in."""
    base = f"http://localhost:{server.port}"
    page, session, authenticator = _enrolled(browser, server)
    page.add_init_script(RECORD_GETS)
    # Without a webauthn_stage the page offers no passkey: no autofill, no request.
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.wait_for_load_state("networkidle")
    assert page.get_attribute("#uid_field", "autocomplete") == "username"
    assert _gets(page) == []
    _passkey_autofill(server)
    (before,) = _credentials(session, authenticator)
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.wait_for_url(base + "/if/user/", timeout=30_000)
    (call,) = _gets(page)
    assert call["mediation"] == "conditional"
    assert call["challenge"] == call["served"] and len(call["challenge"]) >= 43
    assert _login_methods(server) == ["auth_webauthn_pwl", "password"]
    (after,) = _credentials(session, authenticator)
    assert after["signCount"] > before["signCount"]


def _presence(session: CDPSession, authenticator: str, enabled: bool) -> None:
    session.send(
        "WebAuthn.setAutomaticPresenceSimulation",
        {"authenticatorId": authenticator, "enabled": enabled},
    )


def test_the_button_takes_over_from_a_pending_autofill_request(
    browser: Browser, server: Server
) -> None:
    """Without simulated presence the conditional request waits (as for a user who has not
    picked a passkey yet); the button aborts it first, so its own request is not refused as
    already pending, and logs in."""
    base = f"http://localhost:{server.port}"
    page, session, authenticator = _enrolled(browser, server)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _passkey_autofill(server)
    _presence(session, authenticator, False)
    page.add_init_script(RECORD_GETS)
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.wait_for_function("JSON.parse(sessionStorage.getItem('gets') || '[]').length === 1")
    page.wait_for_timeout(1000)
    assert page.url.startswith(base + "/if/flow/default-authentication-flow/")
    assert page.get_attribute("#uid_field", "autocomplete") == "username webauthn"
    _presence(session, authenticator, True)
    page.click("#webauthn-get")
    page.wait_for_url(base + "/if/user/", timeout=30_000)
    assert [c["mediation"] for c in _gets(page)] == ["conditional", "optional"]
    assert _login_methods(server) == ["auth_webauthn_pwl", "password"]
    assert not errors, errors


def test_the_username_form_works_while_the_autofill_request_waits(
    browser: Browser, server: Server
) -> None:
    """Typing a username and posting it while the autofill request waits (posting cancels it)
    leads to the password page and the MFA step without an error."""
    base = f"http://localhost:{server.port}"
    page, session, authenticator = _enrolled(browser, server)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _passkey_autofill(server)
    _presence(session, authenticator, False)
    page.add_init_script(RECORD_GETS)
    page.goto(base + "/if/flow/default-authentication-flow/")
    page.wait_for_function("JSON.parse(sessionStorage.getItem('gets') || '[]').length === 1")
    page.fill("#uid_field", "akadmin")
    page.click("button[type=submit]")
    page.wait_for_selector("#password")
    page.fill("#password", BOOTSTRAP_PASSWORD)
    page.click("button[type=submit]")
    # akadmin has a passkey: the MFA step asks for it, by the button (no autofill there).
    page.wait_for_selector("#webauthn-get")
    _presence(session, authenticator, True)
    page.click("#webauthn-get")
    page.wait_for_url(base + "/if/user/", timeout=30_000)
    assert [c["mediation"] for c in _gets(page)] == ["conditional", "optional"]
    assert _login_methods(server) == ["auth_mfa", "password"]
    assert not errors, errors
