"""A browser single-page app on an origin of its own finishes a PKCE login against a running
`tessera server` in Chromium: discovery, the code exchange and userinfo (with its preflight) are
`fetch` calls from the app's page, which only work when the server answers with CORS headers for
that origin. A page on an origin no provider names cannot read any of them."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Server, free_port
from oidckit import IMPLICIT, make_client, requires_provider, server_fixture, sign_in_until
from playwright.sync_api import Browser

pytestmark = requires_provider

APP_PORT = free_port()
STRANGER_PORT = free_port()
APP = f"http://127.0.0.1:{APP_PORT}"
STRANGER = f"http://127.0.0.1:{STRANGER_PORT}"

# The app: at / it makes a PKCE pair and goes to the authorization endpoint; at /cb it exchanges
# the code and asks for userinfo (a bearer header: the browser sends a preflight first), then
# shows what it got in #result. `probe()` fetches discovery and reports whether it could read it.
PAGE = """<!doctype html><meta charset="utf-8"><title>spa</title><pre id="result"></pre>
<script>
const CONFIG = %(config)s;
const show = (value) => { document.getElementById("result").textContent = JSON.stringify(value); };
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
async function discovery() {
  const answer = await fetch(CONFIG.issuer + ".well-known/openid-configuration");
  return answer.json();
}
async function start() {
  const meta = await discovery();
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const challenge = b64url(digest);
  sessionStorage.setItem("verifier", verifier);
  const query = new URLSearchParams({
    client_id: CONFIG.client_id, response_type: "code", scope: "openid profile email",
    redirect_uri: CONFIG.redirect_uri, state: "s1", code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(meta.authorization_endpoint + "?" + query);
}
async function finish() {
  const meta = await discovery();
  const code = new URLSearchParams(location.search).get("code");
  const tokens = await (await fetch(meta.token_endpoint, {
    method: "POST",
    headers: {"Content-Type": "application/x-www-form-urlencoded"},
    body: new URLSearchParams({
      grant_type: "authorization_code", code, redirect_uri: CONFIG.redirect_uri,
      client_id: CONFIG.client_id, code_verifier: sessionStorage.getItem("verifier"),
    }),
  })).json();
  const info = await (await fetch(meta.userinfo_endpoint, {
    headers: {"Authorization": "Bearer " + tokens.access_token},
  })).json();
  show({token_type: tokens.token_type, has_id_token: !!tokens.id_token, userinfo: info});
}
async function probe() {
  try { await discovery(); return "read"; } catch (error) { return "blocked"; }
}
if (location.pathname === "/cb") {
  finish().catch((error) => show({error: String(error)}));
} else if (location.pathname === "/") {
  start().catch((error) => show({error: String(error)}));
}
</script>
"""


class _Site(http.server.ThreadingHTTPServer):
    """Serves PAGE for every path, on its own port (its own origin)."""

    daemon_threads = True

    def __init__(self, port: int, config: dict[str, str]) -> None:
        body = (PAGE % {"config": json.dumps(config)}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def sites(server: Server) -> Iterator[None]:
    client = make_client(
        server,
        "spa",
        signing_key=None,
        redirect_uri=f"{APP}/cb",
        logout_uri=f"{APP}/bye",
        flow=IMPLICIT,
        client_type="public",
    )
    config = {
        "issuer": client.issuer(server),
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
    }
    app, stranger = _Site(APP_PORT, config), _Site(STRANGER_PORT, config)
    yield
    for site in (app, stranger):
        site.shutdown()
        site.server_close()


def test_pkce_login_from_a_page_on_another_origin(
    browser: Browser, server: Server, sites: None
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(APP + "/")
        sign_in_until(page, lambda: page.url.startswith(APP + "/cb"))
        page.wait_for_function("document.getElementById('result').textContent !== ''")
        result = json.loads(page.locator("#result").inner_text())
        assert "error" not in result, result
        assert result["token_type"].lower() == "bearer" and result["has_id_token"] is True
        assert result["userinfo"]["preferred_username"] == "akadmin"
    finally:
        context.close()


def test_a_page_on_an_origin_no_provider_names_cannot_read_the_endpoints(
    browser: Browser, server: Server, sites: None
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(STRANGER + "/other")  # neither / nor /cb: the page does nothing by itself
        assert page.evaluate("probe()") == "blocked"
        page.goto(APP + "/other")
        assert page.evaluate("probe()") == "read"
    finally:
        context.close()
