"""The LDAP outpost's server in this test process, with a stand-in for the core's outpost calls.

`records(n)` makes a directory of `n` users (`user1`..), a few groups (nested) and the named
users `admin` (may search the whole directory), `alice` (may not), `blocked` (the application's
policy refuses her) and `mfa` (needs `;123456`). `LDAPThread` runs, in a thread with its own
asyncio loop and Twisted's asyncio reactor on it, the real `Outpost`, `Server` and listeners,
against `FakeCore`: an aiohttp app answering the contract of `core.wire.ldap` (bind, unbind,
directory, search, password) from those records, counting the calls. The protocol, engine and
fuzz tests use it; the end-to-end tests run the real core and the real outpost process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import ssl
import threading
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from helpers import free_port

from tessera.core.wire import ldap as wire
from tessera.outposts.common import client as client_
from tessera.outposts.common import settings as settings_
from tessera.outposts.ldap import ber, coreapi, tls
from tessera.outposts.ldap.outpost import Outpost
from tessera.outposts.ldap.server import Server

with warnings.catch_warnings():  # ldaptor's filter parser calls pyparsing's old names
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldaptor import ldapfilter  # type: ignore[import-untyped]

T = TypeVar("T")
BASE = "dc=ldap,dc=goauthentik,dc=io"
DIRECT_BASE = "dc=direct,dc=example,dc=org"
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
NAMED = ("admin", "alice", "blocked", "mfa")
FROZEN = frozenset({"admin"})
REFUSED_RULE = "1.2.840.113556.1.4.1941"  # FakeCore answers 400 to filters naming it


def parse_filter(text: str) -> Any:
    """ldaptor's filter object of RFC 4515 `text` (another implementation than ours)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ldapfilter.parseFilter(text)


def user_dn(username: str, base: str = BASE) -> str:
    return f"cn={username},ou=users,{base}"


def password_of(username: str) -> str:
    return f"pw-{username}-Secret!"


def group_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"group.{name}"))


def records(n: int, generation: int = 1) -> wire.Directory:
    """`n` users user1..userN plus the named ones; groups `staff` (admin, alice, odd users),
    `everyone` (parent of staff; even users) and `admins` (admin)."""
    names = [*NAMED, *(f"user{i}" for i in range(1, n + 1))]
    staff, everyone, admins = group_uuid("staff"), group_uuid("everyone"), group_uuid("admins")
    users = []
    for pk, name in enumerate(names, start=1):
        groups = []
        if name in ("admin", "alice") or (name.startswith("user") and pk % 2):
            groups.append(staff)
        if name.startswith("user") and not pk % 2:
            groups.append(everyone)
        if name == "admin":
            groups.append(admins)
        users.append(
            wire.DirectoryUser(
                pk=pk,
                uuid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"user.{name}")),
                username=name,
                name=f"{name.title()} Example",
                email=f"{name}@example.com",
                is_active=name != "blocked",
                is_superuser=name == "admin",
                attributes={"phone": f"+41 {pk:07d}", "settings": {"locale": "de_CH"}},
                groups=groups,
                date_joined=WHEN,
                last_updated=WHEN,
            )
        )
    by_group: dict[str, list[int]] = {staff: [], everyone: [], admins: []}
    for u in users:
        for g in u.groups:
            by_group[g].append(u.pk)

    def group(pk: str, num: int, name: str, **fields: Any) -> wire.DirectoryGroup:
        values: dict[str, Any] = {"is_superuser": False, "attributes": {}, "parents": []}
        values.update(fields)
        return wire.DirectoryGroup(pk=pk, num_pk=num, name=name, users=by_group[pk], **values)

    groups_ = [
        group(staff, 1, "staff", parents=[everyone]),
        group(everyone, 2, "everyone", attributes={"description": "all of us"}),
        group(admins, 3, "admins", is_superuser=True),
    ]
    return wire.Directory(generation=generation, users=users, groups=groups_)


def config(pk: int, base: str, mode: str, **fields: Any) -> wire.LDAPOutpostConfig:
    values: dict[str, Any] = {
        "pk": pk,
        "name": f"ldap-{mode}-{pk}",
        "base_dn": base,
        "bind_flow_slug": "default-authentication-flow",
        "unbind_flow_slug": "default-invalidation-flow",
        "application_slug": f"ldap-{pk}",
        "certificate": None,
        "tls_server_name": "",
        "uid_start_number": 2000,
        "gid_start_number": 4000,
        "search_mode": mode,
        "bind_mode": mode,
        "mfa_support": True,
    }
    values.update(fields)
    return wire.LDAPOutpostConfig(**values)


