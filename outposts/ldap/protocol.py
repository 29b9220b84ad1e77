"""The LDAP server protocol (RFC 4511) on Twisted: one `LDAPConnection` per client connection.

Bytes are framed into PDUs (`ber.frame`), decoded (`messages.decode_message`) and handled one
at a time in order: an operation that needs the core (a bind, a direct-mode search, a password
change) runs as an asyncio task on the shared loop while later PDUs wait in the buffer. A
PDU that does not decode gets a Notice of Disconnection (protocolError) and the connection is
closed; a buffer beyond `MAX_BUFFER` (a client not reading its answers, or flooding) closes it
too. Nothing a client sends raises out of here: an unexpected error in a handler is logged and
answered operationsError (1).

Operations: bind (simple; SASL is authMethodNotSupported), unbind, search (rootDSE to anyone,
the rest to bound users: anonymous search is insufficientAccessRights), compare, the
extended operations StartTLS (RFC 4511 §4.14), Who am I? (RFC 4532) and Password Modify
(RFC 3062); add, delete, modify and modify DN are unwillingToPerform (53). Searches honour
scope, sizeLimit (sizeLimitExceeded, 4, after that many entries), timeLimit, typesOnly,
attribute selection, and the Simple Paged Results control (RFC 2696: cookies belong to the
connection; one it did not issue is an error). Used by `server` (the listeners).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any

import structlog
from twisted.internet import protocol

from tessera.outposts.common import client as client_
from tessera.outposts.ldap import ber, codes, coreapi, dit, dn, paging
from tessera.outposts.ldap import directory as directory_
from tessera.outposts.ldap import messages as m
from tessera.outposts.ldap import outpost as outpost_
from tessera.outposts.ldap.provider import Session

if TYPE_CHECKING:
    from tessera.outposts.ldap.server import Server

log = structlog.get_logger(__name__)

MAX_BUFFER = 4 * ber.MAX_PDU
MAX_PAGED_SEARCHES = 8
NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"


class LDAPConnection(protocol.Protocol):
    def __init__(self, server: Server, tls: bool) -> None:
        self.server = server
        self.tls = tls
        self.buffer = bytearray()
        self.session: Session | None = None
        self.busy = False
        self.closing = False
        self.pages: dict[bytes, paging.Paged] = {}
        self.pos = 0  # bytes of `buffer` handled by the `_drain` under way
        self.peer = ""
        self.out: Any = None  # the transport (Twisted's interfaces do not type-check)

    # Twisted ------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.out = self.transport
        peer = self.out.getPeer()
        self.peer = getattr(peer, "host", "")
        self.server.outpost.connections.add(self)
        self.server.opened()

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        self.server.outpost.connections.discard(self)
        self.server.closed()
        if self.session is not None:
            self._release(self.session)
            self.session = None
        self.pages.clear()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        # SECURITY: a client that sends without letting itself be answered is cut off
        if len(self.buffer) > MAX_BUFFER:
            log.info("ldap_connection_flooding", peer=self.peer)
            self._disconnect("too much unanswered data")
            return
        if not self.busy:
            self._drain()

    # Framing and dispatch -----------------------------------------------------------------

    def _drain(self) -> None:
        buffer = self.buffer
        self.pos = 0
        try:
            while not self.busy and not self.closing and self.pos < len(buffer):
                try:
                    end = ber.frame(buffer, self.pos)
                    if end is None:
                        return
                    pdu = bytes(buffer[self.pos : end])
                    self.pos = end
                    message = m.decode_message(pdu)
                except ber.BERError as exc:
                    self.server.count("malformed")
                    self._disconnect(f"malformed request: {exc}")
                    return
                try:
                    self._handle(message)
                except Exception:  # a bug must not take the server down: log, answer, go on
                    self.server.count("internal_error")
                    log.exception("ldap_handler_failed", op=type(message.op).__name__)
                    self._error_reply(message, codes.OPERATIONS_ERROR, "internal error")
        finally:
            del buffer[: self.pos]  # once, not per PDU: a pipelined chunk holds hundreds
            self.pos = 0

    def _handle(self, msg: m.Message) -> None:
        op = msg.op
        if isinstance(op, m.Search):
            self.server.count("search")
            self._search(msg, op)
        elif isinstance(op, m.Bind):
            self.server.count("bind")
            self._bind(msg, op)
        elif isinstance(op, m.Unbind):
            self.server.count("unbind")
            self.closing = True
            self.out.loseConnection()
        elif isinstance(op, m.Extended):
            self.server.count("extended")
            self._extended(msg, op)
        elif isinstance(op, m.Compare):
            self.server.count("compare")
            self._compare(msg, op)
        elif isinstance(op, m.Abandon):
            pass  # operations run one at a time: nothing is in flight to abandon
        else:
            self.server.count("unsupported")
            self._reply(msg, op.response, codes.UNWILLING, "the directory is read-only")

    def _run(self, msg: m.Message, coroutine: Any) -> None:
        """Run an operation that awaits; later PDUs wait until it has answered."""
        self.busy = True
        task = asyncio.ensure_future(coroutine)

        def done(finished: asyncio.Future[None]) -> None:
            self.busy = False
            if not finished.cancelled() and finished.exception() is not None:
                self.server.count("internal_error")
                log.error(
                    "ldap_handler_failed",
                    op=type(msg.op).__name__,
                    error=repr(finished.exception())[:300],
                )
                self._error_reply(msg, codes.OPERATIONS_ERROR, "internal error")
            if not self.closing:
                self._drain()

        task.add_done_callback(done)

    def _write(self, message_id: int, op: bytes, controls: bytes = b"") -> None:
        if not self.closing:
            self.out.write(ber.message(message_id, op, controls))

    def _reply(
        self,
        msg: m.Message,
        tag: int,
        code: int,
        text: str = "",
        *,
        extra: bytes = b"",
        matched: str = "",
    ) -> None:
        """An LDAPResult-shaped answer to `msg`."""
        self._write(msg.id, ber.result(tag, code, text, matched=matched, extra=extra))

    def _error_reply(self, msg: m.Message, code: int, text: str) -> None:
        tag = {
            m.Bind: codes.BIND_RESPONSE,
            m.Search: codes.SEARCH_DONE,
            m.Compare: codes.COMPARE_RESPONSE,
            m.Extended: codes.EXTENDED_RESPONSE,
        }.get(type(msg.op))
        if tag is not None:
            self._reply(msg, tag, code, text)

    def _disconnect(self, reason: str) -> None:
        """RFC 4511 §4.4.1: a Notice of Disconnection, then the connection closes."""
        if self.closing:
            return
        extra = ber.octets(NOTICE_OF_DISCONNECTION, 0x8A)
        self._write(
            0, ber.result(codes.EXTENDED_RESPONSE, codes.PROTOCOL_ERROR, reason[:200], extra=extra)
        )
        self.closing = True
        self.buffer.clear()
        self.out.loseConnection()

    def end_session(self) -> None:
        """The core ended the session this connection is bound with: close it (authentik)."""
        self.session = None
        self.closing = True
        self.out.loseConnection()

    def _release(self, session: Session) -> None:
        if self.server.outpost.owns_session(session):
            self.server.background(self.server.outpost.unbind(session))

    # Bind ---------------------------------------------------------------------------------

    def _bind(self, msg: m.Message, op: m.Bind) -> None:
        self.pages.clear()
        if self.session is not None:
            self._release(self.session)
            self.session = None
        if op.version != 3:
            self._reply(msg, codes.BIND_RESPONSE, codes.PROTOCOL_ERROR, "LDAPv3 only")
            return
        if op.password is None:
            self._reply(
                msg, codes.BIND_RESPONSE, codes.AUTH_METHOD_NOT_SUPPORTED, "simple bind only"
            )
            return
        if not op.name and not op.password:
            self._reply(msg, codes.BIND_RESPONSE, codes.SUCCESS)  # anonymous
            return
        if not op.password:  # RFC 4513 §5.1.2: unauthenticated binds are refused
            self._reply(msg, codes.BIND_RESPONSE, codes.UNWILLING, "unauthenticated bind refused")
            return
        cached = self.server.outpost.cached_bind(op.name, op.password)
        if cached is not None:
            self.server.count("bind_cached")
            self.session = Session(
                cached.provider, op.name, cached.ndn, cached.result, cached=True, views=cached.views
            )
            self._write(msg.id, codes.BIND_OK)
            return
        self._run(msg, self._bind_remote(msg, op))

    async def _bind_remote(self, msg: m.Message, op: m.Bind) -> None:
        assert op.password is not None
        outcome = await self.server.outpost.bind(op.name, op.password, self.peer)
        if isinstance(outcome, outpost_.BindOutcome):
            self._reply(msg, codes.BIND_RESPONSE, outcome.code, outcome.message)
            return
        if self.closing:  # the client left meanwhile: end the session it opened
            self._release(outcome)
            return
        self.session = outcome
        self._reply(msg, codes.BIND_RESPONSE, codes.SUCCESS)

    # Extended operations ------------------------------------------------------------------

    def _extended(self, msg: m.Message, op: m.Extended) -> None:
        if op.name == dit.START_TLS:
            self._start_tls(msg)
        elif op.name == dit.WHO_AM_I:
            who = f"dn:{self.session.dn}" if self.session is not None else ""
            self._reply(
                msg,
                codes.EXTENDED_RESPONSE,
                codes.SUCCESS,
                extra=ber.octets(who, 0x8B),
            )
        elif op.name == dit.PASSWORD_MODIFY:
            self._run(msg, self._password_modify(msg, op))
        else:
            self._reply(
                msg, codes.EXTENDED_RESPONSE, codes.PROTOCOL_ERROR, "unknown extended operation"
            )

    def _start_tls(self, msg: m.Message) -> None:
        name = ber.octets(dit.START_TLS, 0x8A)
        if self.tls:
            self._reply(
                msg, codes.EXTENDED_RESPONSE, codes.OPERATIONS_ERROR, "TLS already", extra=name
            )
            return
        if len(self.buffer) > self.pos:  # RFC 4511 §4.14.1: nothing may follow the request
            self._disconnect("data after StartTLS")
            return
        self._reply(msg, codes.EXTENDED_RESPONSE, codes.SUCCESS, extra=name)
        self.out.startTLS(self.server.certificates.factory)
        self.tls = True

    async def _password_modify(self, msg: m.Message, op: m.Extended) -> None:
        session = self.session
        try:
            identity, old, new = m.password_modify(op.value)
        except ber.BERError:
            self._reply(msg, codes.EXTENDED_RESPONSE, codes.PROTOCOL_ERROR, "bad request")
            return
        if session is None:
            self._reply(msg, codes.EXTENDED_RESPONSE, codes.INSUFFICIENT_ACCESS, "bind first")
            return
        if identity is not None and not _same_user(identity, session):  # SECURITY: own only
            self._reply(
                msg,
                codes.EXTENDED_RESPONSE,
                codes.INSUFFICIENT_ACCESS,
                "only your own password can change",
            )
            return
        if not new:
            self._reply(msg, codes.EXTENDED_RESPONSE, codes.UNWILLING, "a new password is required")
            return
        try:
            await self.server.outpost.change_password(session, old, new)
        except coreapi.PasswordRefused as exc:
            self._reply(msg, codes.EXTENDED_RESPONSE, codes.CONSTRAINT_VIOLATION, str(exc)[:500])
            return
        except client_.CoreError as exc:
            log.warning("ldap_password_core_error", error=str(exc))
            self._reply(
                msg,
                codes.EXTENDED_RESPONSE,
                codes.UNAVAILABLE,
                "the identity provider cannot be reached",
            )
            return
        self._reply(msg, codes.EXTENDED_RESPONSE, codes.SUCCESS)

    # Compare ------------------------------------------------------------------------------

    def _compare(self, msg: m.Message, op: m.Compare) -> None:
        allowed = self._allowed(msg, op.dn, codes.COMPARE_RESPONSE)
        if allowed is None:
            return
        provider, base = allowed
        search = m.Search(
            base=op.dn,
            scope=0,
            deref=0,
            size_limit=0,
            time_limit=0,
            types_only=False,
            filter=m.Equal(op.attr, op.value),
            attributes=(),
        )
        self._run(msg, self._compare_in(msg, op, provider, base, search))

    async def _compare_in(
        self, msg: m.Message, op: m.Compare, provider: Any, base: str, search: m.Search
    ) -> None:
        assert self.session is not None
        try:
            view = await self.server.outpost.view(provider, self.session, search, None)
        except coreapi.SessionGone:
            self.session = None
            self._reply(
                msg, codes.COMPARE_RESPONSE, codes.INSUFFICIENT_ACCESS, "the session has ended"
            )
            return
        except client_.CoreError:
            self._reply(
                msg,
                codes.COMPARE_RESPONSE,
                codes.UNAVAILABLE,
                "the identity provider cannot be reached",
            )
            return
        found = view.compare(base, op.attr, op.value)
        if found is None:
            self._reply(msg, codes.COMPARE_RESPONSE, codes.NO_SUCH_OBJECT)
        else:
            self._reply(
                msg, codes.COMPARE_RESPONSE, codes.COMPARE_TRUE if found else codes.COMPARE_FALSE
            )

    # Search -------------------------------------------------------------------------------

    def _allowed(self, msg: m.Message, base_dn: str, tag: int) -> tuple[Any, str] | None:
        """`(provider, normalized base)` when the bound user may read under `base_dn`;
        otherwise the refusal is written and None returned."""
        try:
            base = dn.normalize(base_dn)
        except dn.DNError:
            self._reply(msg, tag, codes.INVALID_DN_SYNTAX, "invalid DN")
            return None
        session = self.session
        if session is None:  # SECURITY: anonymous clients read the root DSE only
            self._reply(msg, tag, codes.INSUFFICIENT_ACCESS, "bind first")
            return None
        if session.expired:
            self.session = None
            self._reply(msg, tag, codes.INSUFFICIENT_ACCESS, "the session has expired")
            return None
        provider = self.server.outpost.provider_for(base)
        if provider is None:
            self._reply(msg, tag, codes.NO_SUCH_OBJECT)
            return None
        if provider.pk != session.provider:
            self._reply(msg, tag, codes.INSUFFICIENT_ACCESS, "another provider's tree")
            return None
        return provider, base

    def _search(self, msg: m.Message, op: m.Search) -> None:
        page_request: tuple[int, bytes] | None = None
        for c in msg.controls:
            if c.oid == dit.PAGED_RESULTS:
                try:
                    page_request = m.paged_control(c.value)
                except ber.BERError:
                    self._reply(
                        msg, codes.SEARCH_DONE, codes.PROTOCOL_ERROR, "bad paged results control"
                    )
                    return
            elif c.critical:
                self._reply(
                    msg,
                    codes.SEARCH_DONE,
                    codes.UNAVAILABLE_CRITICAL_EXTENSION,
                    f"unsupported control {c.oid[:60]}",
                )
                return
        if op.base == "" and op.scope == directory_.SCOPE_BASE:
            self._root_dse(msg, op)
            return
        if page_request is not None and page_request[1]:
            self._next_page(msg, op, page_request)
            return
        allowed = self._allowed(msg, op.base, codes.SEARCH_DONE)
        if allowed is None:
            return
        provider, base = allowed
        if page_request is not None and page_request[0] == 0:
            self._write(msg.id, codes.SEARCH_OK, paging.control(b"", 0))
            return
        if provider.cached_search:
            self._search_in(
                msg, op, provider.view(self.session), base, page_request, time.monotonic()
            )
        else:
            self._run(msg, self._search_direct(msg, op, provider, base, page_request))

    async def _search_direct(
        self,
        msg: m.Message,
        op: m.Search,
        provider: Any,
        base: str,
        page_request: tuple[int, bytes] | None,
    ) -> None:
        assert self.session is not None
        started = time.monotonic()
        limit = float(op.time_limit) if op.time_limit else None
        try:
            view = await self.server.outpost.view(provider, self.session, op, limit)
        except TimeoutError:
            self._reply(msg, codes.SEARCH_DONE, codes.TIME_LIMIT_EXCEEDED)
            return
        except client_.CoreUnreachable as exc:
            if limit is not None and time.monotonic() - started >= limit:
                self._reply(msg, codes.SEARCH_DONE, codes.TIME_LIMIT_EXCEEDED)
                return
            log.warning("ldap_search_core_error", error=str(exc))
            self._reply(
                msg, codes.SEARCH_DONE, codes.UNAVAILABLE, "the identity provider cannot be reached"
            )
            return
        except coreapi.SessionGone:
            self.session = None  # bind again
            self._reply(msg, codes.SEARCH_DONE, codes.INSUFFICIENT_ACCESS, "the session has ended")
            return
        except client_.CoreError as exc:
            log.warning("ldap_search_core_error", error=str(exc))
            self._reply(
                msg, codes.SEARCH_DONE, codes.OPERATIONS_ERROR, "the identity provider failed"
            )
            return
        if not self.closing:
            self._search_in(msg, op, view, base, page_request, started)

    def _search_in(
        self,
        msg: m.Message,
        op: m.Search,
        view: directory_.Directory,
        base: str,
        page_request: tuple[int, bytes] | None,
        started: float,
    ) -> None:
        try:
            entries = view.search(base, min(op.scope, 2), op.filter, remember=op.small)
        except directory_.NoSuchObject:
            matched = _matched(view, base)
            self._reply(msg, codes.SEARCH_DONE, codes.NO_SUCH_OBJECT, matched=matched)
            return
        if op.time_limit and time.monotonic() - started > op.time_limit:
            self._reply(msg, codes.SEARCH_DONE, codes.TIME_LIMIT_EXCEEDED)
            return
        wanted = directory_.selection(op.attributes)
        if page_request is None:
            self._send(msg, op, entries, wanted)
            return
        state = paging.Paged(op, entries, 0, wanted, 0)
        self._page(msg, state, page_request[0])

    def _send(
        self, msg: m.Message, op: m.Search, entries: list[dit.Entry], wanted: tuple[str, ...]
    ) -> None:
        """All entries (up to sizeLimit, then sizeLimitExceeded) and the done message, in one
        write."""
        limit = op.size_limit
        chosen = entries[:limit] if limit else entries
        exceeded = bool(limit) and len(entries) > limit
        chunk = [ber.message(msg.id, directory_.select(e, wanted, op.types_only)) for e in chosen]
        done = (
            ber.result(codes.SEARCH_DONE, codes.SIZE_LIMIT_EXCEEDED)
            if exceeded
            else codes.SEARCH_OK
        )
        chunk.append(ber.message(msg.id, done))
        if not self.closing:
            self.out.write(b"".join(chunk))

    def _page(self, msg: m.Message, state: paging.Paged, size: int) -> None:
        total = len(state.entries)
        stop = min(total, state.position + size)
        more = stop < total
        cookie = secrets.token_bytes(12) if more else b""
        limit = state.search.size_limit
        room = (
            stop - state.position if not limit else min(stop - state.position, limit - state.sent)
        )
        exceeded = bool(limit) and state.sent + room >= limit and state.position + room < total
        chunk = [
            ber.message(msg.id, directory_.select(e, state.wanted, state.search.types_only))
            for e in state.entries[state.position : state.position + room]
        ]
        if exceeded:
            done = ber.message(
                msg.id,
                ber.result(codes.SEARCH_DONE, codes.SIZE_LIMIT_EXCEEDED),
                paging.control(b"", 0),
            )
            cookie = b""
        else:
            done = ber.message(
                msg.id, ber.result(codes.SEARCH_DONE, codes.SUCCESS), paging.control(cookie, total)
            )
        chunk.append(done)
        state.position += room
        state.sent += room
        if cookie:
            if len(self.pages) >= MAX_PAGED_SEARCHES:
                self.pages.pop(next(iter(self.pages)))
            self.pages[cookie] = state
        if not self.closing:
            self.out.write(b"".join(chunk))

    def _next_page(self, msg: m.Message, op: m.Search, page_request: tuple[int, bytes]) -> None:
        size, cookie = page_request
        # SECURITY: only this connection's own cookie, once, for the same search
        state = self.pages.pop(cookie, None)
        if state is None or paging.key(state.search) != paging.key(op) or self.session is None:
            self.server.count("bad_cookie")
            self._reply(msg, codes.SEARCH_DONE, codes.UNWILLING, "unknown paged results cookie")
            return
        if size == 0:  # RFC 2696: the client abandons the paged search
            self._write(msg.id, codes.SEARCH_OK, paging.control(b"", 0))
            return
        self._page(msg, state, size)

    def _root_dse(self, msg: m.Message, op: m.Search) -> None:
        root = self.server.outpost.root_dse
        wanted = directory_.selection(op.attributes)
        view = directory_.Directory([root])
        hits = view.search("", 0, op.filter)
        chunk = [ber.message(msg.id, directory_.select(e, wanted, op.types_only)) for e in hits]
        chunk.append(ber.message(msg.id, ber.result(codes.SEARCH_DONE, codes.SUCCESS)))
        self.out.write(b"".join(chunk))


def _matched(view: directory_.Directory, base: str) -> str:
    current = base
    while current:
        current = dn.parent(current)
        entry = view.get(current)
        if entry is not None:
            return entry.dn
    return ""


def _same_user(identity: str, session: Session) -> bool:
    text = identity.removeprefix("dn:")
    try:
        return dn.normalize(text) == session.ndn
    except dn.DNError:
        return False
