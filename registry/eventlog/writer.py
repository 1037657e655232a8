"""The single writer: every command runs here, and concurrent commands commit together (group commit).

Why one writer: the log is one serialized, hash-chained sequence, so appends cannot run in
parallel anyway. Instead of one transaction (and one lock wait and one fsync) per command, the
writer takes whatever commands are queued, runs them one after another inside one transaction —
each in its own savepoint when it writes projections, so a refused command leaves no trace —
then inserts all their events in one statement and commits once. Callers are answered only
after the commit, so an acknowledged write is durable.

Across processes the transaction starts with an advisory lock, so two service processes on one
database still produce one dense chain; the database's own triggers and unique keys back every
guarantee in case anything bypasses this code.

The writer owns one connection of its own (not the pool's). When PostgreSQL goes away (restart,
crash, failover, a terminated backend) the writer notices at once, forgets everything it
remembered, and reconnects with backoff — through every host of a multi-host DATABASE_URL, so
`target_session_attrs=read-write` finds a promoted primary. Meanwhile commands are answered 503
`database.unavailable` (nothing was written); a command whose COMMIT was under way when the
connection broke is answered 503 `eventlog.outcome_unknown`: its Idempotency-Key is durable,
so sending it again either returns the original answer or runs it now.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import asyncpg
import msgspec

from registry.clock import Clock, business_date, fixed_clock, market_clock
from registry.db import outage
from registry.db.outage import DatabaseUnavailable
from registry.errors import Conflict, InternalError, RegistryError, RuleViolation, Unavailable
from registry.eventlog import canonical, projection
from registry.eventlog.memo import Memo, prefetch
from registry.eventlog.model import GENESIS_HASH, CanonicalEvent, EventMeta, NewEvent
from registry.eventlog.projection import EventRecord

log = logging.getLogger(__name__)

WRITER_LOCK = 7_301_002
APPLICATION_NAME = "registry-writer"
"""How the writer's connection shows in pg_stat_activity."""
LOG_CHANNEL = "registry_log"
"""NOTIFY channel carrying the last committed position of each batch."""
NO_STREAM = -1
"""Expected version of a stream that must not exist yet."""
STREAM_CACHE_LIMIT = 200_000
CATCH_UP_LIMIT = 10_000
"""Most events another process may have appended that the writer reads to bring its memory forward;
past that it forgets and reloads from the tables."""
VALUE_REFUSALS = (
    asyncpg.NumericValueOutOfRangeError, asyncpg.InvalidTextRepresentationError,
    asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError,
    asyncpg.StringDataRightTruncationError, asyncpg.DatetimeFieldOverflowError,
    asyncpg.InvalidDatetimeFormatError,
)
"""The database refusing a value the request carried: the caller gets the error itself, which the HTTP
layer answers with 400 like the same refusal on a read; anything else failing is a 500."""
RECONNECT_GRACE = 1.0
"""A batch that finds the connection just lost waits this long for the first reconnection attempt
(a terminated backend, a connection dropped while idle) before its commands are refused."""
STOP_TIMEOUT = 3.0
"""Longest wait at shutdown for queued commands to finish (a database that went away answers none)."""


class StreamVersionConflict(Conflict):
    """Another command changed the stream since the caller read it (optimistic concurrency)."""

    code = "eventlog.stream_version_conflict"
    title = "The stream has changed since you read it"


class OutcomeUnknown(Unavailable):
    """The connection broke while the command's transaction was committing: it may or may not be in the log."""

    code = "eventlog.outcome_unknown"
    title = "The connection to the database broke while the command was committing; it may or may not be written"


class _CommitInterrupted(Exception):
    """Raised inside the writer when COMMIT was sent but no answer came back."""


class IdempotencyKeyReused(RuleViolation):
    """The same Idempotency-Key was already used for a different request."""

    code = "idempotency.key_reused"
    title = "This Idempotency-Key was already used with a different request"


class CommandResult(msgspec.Struct, kw_only=True, frozen=True):
    """What a command returned, the log positions it produced, and whether this was a replay."""

    response: Any
    first_position: int | None
    last_position: int | None
    replayed: bool = False


Handler = Callable[["WriteContext"], Awaitable[Any]]