class FakeCore:
    """The core's LDAP outpost calls, answered from `directory` (a stand-in: the end-to-end
    tests run the real core)."""

    def __init__(self, directory: wire.Directory) -> None:
        self.directory = directory
        self.passwords = {u.username: password_of(u.username) for u in directory.users}
        self.calls: dict[str, int] = {}
        self.sessions: dict[str, str] = {}  # session id -> username
        self.slow = 0.0
        self.filters: list[str] = []  # the filter texts direct-mode searches sent

    def count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    def app(self) -> web.Application:
        app = web.Application()
        prefix = "/api/v3/outposts/ldap/{pk}/"
        app.router.add_post(prefix + "bind/", self.bind)
        app.router.add_post(prefix + "unbind/", self.unbind)
        app.router.add_get(prefix + "directory/", self.get_directory)
        app.router.add_post(prefix + "search/", self.search)
        app.router.add_post(prefix + "password/", self.password)
        return app

    def _user(self, username: str) -> wire.DirectoryUser | None:
        return next((u for u in self.directory.users if u.username == username), None)

    async def bind(self, request: web.Request) -> web.Response:
        self.count("bind")
        body = wire.BindRequest.model_validate(await request.json())
        if self.slow:
            await asyncio.sleep(self.slow)
        user = self._user(body.username)
        password = body.password
        if body.username == "mfa":
            password, _, code = password.rpartition(";")
            if code != "123456":
                return _refused(401, "invalid_credentials")
        if user is None or self.passwords.get(user.username) != password:
            return _refused(401, "invalid_credentials")
        if not user.is_active:
            return _refused(403, "access_denied")
        session_id = hashlib.sha256(f"{user.username}.{len(self.sessions)}".encode()).hexdigest()
        self.sessions[session_id] = user.username
        mine = [g for g in self.directory.groups if g.pk in user.groups]
        result = wire.BindResult(
            user=user,
            groups=mine,
            has_search_permission=user.username == "admin",
            session_id=session_id,
            expires=None,
        )
        return web.json_response(result.model_dump(mode="json"))

    async def unbind(self, request: web.Request) -> web.Response:
        self.count("unbind")
        body = wire.UnbindRequest.model_validate(await request.json())
        self.sessions.pop(body.session_id, None)
        return web.Response(status=204)

    async def get_directory(self, request: web.Request) -> web.Response:
        self.count("directory")
        return web.json_response(self.directory.model_dump(mode="json"))

    async def search(self, request: web.Request) -> web.Response:
        self.count("search")
        body = wire.SearchRequest.model_validate(await request.json())
        if self.slow:
            await asyncio.sleep(self.slow)
        username = self.sessions.get(body.session_id)
        if username is None:
            return web.json_response({"detail": "no session"}, status=403)
        self.filters.append(body.filter)
        if REFUSED_RULE in body.filter:  # a filter this core cannot read
            return web.json_response({"filter": ["Unexpected text"]}, status=400)
        if username == "admin":
            return web.json_response(self.directory.model_dump(mode="json"))
        user = self._user(username)
        assert user is not None
        groups = [g for g in self.directory.groups if g.pk in user.groups]
        answer = wire.Directory(generation=self.directory.generation, users=[user], groups=groups)
        return web.json_response(answer.model_dump(mode="json"))

    async def password(self, request: web.Request) -> web.Response:
        self.count("password")
        body = wire.PasswordChangeRequest.model_validate(await request.json())
        username = self.sessions.get(body.session_id)
        if username is None:
            return web.json_response({"detail": "no session"}, status=403)
        if len(body.new_password) < 8:
            return web.json_response({"new_password": ["at least 8 characters"]}, status=400)
        if body.old_password is not None and body.old_password != self.passwords[username]:
            return web.json_response({"old_password": ["wrong password"]}, status=400)
        if username in FROZEN:  # the fuzz tests bind as these whatever they send
            return web.json_response({"new_password": ["not this user's"]}, status=400)
        self.passwords[username] = body.new_password
        return web.json_response({})


def _refused(status: int, reason: str) -> web.Response:
    body = wire.BindRefused.model_validate({"reason": reason, "detail": reason})
    return web.json_response(body.model_dump(mode="json"), status=status)


