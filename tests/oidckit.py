"""Harness for the relying-party tests: a `tessera server` with OAuth2 providers made through the
admin API, and Chromium driven through login and consent until the redirect to the client.

Until the provider package exists (core/providers/oauth2), the modules using this skip with
`requires_provider`; once it lands they run against its real endpoints.
"""

from __future__ import annotations

import http.server
import importlib.util
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PageTimeout


def _has_provider() -> bool:
    try:
        return importlib.util.find_spec("tessera.core.providers.oauth2") is not None
    except ModuleNotFoundError:
        return False


requires_provider = pytest.mark.skipif(
    not _has_provider(), reason="the OAuth2 provider (core/providers/oauth2) is not here yet"
)

EXPLICIT = "default-provider-authorization-explicit-consent"
IMPLICIT = "default-provider-authorization-implicit-consent"
INVALIDATION = "default-invalidation-flow"


@dataclass
class Client:
    """An application with its OAuth2 provider, as the admin API returned them."""

    slug: str
    client_id: str
    client_secret: str
    redirect_uri: str
    logout_uri: str
    provider: dict[str, Any] = field(default_factory=dict)

    def issuer(self, server: Server) -> str:
        return f"{server.url}/application/o/{self.slug}/"


def start_server(tmp_path: Path) -> Server:
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = Server(env, tmp_path, port=port)
    server.wait_ready()
    return server


def admin(server: Server, method: str, path: str, body: Any = None) -> Any:
    status, answer = server.request(method, "/api/v3/" + path, BOOTSTRAP_TOKEN, body)
    assert status in (200, 201, 204), (method, path, status, answer)
    return answer


def flow_pk(server: Server, slug: str) -> str:
    return str(admin(server, "GET", f"flows/instances/{slug}/")["pk"])


def keypair(server: Server, name: str, alg: str) -> str:
    """A generated certificate-key pair: `alg` "ecdsa" (P-256, ES256) or "rsa" (RS256)."""
    body = {"common_name": name, "alg": alg, "validity_days": 30}
    return str(admin(server, "POST", "crypto/certificatekeypairs/generate/", body)["pk"])


def scope_mappings(server: Server) -> list[str]:
    status, answer = server.request(
        "GET", "/api/v3/propertymappings/provider/scope/?page_size=100", BOOTSTRAP_TOKEN
    )
    if status != 200:
        return []
    return [str(row["pk"]) for row in answer["results"]]


def make_client(
    server: Server,
    slug: str,
    *,
    signing_key: str | None,
    redirect_uri: str,
    logout_uri: str,
    flow: str = EXPLICIT,
    client_type: str = "confidential",
) -> Client:
    body = {
        "name": f"{slug} provider",
        "authorization_flow": flow_pk(server, flow),
        "invalidation_flow": flow_pk(server, INVALIDATION),
        "client_type": client_type,
        "redirect_uris": [
            {"matching_mode": "strict", "url": redirect_uri},
            {"matching_mode": "strict", "url": logout_uri, "redirect_uri_type": "logout"},
        ],
        "signing_key": signing_key,
        "property_mappings": scope_mappings(server),
    }
    provider = admin(server, "POST", "providers/oauth2/", body)
    admin(
        server,
        "POST",
        "core/applications/",
        {"name": slug, "slug": slug, "provider": provider["pk"]},
    )
    return Client(
        slug,
        provider["client_id"],
        provider.get("client_secret", ""),
        redirect_uri,
        logout_uri,
        provider,
    )


# Chromium ------------------------------------------------------------------------------------


class _Listener(http.server.ThreadingHTTPServer):
    """A real HTTP server on a redirect URI's port that answers 200 and keeps each URL."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.urls: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                listener.urls.append(f"http://127.0.0.1:{port}{self.path}")
                body = b"caught"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


_LISTENERS: dict[int, _Listener] = {}
_LISTENERS_LOCK = threading.Lock()


class Catcher:
    """Records the URLs under `prefix` (a client's redirect URI base, `http://127.0.0.1:<port>`)
    that the browser is sent to. A real server listens there: Playwright's routes do not see the
    request a redirect leads to, so the browser has to reach something."""

    def __init__(self, page: Page, prefix: str) -> None:
        self.prefix = prefix
        port = urllib.parse.urlsplit(prefix).port
        assert port is not None, prefix
        with _LISTENERS_LOCK:
            if port not in _LISTENERS:
                _LISTENERS[port] = _Listener(port)
            self._listener = _LISTENERS[port]
        self._start = len(self._listener.urls)

    @property
    def urls(self) -> list[str]:
        return [
            u
            for u in self._listener.urls[self._start :]
            if u.startswith(self.prefix) and not u.endswith("/favicon.ico")
        ]

    def params(self) -> dict[str, str]:
        """Query parameters of the last caught URL (a fragment never reaches a server)."""
        parts = urllib.parse.urlsplit(self.urls[-1])
        return dict(urllib.parse.parse_qsl(parts.query or parts.fragment))


def sign_in_until(
    page: Page,
    done: Any,
    username: str = "akadmin",
    password: str = BOOTSTRAP_PASSWORD,
    steps: int = 8,
    timeout: float = 20.0,
) -> None:
    """Answer the flow pages in `page` (identification, password, consent: the submit button)
    until `done()` is true."""
    deadline = time.monotonic() + timeout
    for _ in range(steps):
        if done():
            return
        page.wait_for_load_state()
        # A page may be about to leave by script (a single-page app starting its login after a
        # fetch): the form to answer is the next page's, so wait for one, or for the end.
        button = page.locator("button[type=submit]")
        while not done() and not button.count() and time.monotonic() < deadline:
            time.sleep(0.05)
        if done():
            return
        if not button.count():
            break
        if page.locator("#uid_field").count():
            page.fill("#uid_field", username)
            if page.locator("#password").count():
                page.fill("#password", password)
        elif page.locator("#password").count():
            page.fill("#password", password)
        button.first.click()
        while not done() and time.monotonic() < deadline:
            try:
                page.wait_for_load_state(timeout=1000)
                break
            except PageTimeout:
                pass
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done(), f"flow did not finish; at {page.url}:\n{page.content()[:2000]}"


def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("oidc"))
    try:
        yield server
    finally:
        server.stop()
