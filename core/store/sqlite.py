"""The embedded SQLite engine, driven from the event loop's own thread.

`Store` uses this module when no PostgreSQL host is configured. SQLite is a library, not a
server: a point lookup or a small write on a local file takes some ten microseconds, while handing
each call to a driver thread (aiosqlite) cost four thread hops per statement and, with
SQLAlchemy's greenlet bridge around them, about 0.3 ms of event-loop time. A password login ran
some fifty such hops. So the embedded store calls the standard `sqlite3` driver through a
synchronous SQLAlchemy engine, on the loop, and `LoopConnection` gives that connection the
awaitable methods that `store.crud` uses on PostgreSQL's `AsyncConnection`.

What keeps the loop from ever waiting long:
- WAL journal: readers never wait for the writer, and a commit appends to the log without an
  fsync (synchronous=NORMAL, which loses no committed transaction on a process crash).
- Writers of this process queue on an asyncio lock in `Store.transaction` before BEGIN. Another
  process holding the write lock (a separate `tessera worker`, a CLI command) makes BEGIN
  IMMEDIATE fail after a short busy wait, and `begin_write` retries it after an asynchronous
  sleep, so the loop keeps serving while it waits.
- Connections are checked out under an asyncio semaphore as large as the pool, so a checkout
  never blocks the thread. They stay open between transactions (`Pool.connect`), the one used
  last lent first.
- Checkpoints (copying the WAL back into the database file, with an fsync) would otherwise run
  inside whichever commit crossed SQLite's threshold; on an SD card that is tens of
  milliseconds. The loop's connections turn automatic checkpoints off and `Pool` runs one in a
  worker thread, on its own connection, every `CHECKPOINT_EVERY` write transactions.

What keeps a statement cheap: `store.crud` marks the statements it builds once per shape with
`PREPARED`, and `LoopConnection` runs those through `Prepared`, straight on the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event

POOL_SIZE = 5
# How long one statement may wait for a lock held by another process before it fails (and, for
# BEGIN IMMEDIATE, is retried without blocking the loop). Readers wait only in rare WAL cases.
BUSY_WAIT_MS = 20
# How long a writer keeps retrying BEGIN IMMEDIATE while another process writes.
WRITE_LOCK_TIMEOUT = 10.0
# Write transactions between two checkpoints (a login writes a few pages; SQLite's own default
# is a checkpoint per 1000 pages).
CHECKPOINT_EVERY = 200

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # see Pool.checkpoint
    cursor.close()
    # sqlite3's own implicit BEGIN is turned off: `_begin` issues ours.
    dbapi_connection.isolation_level = None


def _begin(conn: sa.Connection) -> None:
    # Writers take the write lock at BEGIN so that two writers never deadlock mid-transaction.
    # Straight to the driver: nothing of SQLAlchemy's statement machinery is needed for BEGIN.
    raw: Any = conn.connection.dbapi_connection
    if raw.in_transaction:  # a `Pool` lease began it already
        return
    statement = _BEGIN_WRITE if conn.get_execution_options().get("tessera_write") else _BEGIN_READ
    _send(raw, statement)


_BEGIN_WRITE = "BEGIN IMMEDIATE"
_BEGIN_READ = "BEGIN DEFERRED"


def create_engine(path: Path) -> sa.Engine:
    # The loop thread is the only one that uses these connections.
    engine = sa.create_engine(
        sa.URL.create("sqlite", database=str(path)),
        pool_size=POOL_SIZE,
        # `Pool` keeps up to POOL_SIZE of these open; migrations and tests may take a few more.
        max_overflow=2,
        # The connection used last is taken first: its page cache is current. Taking them in
        # turn (FIFO) meant that a read would find its cache stale after a write made on
        # another connection and read the pages again (a millisecond per statement).
        pool_use_lifo=True,
        connect_args={"check_same_thread": True},
        hide_parameters=True,  # SECURITY: error messages never carry bound values (secrets)
    )
    sa_event.listen(engine, "connect", _pragmas)
    sa_event.listen(engine, "begin", _begin)
    return engine


class _Nested:
    """`async with conn.begin_nested():` over a synchronous SAVEPOINT."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn
        self._savepoint: sa.NestedTransaction | None = None

    async def __aenter__(self) -> sa.NestedTransaction:
        self._savepoint = self._conn.begin_nested()
        return self._savepoint

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        assert self._savepoint is not None
        if exc_type is None:
            self._savepoint.commit()
        else:
            self._savepoint.rollback()


# The execution option that marks a statement for `Prepared`: the caller builds it once per
# shape (crud's cached lookups, inserts and updates) and binds everything by name.
PREPARED = "tessera_prepared"