class Idempotency(msgspec.Struct, kw_only=True, frozen=True):
    scope: str
    key: str
    request_hash: bytes

    @classmethod
    def of(cls, scope: str, key: str, command: str, body: Any) -> Idempotency:
        fingerprint = msgspec.json.encode({"command": command, "body": body}, order="sorted")
        return cls(scope=scope, key=key, request_hash=hashlib.sha256(fingerprint).digest())


class _Job:
    __slots__ = ("handler", "meta", "idempotency", "streams", "savepoint", "future", "expects", "memo_only")

    def __init__(self, handler: Handler, meta: EventMeta, idempotency: Idempotency | None,
                 streams: Sequence[str], savepoint: bool, expects: dict[str, int] | None = None) -> None:
        self.expects = expects
        self.handler = handler
        self.meta = meta
        self.idempotency = idempotency
        self.streams = streams
        self.savepoint = savepoint
        self.memo_only = getattr(handler, "decides_from_memo", False)
        """The handler reads only the writer's memo (and asks before reading tables): its
        batch-projectable events may be applied later, together with others."""
        self.future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()


class WriteContext:
    """What a command handler may do: read on the writer's transaction and append events.

    Appending applies the events' projectors at once, on the same transaction, so a command
    reads its own writes and its projection rows commit (or vanish) with its events.
    """

    def __init__(self, writer: Writer, conn: asyncpg.Connection, meta: EventMeta, now: dt.datetime,
                 expects: dict[str, int] | None = None, *, defer: bool = False) -> None:
        self._writer = writer
        self.settings = writer.settings
        self.conn = conn
        self.meta = meta
        self.now = now
        self.positions: list[int] = []
        self.client_expects: dict[str, int] = dict(expects or {})
        self.memo = writer.memo
        """Hot state remembered by the writer (see registry.eventlog.memo)."""
        self._defer = defer
        """Hold back batch-projectable events (a memo-only command: nothing it reads needs them yet)."""

    async def read_projections(self) -> None:
        """Call before reading projection tables from a memo-only handler: applies held-back events."""
        await self._writer._apply_deferred(self.conn)

    @property
    def next_position(self) -> int:
        """The position the next appended event will take (stable within this command)."""
        return self._writer._head_position + 1

    @property
    def business_date(self) -> dt.date:
        return business_date(self.now)

    async def stream_version(self, stream_id: str) -> int:
        """Current version of a stream, NO_STREAM (-1) if it has no events yet."""
        return await self._writer._stream_version(self.conn, stream_id)

    async def append(self, stream_id: str, expected_version: int | None, events: Sequence[NewEvent]) -> list[int]:
        """Append events to a stream that must be at `expected_version` (None: whatever it is).

        A version the client stated (HTTP If-Match) for this stream is checked too: the client
        decided on what it saw at that version, so a stream that has moved since is a conflict.
        """
        current = await self.stream_version(stream_id)
        client_expected = self.client_expects.get(stream_id)
        if client_expected is not None and current != client_expected:
            raise StreamVersionConflict(
                f"stream {stream_id} is at version {current}; you read version {client_expected}",
                stream=stream_id, expected_version=client_expected, actual_version=current,
            )
        if expected_version is not None and current != expected_version:
            raise StreamVersionConflict(
                f"stream {stream_id} is at version {current}, the command expected {expected_version}",
                stream=stream_id, expected_version=expected_version, actual_version=current,
            )
        writer = self._writer
        positions = writer._stage(stream_id, current, events, self.meta, self.now)
        self.positions.extend(positions)
        for position, event in zip(positions, events):
            record = EventRecord(
                position=position, stream=stream_id, type=event.type, data=event.data, actor=self.meta.actor,
                recorded_at=self.now, effective_date=event.effective_date,
            )
            batch = projection.batch_projector(event.type) if self._defer else None
            if batch is not None:
                writer._deferred.append((batch, record))
            else:
                await writer._apply_deferred(self.conn)  # projections apply in log order
                await projection.apply(self.conn, record)
            writer.memo.observe(record)
        return positions


