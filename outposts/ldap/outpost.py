"""The LDAP outpost's state: its providers, the bind cache, the live connections, and the
operations that need the core (bind, unbind, search in direct mode, password change).

`Outpost.update(configs, directories)` adopts the providers of a configuration (and the
directories fetched with it for cached search mode); `directory_changed(args)` applies a
DirectoryChanged push (refetch `?since=`, drop the named users' cached binds);
`session_ended(digest)` drops cached binds of that core session and closes connections bound
to it. `bind(...)` returns a `Session` or a `BindOutcome` refusal with its LDAP result code;
`view(session, ...)` gives the `Directory` a search runs on. Fed by `main` (the runtime's
callbacks), used by `protocol`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic
import structlog

from tessera.core.wire import ldap as wire
from tessera.outposts.common import client as client_
from tessera.outposts.ldap import bindcache, codes, coreapi, dit, dn, filters
from tessera.outposts.ldap import messages as m
from tessera.outposts.ldap.directory import Directory
from tessera.outposts.ldap.provider import Provider, Session

log = structlog.get_logger(__name__)

EVERYTHING = "(objectClass=*)"  # a superset the core always reads; the filter applies here
REASON_CODES = {
    "invalid_credentials": codes.INVALID_CREDENTIALS,
    "access_denied": codes.INSUFFICIENT_ACCESS,
    "flow_error": codes.INVALID_CREDENTIALS,
    "mfa_required": codes.INVALID_CREDENTIALS,
    "throttled": codes.BUSY,
}


class Connection(Protocol):
    session: Session | None

    def end_session(self) -> None: ...


@dataclass(frozen=True)
class BindOutcome:
    """A refused bind: the LDAP result code and the diagnostic message."""

    code: int
    message: str


@dataclass
class Counters:
    """What the metrics count (the main module turns them into Prometheus series)."""

    binds: dict[str, int] = field(default_factory=dict)

    def bind(self, outcome: str) -> None:
        self.binds[outcome] = self.binds.get(outcome, 0) + 1


class Outpost:
    def __init__(self, core: coreapi.CoreApi | None) -> None:
        self.core = core
        self.providers: dict[int, Provider] = {}
        self._bases: list[Provider] = []
        self.root_dse = dit.root_dse([])
        self.cache = bindcache.BindCache()
        self.connections: set[Connection] = set()
        self.counters = Counters()
        self._tasks: set[asyncio.Task[None]] = set()

    # Configuration ------------------------------------------------------------------------

    def update(
        self,
        configs: Iterable[wire.LDAPOutpostConfig | Mapping[str, Any]],
        directories: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Serve these providers from now on; the refusals (one bad provider does not stop
        the others). `directories` (provider pk as text -> `Directory` JSON) seeds cached
        search mode."""
        refused: list[str] = []
        providers: dict[int, Provider] = {}
        for raw in configs:
            try:
                config = (
                    raw
                    if isinstance(raw, wire.LDAPOutpostConfig)
                    else wire.LDAPOutpostConfig.model_validate(raw)
                )
                old = self.providers.get(config.pk)
                if old is not None and old.same_layout(config):
                    # the same DIT: keep the records, the built directory and any refetch
                    # under way; only the settings change
                    provider = old
                    provider.config = config
                else:
                    provider = Provider(config)
                if old is not None and (provider is not old or not provider.cached_bind):
                    self.cache.drop_provider(config.pk)
            except (pydantic.ValidationError, dn.DNError) as exc:
                name = raw.get("name") if isinstance(raw, Mapping) else raw.name
                refused.append(f"{name}: {exc}")
                log.warning("ldap_provider_refused", provider=name, reason=str(exc)[:300])
                continue
            records = (directories or {}).get(str(config.pk))
            if provider.cached_search and records is not None:
                try:
                    seen = wire.Directory.model_validate(records)
                except pydantic.ValidationError:
                    log.warning("ldap_directory_refused", provider=config.name)
                else:
                    # never back to an older generation than pushes brought meanwhile
                    if provider.generation is None or seen.generation > provider.generation:
                        provider.apply(seen)
            providers[config.pk] = provider
        for pk in set(self.providers) - set(providers):
            self.cache.drop_provider(pk)
        self.providers = providers
        self._bases = sorted(providers.values(), key=lambda p: len(p.base), reverse=True)
        self.root_dse = dit.root_dse(p.config.base_dn for p in providers.values())
        return refused

    def provider_for(self, ndn: str) -> Provider | None:
        """The provider whose base DN is the longest suffix of `ndn` (authentik's rule)."""
        for provider in self._bases:
            if dn.is_under(ndn, provider.base):
                return provider
        return None

    # Control channel ----------------------------------------------------------------------

    def session_ended(self, session_id: str) -> None:
        dropped = self.cache.drop_session(session_id)
        closed = 0
        for conn in list(self.connections):
            if conn.session is not None and conn.session.session_id == session_id:
                conn.end_session()
                closed += 1
        if dropped or closed:
            log.info("ldap_session_ended", cached_binds=dropped, connections=closed)

    async def directory_changed(self, args: Mapping[str, Any]) -> None:
        try:
            changed = wire.DirectoryChanged.model_validate(args)
        except pydantic.ValidationError:
            return  # another outpost type's frame, or a newer core's
        for pk in changed.providers:
            provider = self.providers.get(pk)
            if provider is None:
                continue
            if changed.users:
                self.cache.drop_users(pk, set(changed.users))
            if provider.cached_search and (
                provider.generation is None or changed.generation != provider.generation
            ):
                self._spawn(self.refetch(provider))  # the control channel is not held up

    async def refetch(self, provider: Provider) -> None:
        """Bring a cached-search provider's records up to date (`?since=` when it has some);
        failures keep the records held. Refetches of one provider run one at a time; pushes
        arriving meanwhile make one more."""
        if self.core is None:
            return
        provider.stale = True
        if provider.refetching:
            return
        provider.refetching = True
        try:
            while provider.stale and self.providers.get(provider.pk) is provider:
                provider.stale = False
                try:
                    records = await self.core.directory(provider.pk, since=provider.generation)
                except client_.CoreError as exc:
                    log.warning(
                        "ldap_directory_refetch_failed", provider=provider.pk, error=str(exc)
                    )
                    return
                await provider.apply_async(records)
                log.info(
                    "ldap_directory_updated",
                    provider=provider.pk,
                    generation=records.generation,
                    partial=records.partial,
                    entries=len(provider.directory),
                )
        finally:
            provider.refetching = False

    async def reconnected(self) -> None:
        """The channel is back: pushes may have been missed while it was down."""
        for provider in list(self.providers.values()):
            if provider.cached_search:
                self._spawn(self.refetch(provider))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Cancel the refetches under way (the process is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def settled(self) -> None:
        """Wait for the refetches under way (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Binds -------------------------------------------------------------------------------

    def parse_bind_dn(self, name: str) -> tuple[Provider, str, str] | BindOutcome:
        """`(provider, normalized DN, username)` of a bind DN `cn=<user>,ou=users,<base>` (or
        `uid=`)."""
        try:
            ndn = dn.normalize(name)
        except dn.DNError:
            return BindOutcome(codes.INVALID_CREDENTIALS, "invalid credentials")
        provider = self.provider_for(ndn)
        if provider is None:
            return BindOutcome(codes.INVALID_CREDENTIALS, "invalid credentials")
        atype, username, parent = dn.first_rdn(ndn)
        if atype not in ("cn", "uid") or parent != provider.users_base or not username:
            return BindOutcome(codes.INVALID_CREDENTIALS, "invalid credentials")
        return provider, ndn, username

    def cached_bind(self, name: str, password: bytes) -> Session | None:
        """A cached bind answered without awaiting (the hot path of cached bind mode)."""
        parsed = self.parse_bind_dn(name)
        if isinstance(parsed, BindOutcome) or not parsed[0].cached_bind:
            return None
        provider, ndn, _username = parsed
        return self.cache.get(provider.pk, ndn, password)

    async def bind(self, name: str, password: bytes, remote_ip: str) -> Session | BindOutcome:
        parsed = self.parse_bind_dn(name)
        if isinstance(parsed, BindOutcome):
            self.counters.bind("invalid_dn")
            return parsed
        provider, ndn, username = parsed
        try:
            text = password.decode()
            request = wire.BindRequest(username=username, password=text, remote_ip=remote_ip)
        except (UnicodeDecodeError, pydantic.ValidationError):
            self.counters.bind("invalid_credentials")
            return BindOutcome(codes.INVALID_CREDENTIALS, "invalid credentials")
        if self.core is None:
            return BindOutcome(codes.UNAVAILABLE, "the identity provider cannot be reached")
        try:
            answer = await self.core.bind(provider.pk, request)
        except client_.CoreError as exc:
            log.warning("ldap_bind_core_error", provider=provider.pk, error=str(exc))
            self.counters.bind("core_unreachable")
            return BindOutcome(codes.UNAVAILABLE, "the identity provider cannot be reached")
        if isinstance(answer, wire.BindRefused):
            self.counters.bind(answer.reason)
            if provider.cached_bind:
                self.cache.drop(provider.pk, ndn)
            code = REASON_CODES.get(answer.reason, codes.INVALID_CREDENTIALS)
            message = {
                codes.INSUFFICIENT_ACCESS: "access denied",
                codes.BUSY: "too many attempts, try again later",
            }.get(code, "invalid credentials")
            return BindOutcome(code, message)
        self.counters.bind("success")
        session = Session(provider.pk, name, ndn, answer)
        if provider.cached_bind:
            self.cache.put(provider.pk, ndn, password, session)
        return session

    def owns_session(self, session: Session) -> bool:
        """True when closing the connection bound as `session` ends its core session: a
        direct-mode bind's. A cached bind's session is shared by every connection binding as
        that user; it ends with SESSION_END or its expiry."""
        provider = self.providers.get(session.provider)
        return not (self.core is None or session.cached or provider is None or provider.cached_bind)

    async def unbind(self, session: Session) -> None:
        """Ends the core session of a direct-mode bind (see `owns_session`)."""
        if not self.owns_session(session):
            return
        assert self.core is not None
        try:
            await self.core.unbind(session.provider, session.session_id)
        except client_.CoreError as exc:
            log.info("ldap_unbind_failed", error=str(exc))

    # Searches ----------------------------------------------------------------------------

    async def view(
        self, provider: Provider, session: Session, search: m.Search, deadline: float | None
    ) -> Directory:
        """The directory a search by `session` runs on (`client.CoreError` in direct mode
        when the core cannot answer)."""
        if provider.cached_search:
            return provider.view(session)
        if self.core is None:
            raise client_.CoreUnreachable("no core")
        text = filters.to_text(search.filter)
        if len(text) > wire.MAX_FILTER:
            text = EVERYTHING
        request = wire.SearchRequest(session_id=session.session_id, filter=text)
        try:
            answer = await self.core.search(provider.pk, request, deadline=deadline)
        except coreapi.FilterRefused as exc:
            log.info("ldap_search_filter_refused", reason=str(exc))
            request = request.model_copy(update={"filter": EVERYTHING})
            answer = await self.core.search(provider.pk, request, deadline=deadline)
        return provider.answer_view(answer, session)

    async def change_password(self, session: Session, old: bytes | None, new: bytes) -> None:
        """RFC 3062 for the bound user through the core's policies: `coreapi.PasswordRefused`
        or `client.CoreError` when it does not happen."""
        if self.core is None:
            raise client_.CoreUnreachable("no core")
        try:
            request = wire.PasswordChangeRequest(
                session_id=session.session_id,
                old_password=old.decode() if old is not None else None,
                new_password=new.decode(),
            )
        except (UnicodeDecodeError, pydantic.ValidationError):
            raise coreapi.PasswordRefused(
                ["the password must be 1 to 4096 characters of UTF-8"]
            ) from None
        await self.core.password(session.provider, request)
        self.cache.drop_users(session.provider, {session.user_pk})