class Prepared:
    """A statement compiled once and run straight on the driver.

    SQLAlchemy's execution path (execution context, events, result metadata) costs some 60 µs per
    statement; the primary-key lookup under it, 6 µs. For the statements of the hot paths this
    keeps what SQLAlchemy contributes, the SQL and each type's bind and result conversion, and
    drops the rest. Only statements whose parameters are all plain bound values qualify.
    """

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        if not isinstance(statement, sa.ClauseElement):
            raise TypeError("not a statement for the prepared path")
        compiled: Any = statement.compile(dialect=dialect)
        names = compiled.positiontup
        if names is None or any(b.expanding for b in compiled.binds.values()):
            raise ValueError("not a statement for the prepared path")
        self.sql: str = compiled.string
        self.binds = [
            (
                name,
                _REQUIRED if compiled.binds[name].required else compiled.binds[name].value,
                _bind_processor(compiled.binds[name].type, dialect),
            )
            for name in names
        ]
        columns: Any = getattr(statement, "exported_columns", ())
        self.columns = [(c.key, _result_processor(c.type, dialect)) for c in columns]

    def run(self, raw: sqlite3.Connection, parameters: Mapping[str, Any]) -> PreparedResult:
        values = []
        for name, default, process in self.binds:
            value = parameters.get(name, default)
            if value is _REQUIRED:
                raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {name!r}")
            values.append(process(value) if process is not None else value)
        try:
            cursor = raw.execute(self.sql, values)
        except sqlite3.Error as exc:  # as SQLAlchemy would have wrapped it (crud maps Integrity)
            raise sa.exc.DBAPIError.instance(
                self.sql, values, exc, sqlite3.Error, hide_parameters=True
            ) from exc
        if not self.columns:
            return PreparedResult([], cursor.rowcount)
        out = []
        for row in cursor.fetchall():
            out.append(
                {
                    key: process(value) if process is not None else value
                    for (key, process), value in zip(self.columns, row, strict=True)
                }
            )
        return PreparedResult(out, cursor.rowcount)


_REQUIRED = object()
# Compiled forms kept per pool: crud's statement caches make a few dozen shapes in all.
_PREPARED_LIMIT = 2048


def _bind_processor(type_: Any, dialect: sa.Dialect) -> Any:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result_processor(type_: Any, dialect: sa.Dialect) -> Any:
    return type_.dialect_impl(dialect).result_processor(dialect, None)