class LDAPThread:
    """The outpost's server on 127.0.0.1 (`port` plain with StartTLS, `tls_port` LDAPS), in a
    daemon thread of its own; `call(fn)` runs a coroutine function on its loop."""

    def __init__(self, directory: wire.Directory) -> None:
        self.core = FakeCore(directory)
        self.configs = [config(1, BASE, "cached"), config(2, DIRECT_BASE, "direct")]
        self.port = 0
        self.tls_port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Server | None = None
        self.outpost: Outpost | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ldap-server", daemon=True)

    def start(self) -> LDAPThread:
        self._thread.start()
        if not self._ready.wait(60):
            raise AssertionError("the LDAP server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting test
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        runner = web.AppRunner(self.core.app(), access_log=None)
        await runner.setup()
        core_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", core_port).start()
        settings = settings_.load(host=f"http://127.0.0.1:{core_port}", token="ldap-test-token")
        client = client_.CoreClient(settings, user_agent="ldap-tests")
        self.outpost = Outpost(coreapi.CoreApi(client))
        directories = {"1": self.core.directory.model_dump(mode="json")}
        self.outpost.update(self.configs, directories)
        self.server = Server(self.outpost, tls.Certificates())
        plain = self.server.listen("127.0.0.1", 0)
        secure = self.server.listen("127.0.0.1", 0, tls_port=True)
        self.port, self.tls_port = plain.getHost().port, secure.getHost().port
        self._ready.set()
        await asyncio.Event().wait()

    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        assert self.loop is not None

        async def run() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)


# A raw client for the protocol and fuzz tests ---------------------------------------------


def bind_pdu(message_id: int, name: str, password: str | bytes) -> bytes:
    pw = password.encode() if isinstance(password, str) else password
    op = ber.element(0x60, ber.encode_int(3) + ber.octets(name) + ber.octets(pw, 0x80))
    return ber.message(message_id, op)


def read_messages(
    sock: socket.socket | ssl.SSLSocket, count: int, timeout: float = 5.0
) -> list[tuple[int, int, bytes]]:
    """`count` messages as `(message id, protocolOp tag, whole PDU)`; fewer when the server
    closes the connection."""
    sock.settimeout(timeout)
    buf = b""
    out: list[tuple[int, int, bytes]] = []
    while len(out) < count:
        end = ber.frame(buf)
        if end is None:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            continue
        pdu, buf = buf[:end], buf[end:]
        start, stop = ber.expect(pdu, 0, len(pdu), ber.SEQUENCE)
        i_start, i_stop = ber.expect(pdu, start, stop, ber.INTEGER)
        tag, _s, _e = ber.tlv(pdu, i_stop, stop)
        out.append((ber.integer(pdu, i_start, i_stop), tag, pdu))
    return out


def read_until(
    sock: socket.socket | ssl.SSLSocket, message_id: int, timeout: float = 5.0
) -> tuple[list[tuple[int, int, bytes]], bool]:
    """Messages up to the first answer to `message_id` (a done message or an extended response),
    or up to the server closing the connection; and whether it closed."""
    sock.settimeout(timeout)
    buf = b""
    out: list[tuple[int, int, bytes]] = []
    while True:
        end = ber.frame(buf)
        if end is None:
            chunk = sock.recv(65536)
            if not chunk:
                return out, True
            buf += chunk
            continue
        pdu, buf = buf[:end], buf[end:]
        start, stop = ber.expect(pdu, 0, len(pdu), ber.SEQUENCE)
        i_start, i_stop = ber.expect(pdu, start, stop, ber.INTEGER)
        tag, _s, _e = ber.tlv(pdu, i_stop, stop)
        found = ber.integer(pdu, i_start, i_stop)
        out.append((found, tag, pdu))
        if found == message_id and tag != 0x64:
            return out, False


def result_code(pdu: bytes) -> int:
    """The resultCode of an LDAPResult-shaped response PDU."""
    start, stop = ber.expect(pdu, 0, len(pdu), ber.SEQUENCE)
    _i_start, i_stop = ber.expect(pdu, start, stop, ber.INTEGER)
    _tag, op_start, op_stop = ber.tlv(pdu, i_stop, stop)
    c_start, c_stop = ber.expect(pdu, op_start, op_stop, ber.ENUMERATED)
    return ber.integer(pdu, c_start, c_stop)
