"""The durable Store: SQL through SQLAlchemy Core, on SQLite (embedded) or PostgreSQL (asyncpg).

Callers open a transaction with `store.transaction()` (writes) or `store.read()` and pass the
resulting `Tx` to the query functions of `store.crud`; nothing above this package imports
SQLAlchemy. Migrations run at start under a lock (`store.migrate`). The app factory owns the
`Store` instance through its cleanup context.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

if TYPE_CHECKING:  # imported when PostgreSQL is configured: the embedded default needs none
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tessera.core import config, errors
from tessera.core.store import crud, migrate, sqlite, system_settings, tls
from tessera.core.store.crud import Filter, Query, Tx

__all__ = [
    "CONFIG_TABLES",
    "STATE_TABLES",
    "Filter",
    "Query",
    "Store",
    "StoreUnavailable",
    "Tx",
    "crud",
    "migrate",
    "system_settings",
]

_PING_TIMEOUT = 2.0
# The task inside `Store.transaction`, if any (tasks it starts have their own).
_WRITING: contextvars.ContextVar[asyncio.Task[Any] | None] = contextvars.ContextVar(
    "tessera_store_writing", default=None
)

# The tables that define flows, policies and providers. A committed write to any of them bumps
# `Store.config_generation`, which in-process caches of these definitions compare against.
CONFIG_TABLES = frozenset(
    {
        "flows",
        "stages",
        "flow_stage_bindings",
        "policies",
        "policy_bindings",
        "groups",
        "group_parents",
        "applications",
        "providers",
        "oauth2_providers",
        "scope_mappings",
        "certificate_keypairs",
        "proxy_providers",
        "outposts",
        "outpost_providers",
        "saml_providers",
        "saml_property_mappings",
    }
)


# The tables whose rows decide whether an issued token still holds and what it says: users,
# memberships, revocations and grants. A committed write to any of them bumps
# `Store.state_generation`, which caches of token checks (the OAuth2 claim cache) compare against.
STATE_TABLES = frozenset({"users", "group_members", "oauth2_revoked", "oauth2_grants"})


# Told of every committed write transaction: the tables it wrote and what it announced.
CommitListener = Callable[[frozenset[str], dict[str, set[str]]], None]


class StoreUnavailable(errors.TesseraError):
    """The database cannot be reached."""


@dataclass(frozen=True)
class PoolStatus:
    size: int
    checked_out: int


def _url(settings: config.Settings) -> URL:
    pg = settings.postgresql
    return URL.create(
        "postgresql+asyncpg",
        username=pg.user,
        password=pg.password.get_secret_value() or None,
        host=pg.host,
        port=pg.port,
        database=pg.name,
    )


class Store:
    """One database, with its connection pool."""

    def __init__(self, settings: config.Settings) -> None:
        self.settings = settings
        self.dialect = "sqlite" if settings.embedded else "postgresql"
        self._engine: AsyncEngine | None = None  # PostgreSQL
        self._sqlite: sqlite.Pool | None = None
        self._sqlite_writer = asyncio.Lock()
        self.config_generation = 0
        self.state_generation = 0
        # Whether this process hears the other processes' commits (`config_changed` and
        # `state_changed` through the bus): until it does, caches that rely on them are bypassed.
        self.hears_others = False
        self._writes: collections.Counter[str] = collections.Counter()
        self._config_listeners: list[Callable[[], None]] = []
        self._commit_listeners: list[CommitListener] = []
        self._state_listeners: list[Callable[[], None]] = []

    def on_config_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each commit that changed a table of CONFIG_TABLES; returns the
        function that stops this."""
        self._config_listeners.append(listener)
        return lambda: self._config_listeners.remove(listener)

    def on_state_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after each commit that changed a table of STATE_TABLES; returns the
        function that stops this."""
        self._state_listeners.append(listener)
        return lambda: self._state_listeners.remove(listener)

    def state_changed(self) -> None:
        """Drop in-process caches of token checks (also told by other processes)."""
        self.state_generation += 1

    def on_commit(self, listener: CommitListener) -> Callable[[], None]:
        """Call `listener(tables written, announcements)` after each committed write transaction
        (`Tx.announced`: e.g. the sessions it ended); returns the function that stops this."""
        self._commit_listeners.append(listener)
        return lambda: self._commit_listeners.remove(listener)

    def write_count(self, table_name: str) -> int:
        """How many committed transactions of this process wrote `table_name` (a stamp for
        request-local memos of rows)."""
        return self._writes[table_name]

    def config_changed(self) -> None:
        """Drop in-process caches of flow and policy definitions (also told by other replicas)."""
        self.config_generation += 1

    @property
    def engine(self) -> sa.Engine | AsyncEngine:
        """SQLite: the synchronous engine used on the loop (see `store.sqlite`); PostgreSQL: the
        asyncpg engine."""
        if self._sqlite is not None:
            return self._sqlite.engine
        if self._engine is None:
            raise StoreUnavailable("store is not open")
        return self._engine

    async def open(self) -> None:
        """Create the engine and check that the database answers; raise StoreUnavailable."""
        if self.settings.embedded:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            self._sqlite = sqlite.Pool(sqlite.create_engine(self.settings.sqlite_path))
        else:
            pg = self.settings.postgresql
            from sqlalchemy.ext.asyncio import create_async_engine

            self._engine = create_async_engine(
                _url(self.settings),
                pool_size=pg.pool_size,
                max_overflow=pg.pool_size,
                pool_timeout=pg.connect_timeout,
                connect_args={"timeout": pg.connect_timeout, "ssl": tls.ssl_argument(pg)},
                hide_parameters=True,  # SECURITY: error messages never carry bound values
            )
            sa.event.listen(self._engine.sync_engine, "checkout", _refuse_closed_connection)
        try:
            await self.ping(timeout=max(_PING_TIMEOUT, self.settings.postgresql.connect_timeout))
        except StoreUnavailable as exc:
            key = "AUTHENTIK_DATA_DIR" if self.settings.embedded else "AUTHENTIK_POSTGRESQL__HOST"
            if not self.settings.embedded and self.settings.postgresql.sslmode != "prefer":
                key += f" (sslmode {self.settings.postgresql.sslmode})"
            raise StoreUnavailable(f"{key}: cannot reach the database: {exc}") from None

    async def close(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self, timeout: float = _PING_TIMEOUT) -> None:  # noqa: ASYNC109
        """Raise StoreUnavailable unless `SELECT 1` answers within `timeout` seconds."""
        try:
            if self._sqlite is not None:
                async with self._sqlite.connect() as sync:
                    sync.execute(sa.text("SELECT 1"))
                return
            async with asyncio.timeout(timeout), self._async_engine().connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except (TimeoutError, OSError, sa.exc.SQLAlchemyError) as exc:
            raise StoreUnavailable(_describe(exc)) from None
        except Exception as exc:
            # The server's refusals while connecting (pg_hba, authentication, a client
            # certificate it wants) come from asyncpg unwrapped.
            if type(exc).__module__.startswith("asyncpg"):
                raise StoreUnavailable(_describe(exc)) from None
            raise

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction: committed when the block ends, rolled back on any exception.

        Never inside another write transaction of the same task: on SQLite the inner one would
        wait for the writer lock that the outer one holds, for ever. That is refused at once,
        on both engines, so that tests on either find it.
        """
        task = asyncio.current_task()
        if task is not None and _WRITING.get() is task:
            raise RuntimeError("a write transaction opened inside another one of the same task")
        token = _WRITING.set(task)
        try:
            async with self._transaction() as tx:
                yield tx
        finally:
            _WRITING.reset(token)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        with _unavailable_on_disconnect():  # also around BEGIN and COMMIT
            async with contextlib.AsyncExitStack() as stack:
                if self._sqlite is not None:
                    await stack.enter_async_context(self._sqlite_writer)
                    conn: crud.Connection = await stack.enter_async_context(self._sqlite.write())
                else:
                    async_conn = await stack.enter_async_context(self._connect())
                    async_conn = await async_conn.execution_options(tessera_write=True)
                    await stack.enter_async_context(async_conn.begin())
                    conn = async_conn
                tx = Tx(conn, self.dialect)
                yield tx
        # Reached only once the transaction has committed.
        self._writes.update(tx.written)
        for commit_listener in self._commit_listeners:
            commit_listener(frozenset(tx.written), tx.announced)
        if tx.written & CONFIG_TABLES:
            self.config_changed()
            for listener in self._config_listeners:
                listener()
        if tx.written & STATE_TABLES:
            self.state_changed()
            for listener in self._state_listeners:
                listener()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """A read-only transaction (a consistent snapshot for paginated listings)."""
        with _unavailable_on_disconnect():
            if self._sqlite is not None:
                async with self._sqlite.read() as conn:
                    yield Tx(conn, self.dialect)
                return
            async with self._connect() as async_conn, async_conn.begin():
                yield Tx(async_conn, self.dialect)

    def _async_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StoreUnavailable("store is not open")
        return self._engine

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await self._async_engine().connect()
        except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError, TimeoutError) as exc:
            raise StoreUnavailable(_describe(exc)) from None
        try:
            yield conn
        finally:
            await conn.close()

    def pool_status(self) -> PoolStatus:
        if self._sqlite is not None:
            return PoolStatus(size=sqlite.POOL_SIZE, checked_out=self._sqlite.in_use)
        pool: Any = self.engine.pool
        size = pool.size() if hasattr(pool, "size") else 1
        return PoolStatus(size=size, checked_out=pool.checkedout())

    async def migrate(self) -> None:
        """Bring the schema up to date, under a lock shared by every process."""
        await migrate.upgrade(self.engine, self.settings)


def _refuse_closed_connection(_dbapi: Any, _record: Any, proxy: Any) -> None:
    """A pooled connection whose socket the server (or the network) closed while it sat idle
    is discarded at checkout and another is taken, instead of failing the request that drew it.

    asyncpg marks a connection closed as soon as its socket is lost, so this costs no round trip
    (unlike `pool_pre_ping`). It matters after a database restart or a network cut: each worker
    process has its own pool, and the first request to each would otherwise get a 503.
    """
    if proxy.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the connection was closed while idle")


@contextlib.contextmanager
def _unavailable_on_disconnect() -> Iterator[None]:
    """Connection failures in the middle of a transaction become StoreUnavailable (503)."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
        raise StoreUnavailable(_describe(exc)) from exc
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(_describe(exc)) from exc
        raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = (
        str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
    )
    return text[:200]