class PreparedResult:
    """What `crud` reads of a result: `.mappings()` then `first`, `one` or `all`; `rowcount`."""

    def __init__(self, rows: list[dict[str, Any]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def mappings(self) -> PreparedResult:
        return self

    def first(self) -> dict[str, Any] | None:
        return self._rows[0] if self._rows else None

    def one(self) -> dict[str, Any]:
        if len(self._rows) != 1:
            raise sa.exc.NoResultFound("expected exactly one row")
        return self._rows[0]

    def all(self) -> list[dict[str, Any]]:
        return self._rows


class LoopConnection:
    """A synchronous connection with the awaitable methods `store.crud` calls."""

    def __init__(self, sync: sa.Connection, prepared: dict[sa.Executable, Prepared]) -> None:
        self.sync = sync
        self._prepared = prepared

    async def execute(self, statement: sa.Executable, parameters: Params = None) -> Any:
        if isinstance(parameters, Mapping) and statement.get_execution_options().get(PREPARED):
            prepared = self._prepared.get(statement)
            if prepared is None:
                if len(self._prepared) >= _PREPARED_LIMIT:
                    self._prepared.clear()
                prepared = self._prepared[statement] = Prepared(statement, self.sync.dialect)
            raw: Any = self.sync.connection.dbapi_connection
            return prepared.run(raw, parameters)
        return self.sync.execute(statement, parameters)

    async def scalar(
        self, statement: sa.Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        return self.sync.scalar(statement, parameters)

    def begin_nested(self) -> _Nested:
        return _Nested(self.sync)


class Pool:
    """Connections of `engine` for coroutines of one event loop."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._slots = asyncio.Semaphore(POOL_SIZE)
        # Connections stay open between transactions, the one used last on top: SQLAlchemy's
        # checkout and checkin cost more than a point lookup.
        self._idle: list[sa.Connection] = []
        self.in_use = 0
        # Statements marked PREPARED are few and built once each (crud caches them by shape).
        self._prepared: dict[sa.Executable, Prepared] = {}
        self._writes = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self.checkpoints = 0  # completed, for tests and metrics
        self.checkpoint_failures = 0

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[sa.Connection]:
        """A connection, outside any transaction (for health checks and tests)."""
        async with self._slots:
            conn = self._checkout()
            try:
                yield conn
            finally:
                self._put_back(conn)

    def _checkout(self) -> sa.Connection:
        conn = self._idle.pop() if self._idle else self.engine.connect()
        self.in_use += 1
        return conn

    def _put_back(self, conn: sa.Connection) -> None:
        self.in_use -= 1
        if conn.closed or conn.invalidated:
            conn.close()
            return
        try:  # left open by a failure: never lend it out mid-transaction
            if conn.in_transaction():
                conn.rollback()
            elif _raw(conn).in_transaction:
                _raw(conn).rollback()
        except (sa.exc.SQLAlchemyError, sqlite3.Error):
            conn.invalidate()  # the caller's own error tells what happened; this one is dropped
            conn.close()
            return
        self._idle.append(conn)

    def read(self) -> _Lease:
        """A read transaction (BEGIN DEFERRED): `async with pool.read() as conn:`."""
        return _Lease(self, write=False)

    def write(self) -> _Lease:
        """A write transaction (BEGIN IMMEDIATE, see `begin_write`)."""
        return _Lease(self, write=True)

    def _written(self) -> None:
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._writes = 0
            self._checkpointing = asyncio.create_task(self.checkpoint())

    async def checkpoint(self) -> None:
        """Copy the WAL back into the database file, in a worker thread."""
        try:
            await asyncio.to_thread(_checkpoint, self.engine.url.database or "")
            self.checkpoints += 1
        except sqlite3.Error:
            # Nothing is lost: the WAL still holds every commit, and the next one tries again.
            self.checkpoint_failures += 1
        finally:
            self._checkpointing = None

    async def close(self) -> None:
        if self._checkpointing is not None:
            await asyncio.shield(self._checkpointing)
        while self._idle:
            self._idle.pop().close()
        self.engine.dispose()
        await self.checkpoint()


def _checkpoint(path: str) -> None:
    # PASSIVE: copies what no reader still needs and never waits for a lock.
    conn = sqlite3.connect(path, timeout=BUSY_WAIT_MS / 1000)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        conn.close()


class _Lease:
    """One transaction on one of the pool's connections, for `async with`.

    BEGIN and COMMIT go straight to the driver; SQLAlchemy's transaction objects and events
    would cost more than the lookups most transactions hold. A statement that takes SQLAlchemy's
    own path (not `Prepared`) makes SQLAlchemy begin its transaction too: `_begin` then sees
    the driver's open transaction and sends nothing, and the end of the lease commits or rolls
    back through SQLAlchemy, which ends both.
    """

    __slots__ = ("_conn", "_pool", "_write")

    def __init__(self, pool: Pool, *, write: bool) -> None:
        self._pool = pool
        self._write = write
        self._conn: sa.Connection | None = None

    async def __aenter__(self) -> LoopConnection:
        pool = self._pool
        await pool._slots.acquire()
        try:
            conn = pool._checkout()
        except BaseException:
            pool._slots.release()
            raise
        try:
            if self._write:
                await begin_write(_raw(conn))
            else:
                _send(_raw(conn), _BEGIN_READ)
        except BaseException:
            self._end(conn)
            raise
        self._conn = conn
        return LoopConnection(conn, pool._prepared)

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        conn, self._conn = self._conn, None
        assert conn is not None
        try:
            if exc_type is None:
                if conn.in_transaction():
                    conn.commit()
                else:
                    _commit(_raw(conn))
        finally:
            self._end(conn)  # rolls back whatever is still open, or drops a broken connection
        if self._write and exc_type is None:
            self._pool._written()

    def _end(self, conn: sa.Connection) -> None:
        try:
            self._pool._put_back(conn)
        finally:
            self._pool._slots.release()


def _raw(conn: sa.Connection) -> sqlite3.Connection:
    raw: Any = conn.connection.dbapi_connection
    return raw  # type: ignore[no-any-return]


def _send(raw: sqlite3.Connection, statement: str) -> None:
    try:
        raw.execute(statement)
    except sqlite3.Error as exc:  # as SQLAlchemy would have wrapped it (Store maps these)
        raise sa.exc.DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


def _commit(raw: sqlite3.Connection) -> None:
    try:
        raw.commit()
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance("COMMIT", None, exc, sqlite3.Error) from exc


async def begin_write(raw: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried without blocking the loop while another process writes."""
    deadline = time.monotonic() + WRITE_LOCK_TIMEOUT
    delay = 0.005
    while True:
        try:
            _send(raw, _BEGIN_WRITE)
            return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(delay)  # a failed BEGIN leaves no transaction behind
        delay = min(delay * 2, 0.1)