class Writer:
    """Runs commands serially in batches; see the module docstring."""

    def __init__(self, dsn: str, *, max_batch: int = 256, settings: Any = None) -> None:
        self._dsn = dsn
        self.settings = settings
        """The market's settings, for rules that read them (handlers see them as ctx.settings)."""
        self.clock: Clock = market_clock(getattr(settings, "clock", None))
        """When commands happen: the market's one clock (`REGISTRY_CLOCK`, else the system's)."""
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._settled = asyncio.Event()
        """Set once the keeper's latest attempt to connect has ended, either way."""
        self._in_flight: list[_Job] = []
        self.unavailable: str | None = "not started"
        """Why the writer cannot write right now (what readiness reports); None while it can."""
        self._retry_at = 0.0
        """When (time.monotonic()) the next connection attempt is due while unavailable."""
        self.reconnects = 0
        """How many times a lost connection was replaced (a counter for monitoring)."""
        # State valid only while we hold the writer lock and nobody else wrote meanwhile.
        self._head_position = -1
        self._head_hash = GENESIS_HASH
        self._versions: dict[str, int] = {}
        self.memo = Memo()
        # Events of memo-only commands whose projection is held back to be applied together.
        self._deferred: list[tuple[projection.BatchProjector, EventRecord]] = []
        # Within a batch: staged rows and the undo log for the current command.
        self._rows: list[tuple[Any, ...]] = []  # event rows in table column order
        self._undo: dict[str, int | None] = {}
        self.batches = 0
        self.commands = 0
        self.caught_up = 0
        """Events another process appended that the memory was brought forward through (not forgotten)."""
        self.on_batch: Callable[[int, float], None] | None = None
        """Told each committed batch's command count and seconds from start to commit (metrics)."""

    # -- lifecycle ------------------------------------------------------------------------

    @contextlib.contextmanager
    def clock_at(self, moment: dt.datetime) -> Iterator[None]:
        """Commands inside the block happen at `moment` (loading back-dated history: the demo, the
        benches); the market's clock is put back after."""
        previous = self.clock
        self.clock = fixed_clock(moment)
        try:
            yield
        finally:
            self.clock = previous

    async def start(self) -> None:
        """Connect (failing if the database cannot be reached now), then start taking commands."""
        if self._task is not None:
            return
        self._adopt(await self._open_connection())
        self._task = asyncio.create_task(self._run(), name="registry-writer")
        self._keeper = asyncio.create_task(self._keep_connected(), name="registry-writer-connection")

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Finish queued commands (waiting at most `timeout` seconds), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("writer stopping with commands unfinished after %.0f s", timeout)
        if self.commands:
            log.info("writer stopping: %d commands in %d batches (%.1f per batch)", self.commands, self.batches,
                     self.commands / max(self.batches, 1))
        cut_short = list(self._in_flight)
        tasks = (self._task, self._keeper)
        for task in tasks:
            task.cancel()  # type: ignore[union-attr]
        await asyncio.wait(tasks, timeout=1.0)  # type: ignore[arg-type]  # a batch stuck on a dead socket is left behind
        self._task = self._keeper = None
        # Whatever was cut short is answered: a batch in flight may have committed, a queued command did not run.
        self._answer(cut_short, OutcomeUnknown(
            "the service stopped while the command was being written; send it again with the same "
            "Idempotency-Key to learn its outcome"))
        while not self._queue.empty():
            self._answer([self._queue.get_nowait()], DatabaseUnavailable.now("the service is stopping"))
            self._queue.task_done()
        conn, self._conn = self._conn, None
        self.unavailable = "stopped"
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 1.0)
            except Exception:  # noqa: BLE001 - a dead or stuck connection is simply dropped
                conn.terminate()

    # -- the connection -------------------------------------------------------------------

    async def _open_connection(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self._dsn, timeout=outage.CONNECT_TIMEOUT,
                                     server_settings={"application_name": APPLICATION_NAME})
        try:
            # Everything the writer reads is a lookup by key. Statistics taken while a table was small (a new
            # market, or right after a bulk load) made the planner scan the idempotency keys for every batch
            # until autoanalyze caught up; on this connection an index is always preferred.
            await conn.execute("SET enable_seqscan = off")
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._on_closed)
        return conn

    def _adopt(self, conn: asyncpg.Connection) -> None:
        """A fresh connection: whatever was remembered is forgotten (the log may have moved on meanwhile)."""
        self._forget()
        self._conn = conn
        self.unavailable = None
        self._lost.clear()
        self._settled.set()

    def _drop(self, conn: asyncpg.Connection, why: str) -> None:
        """Give up a broken connection; the keeper replaces it."""
        if conn is not self._conn:
            return
        log.warning("writer lost its database connection: %s", why)
        self._forget()
        self._conn = None
        self.unavailable = f"connection lost: {why}"
        self._retry_at = time.monotonic()
        self._settled = asyncio.Event()
        self._lost.set()
        if not conn.is_closed():
            conn.terminate()

    def _on_closed(self, conn: asyncpg.Connection) -> None:
        """asyncpg saw the socket close (a restart, a terminated backend): reconnect now, not at the next command."""
        if not self._in_flight:
            self._drop(conn, "the server closed the connection")
        # during a batch, the batch meets the closed connection itself and drops it

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            conn = await outage.reconnect(self._open_connection, "the writer", self._note_failure)
            self.reconnects += 1
            self._adopt(conn)
            log.warning("writer reconnected to the database (reconnection %d)", self.reconnects)

    def _note_failure(self, exc: BaseException, delay: float) -> None:
        self.unavailable = f"cannot connect: {outage.describe(exc)}"
        self._retry_at = time.monotonic() + delay
        self._settled.set()

    def _refusal(self) -> DatabaseUnavailable:
        return DatabaseUnavailable.now(f"the writer: {self.unavailable}", self._retry_at - time.monotonic())

    @staticmethod
    def _answer(jobs: Sequence[_Job], error: BaseException) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(error)

    @property
    def queue_depth(self) -> int:
        """Commands waiting for their batch."""
        return self._queue.qsize()

    # -- submitting -----------------------------------------------------------------------

    async def execute(self, handler: Handler, meta: EventMeta, *, idempotency: Idempotency | None = None,
                      streams: Sequence[str] = (), savepoint: bool = True,
                      expects: dict[str, int] | None = None) -> CommandResult:
        """Run `handler` as one atomic command and return once it is committed.

        `streams` names streams the handler will touch, so their versions are read in one
        query for the whole batch; `expects` holds versions the client says it read (If-Match).
        `savepoint=False` is for handlers whose refusals all happen before their first write:
        they need no savepoint, and a database error in one isolates it by re-running the batch's
        commands one per transaction.
        """
        if self._task is None:
            raise RuntimeError("the writer is not running")
        job = _Job(handler, meta, idempotency, streams, savepoint, expects)
        self._queue.put_nowait(job)
        return await asyncio.shield(job.future)

    async def append(self, stream_id: str, expected_version: int | None, events: Sequence[NewEvent],
                     meta: EventMeta, *, idempotency: Idempotency | None = None) -> CommandResult:
        """Append events with no projection work: the plain, fastest path."""

        async def handler(ctx: WriteContext) -> dict[str, Any]:
            positions = await ctx.append(stream_id, expected_version, events)
            return {"stream": stream_id, "positions": positions}

        return await self.execute(handler, meta, idempotency=idempotency, streams=(stream_id,), savepoint=False)

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self._max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            self._in_flight = jobs
            try:
                await self._process(jobs)
            except Exception:  # never let the loop die; every job gets an answer
                log.exception("writer batch failed")
                self._answer(jobs, InternalError("the write failed; nothing was written"))
            finally:
                self._in_flight = []
                for _ in jobs:
                    self._queue.task_done()

    async def _usable_connection(self) -> asyncpg.Connection | None:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        if conn is not None:
            self._drop(conn, "the server closed the connection")
        if not self._settled.is_set():
            # lost just now and not yet retried: the first attempt is usually quick (a terminated backend)
            try:
                await asyncio.wait_for(self._settled.wait(), RECONNECT_GRACE)
            except TimeoutError:
                return None
        return self._conn

    async def _process(self, jobs: list[_Job], *, retry: bool = True) -> None:
        conn = await self._usable_connection()
        if conn is None:
            self._answer(jobs, self._refusal())
            return
        started = time.perf_counter()
        try:
            outcomes = await self._run_batch(conn, jobs)
        except _CommitInterrupted as exc:
            self._drop(conn, outage.describe(exc.__cause__ or exc))
            log.error("the connection broke during COMMIT of %d command(s); their outcome is unknown", len(jobs))
            self._answer(jobs, OutcomeUnknown(
                "the connection to the database broke while the command was committing, so it may or may not "
                "have been written; send it again with the same Idempotency-Key: if it was written you get its "
                "original answer, otherwise it runs now", retry_after=1))
            return
        except (asyncpg.PostgresError, asyncpg.InterfaceError, *outage.LOST) as exc:
            self._forget()
            if outage.lost(exc, conn):
                # The transaction never reached COMMIT, so the server rolled it back: nothing was written.
                self._drop(conn, outage.describe(exc))
                if retry:
                    await self._process(jobs, retry=False)  # on the replacement, if there is one already
                else:
                    self._answer(jobs, self._refusal())
                return
            if len(jobs) == 1:
                log.error("command %s failed in the database: %s", jobs[0].meta.command, exc)
                jobs[0].future.set_exception(exc if isinstance(exc, VALUE_REFUSALS) else InternalError(
                    "the write failed in the database; nothing was written"))
                return
            # Isolate the culprit: every command gets its own transaction.
            for job in jobs:
                await self._process([job])
            return
        self.batches += 1
        self.commands += len(jobs)
        if self.on_batch is not None:
            self.on_batch(len(jobs), time.perf_counter() - started)
        for job, outcome in zip(jobs, outcomes):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    async def _catch_up(self, conn: asyncpg.Connection, position: int, hash_: bytes) -> bool:
        """Another process appended since our last batch (a second service instance on the database):
        bring the memory forward through its events, in log order, with the same watchers our own
        appends go through — instead of forgetting it, which would make every instance reload its hot
        state at every batch. False (forget instead) when the memory is not known to be current at our
        last head, the gap is large, or the events read are not exactly the chain from our head to
        theirs."""
        since = self._head_position
        if since < -1 or not since < position <= since + CATCH_UP_LIMIT:
            return False
        # dense and chained by the table's own guard: the first must follow our head, the last is theirs
        rows = await conn.fetch("SELECT canonical, hash, prev_hash FROM event WHERE position > $1 AND position <= $2 "
                                "ORDER BY position", since, position)
        if len(rows) != position - since or bytes(rows[0]["prev_hash"]) != self._head_hash \
                or bytes(rows[-1]["hash"]) != hash_:
            return False
        try:
            events = [canonical.decode(row["canonical"]) for row in rows]
        except canonical.UNDECODABLE:
            return False
        for e in events:
            self._versions[e.stream] = e.version
            self.memo.observe(EventRecord.of(e))
        self.caught_up += len(events)
        return True

    def _forget(self) -> None:
        self._head_position = -2  # unknown: re-read and drop cached versions next batch
        self._versions.clear()
        self.memo.clear()
        self._rows.clear()
        self._deferred.clear()

    async def _run_batch(self, conn: asyncpg.Connection, jobs: list[_Job]) -> list[CommandResult | BaseException]:
        outcomes: list[CommandResult | BaseException] = []
        self._rows = []
        self._deferred = []
        committed_head = (self._head_position, self._head_hash)
        transaction = conn.transaction()
        await transaction.start()
        try:
            head = await conn.fetchrow("SELECT head_position, head_hash FROM writer_begin($1)", WRITER_LOCK)
            position = -1 if head["head_position"] is None else head["head_position"]
            hash_ = GENESIS_HASH if head["head_hash"] is None else bytes(head["head_hash"])
            if (position != self._head_position or hash_ != self._head_hash) and \
                    not await self._catch_up(conn, position, hash_):
                self._versions.clear()  # the memory cannot be brought forward: start again from the tables
                self.memo.clear()
            if len(self._versions) > STREAM_CACHE_LIMIT:
                self._versions.clear()
            self._head_position, self._head_hash = position, hash_
            committed_head = (position, hash_)
            replays = await self._load_idempotency(conn, jobs)
            await self._prefetch_versions(conn, jobs)
            await prefetch(conn, self.memo, [job.handler for job in jobs if job.memo_only])
            new_keys: dict[tuple[str, str], tuple[_Job, CommandResult]] = {}
            now = self.clock()
            for job in jobs:
                outcomes.append(await self._run_job(conn, job, replays, new_keys, now))
            await self._apply_deferred(conn)
            await self._flush(conn, new_keys, now)
        except BaseException:
            self._head_position, self._head_hash = committed_head
            if not conn.is_closed():  # (a closed one was rolled back by the server)
                try:
                    await transaction.rollback()
                except BaseException as exc:  # the connection is unusable: let it go, the keeper replaces it
                    self._drop(conn, f"rollback failed: {outage.describe(exc)}")
            raise
        try:
            await transaction.commit()
        except BaseException as exc:
            self._head_position, self._head_hash = committed_head
            if outage.lost(exc, conn):
                raise _CommitInterrupted("COMMIT got no answer") from exc
            raise
        return outcomes

    async def _run_job(self, conn: asyncpg.Connection, job: _Job, replays: dict, new_keys: dict,
                       now: dt.datetime) -> CommandResult | BaseException:
        idem = job.idempotency
        if idem is not None:
            earlier = replays.get((idem.scope, idem.key))
            if earlier is None and (idem.scope, idem.key) in new_keys:
                first_job, first_result = new_keys[(idem.scope, idem.key)]
                earlier = (first_job.idempotency.request_hash, first_result)
            if earlier is not None:
                request_hash, result = earlier
                if request_hash != idem.request_hash:
                    return IdempotencyKeyReused(
                        f"Idempotency-Key {idem.key!r} was first used with a different request",
                        idempotency_key=idem.key,
                    )
                return msgspec.structs.replace(result, replayed=True)
        if not job.memo_only:
            await self._apply_deferred(conn)  # this handler may read projection tables
        mark, deferred_mark = len(self._rows), len(self._deferred)
        head = (self._head_position, self._head_hash)
        self._undo = {}
        savepoint = conn.transaction() if job.savepoint else None
        if savepoint is not None:
            await savepoint.start()
        ctx = WriteContext(self, conn, job.meta, now, job.expects, defer=job.memo_only)
        try:
            response = await job.handler(ctx)
            encoded = msgspec.json.encode(response)
        except BaseException as exc:
            if savepoint is not None:
                await savepoint.rollback()
            del self._rows[mark:]
            del self._deferred[deferred_mark:]
            if ctx.positions:
                self.memo.clear()  # it remembered events that are now undone
            self._head_position, self._head_hash = head
            for stream_id, version in self._undo.items():
                if version is None:
                    self._versions.pop(stream_id, None)
                else:
                    self._versions[stream_id] = version
            if isinstance(exc, RegistryError) or (isinstance(exc, VALUE_REFUSALS) and savepoint is not None):
                return exc
            if isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError)) and savepoint is None:
                raise  # the transaction is unusable; the caller isolates the failing command
            if outage.lost(exc, conn):
                raise  # the whole batch is lost with its connection
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.exception("command %s failed", job.meta.command)
            return InternalError("the command failed; nothing was written", command=job.meta.command)
        if savepoint is not None:
            await savepoint.commit()
        positions = ctx.positions
        result = CommandResult(
            response=msgspec.json.decode(encoded),
            first_position=positions[0] if positions else None,
            last_position=positions[-1] if positions else None,
        )
        if idem is not None:
            new_keys[(idem.scope, idem.key)] = (job, result)
        return result

    # -- storage --------------------------------------------------------------------------

    async def _load_idempotency(self, conn: asyncpg.Connection, jobs: list[_Job]) -> dict:
        keyed = [j.idempotency for j in jobs if j.idempotency is not None]
        if not keyed:
            return {}
        # LATERAL ... OFFSET 0 keeps this an index lookup per key whatever plan the statement cache holds
        # (a plan frozen while the table was small would otherwise scan every stored key).
        rows = await conn.fetch(
            "SELECT i.* FROM unnest($1::text[], $2::text[]) AS k(scope, key) CROSS JOIN LATERAL ("
            "SELECT scope, key, request_hash, response, first_position, last_position FROM idempotency_key x "
            "WHERE x.scope = k.scope AND x.key = k.key OFFSET 0) AS i",
            [i.scope for i in keyed], [i.key for i in keyed],
        )
        return {
            (r["scope"], r["key"]): (
                bytes(r["request_hash"]),
                CommandResult(response=msgspec.json.decode(r["response"]), first_position=r["first_position"],
                              last_position=r["last_position"]),
            )
            for r in rows
        }

    async def _prefetch_versions(self, conn: asyncpg.Connection, jobs: list[_Job]) -> None:
        wanted = {s for j in jobs for s in j.streams if s not in self._versions}
        if not wanted:
            return
        rows = await conn.fetch(
            "SELECT k.stream_id, v.version FROM unnest($1::text[]) AS k(stream_id) CROSS JOIN LATERAL ("
            "SELECT max(stream_version) AS version FROM event e WHERE e.stream_id = k.stream_id OFFSET 0) AS v "
            "WHERE v.version IS NOT NULL",
            list(wanted),
        )
        found = {r["stream_id"]: r["version"] for r in rows}
        for stream_id in wanted:
            self._versions[stream_id] = found.get(stream_id, NO_STREAM)

    async def _stream_version(self, conn: asyncpg.Connection, stream_id: str) -> int:
        version = self._versions.get(stream_id)
        if version is None:
            version = await conn.fetchval("SELECT max(stream_version) FROM event WHERE stream_id = $1", stream_id)
            version = NO_STREAM if version is None else version
            self._versions[stream_id] = version
        return version

    async def _apply_deferred(self, conn: asyncpg.Connection) -> None:
        """Apply held-back projections, in log order, each run of one kind in one call."""
        while self._deferred:
            batch_projector = self._deferred[0][0]
            run = 0
            while run < len(self._deferred) and self._deferred[run][0] is batch_projector:
                run += 1
            records = [record for _, record in self._deferred[:run]]
            await batch_projector(conn, records)
            del self._deferred[:run]

    def _stage(self, stream_id: str, current: int, events: Sequence[NewEvent], meta: EventMeta,
               now: dt.datetime) -> list[int]:
        positions = []
        if stream_id not in self._undo:
            self._undo[stream_id] = self._versions.get(stream_id)
        version = current
        for event in events:
            try:
                canonical.check_data(event.data)
            except canonical.NotCanonical as exc:
                raise InternalError(f"event {event.type} cannot be stored: {exc}") from exc
            version += 1
            position = self._head_position + 1
            doc = CanonicalEvent(
                position=position, stream=stream_id, version=version, type=event.type,
                schema=event.schema_version, data=event.data, meta=meta, recorded_at=now,
                effective_date=event.effective_date, prev_hash=self._head_hash.hex(),
            )
            raw = canonical.encode(doc)
            hash_ = canonical.digest(raw)
            self._rows.append((position, stream_id, version, event.type, event.schema_version, meta.actor,
                               now, event.effective_date, raw, hash_, self._head_hash))
            self._head_position, self._head_hash = position, hash_
            positions.append(position)
        self._versions[stream_id] = version
        return positions

    async def _flush(self, conn: asyncpg.Connection, new_keys: dict, now: dt.datetime) -> None:
        """The batch's events, its new idempotency keys and the live tail's wake-up: one statement."""
        parts, args = [], []
        if self._rows:
            columns = [list(column) for column in zip(*self._rows)]
            parts.append(
                "e AS (INSERT INTO event (position, stream_id, stream_version, event_type, schema_version, actor, "
                "recorded_at, effective_date, canonical, hash, prev_hash) "
                "SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::smallint[], $6::text[], "
                "$7::timestamptz[], $8::date[], $9::bytea[], $10::bytea[], $11::bytea[]) ORDER BY 1)")
            args += columns
        if new_keys:
            keys = [(job.idempotency, job.meta.command, result) for job, result in new_keys.values()]
            n = len(args)
            parts.append(
                "k AS (INSERT INTO idempotency_key (scope, key, command, request_hash, response, first_position, "
                f"last_position, created_at) SELECT *, ${n + 8}::timestamptz FROM unnest(${n + 1}::text[], "
                f"${n + 2}::text[], ${n + 3}::text[], ${n + 4}::bytea[], ${n + 5}::bytea[], ${n + 6}::bigint[], "
                f"${n + 7}::bigint[]))")
            args += [[i.scope for i, _, _ in keys], [i.key for i, _, _ in keys], [c for _, c, _ in keys],
                     [i.request_hash for i, _, _ in keys], [msgspec.json.encode(r.response) for _, _, r in keys],
                     [r.first_position for _, _, r in keys], [r.last_position for _, _, r in keys], now]
        if not parts:
            return
        if self._rows:
            # Live-tail readers wake on this; PostgreSQL delivers it only when the batch commits.
            tail = f"SELECT pg_notify(${len(args) + 1}, ${len(args) + 2})"
            args += [LOG_CHANNEL, str(self._rows[-1][0])]
        else:
            tail = "SELECT 1"
        await conn.execute("WITH " + ", ".join(parts) + " " + tail, *args)
        self._rows = []
