"""`registry drill failover`: lose the primary under write load, promote the standby, count what was lost.

On one machine, from the embedded PostgreSQL's own binaries: a primary and a **synchronous** standby
(`pg_basebackup -R`, `synchronous_standby_names`, `synchronous_commit = on`), and `registry serve` on
the multi-host URL (`host=<primary>,<standby>` with `target_session_attrs=read-write`) — the shape of
a CloudNativePG cluster behind its `-rw` service. Clients write under load, each retrying a 503 with
the same Idempotency-Key as the service tells them to. Then the primary's whole process tree is
killed with SIGKILL (the host is gone), the standby is promoted (`pg_ctl promote`: what the operator
or the operator's controller does), and the service must find the new primary by itself.

The report: writes acknowledged, acknowledged writes missing from the new primary (must be 0),
the unavailability window (kill → first acknowledged write), and `registry verify` and
`registry rebuild` run against the new primary.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec
import psutil

from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres

STANDBY_NAME = "registry_standby"

PRIMARY_SETTINGS = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "wal_keep_size": "'512MB'",
    "synchronous_commit": "on",
}
"""The primary's settings; `synchronous_standby_names` is set once the standby streams (before
that, every commit — createdb's too — would wait for a standby that does not exist yet)."""


class DrillReport(msgspec.Struct, kw_only=True):
    acknowledged: int
    """Writes the service answered 2xx (each with its log position)."""
    lost: int
    """Acknowledged writes whose event or idempotency key is missing on the promoted standby."""
    duplicated: int
    """Investors registered twice (a retry must replay its first answer, never write again)."""
    acknowledged_after_failover: int
    refused_503: int
    """503 answers (database.unavailable / eventlog.outcome_unknown) the clients retried."""
    other_failures: dict[str, int]
    """Any other status or transport error, by kind: a healthy drill has none."""
    unavailable_seconds: float | None
    """From the kill to the first acknowledged write sent after it; None if writes never resumed."""
    promote_seconds: float
    """From the kill to the standby accepting writes."""
    log_size: int
    verify_exit: int
    rebuild_exit: int

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicated == 0 and self.acknowledged_after_failover > 0
                and not self.other_failures and self.verify_exit == 0 and self.rebuild_exit == 0)


def _query(dsn: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(dsn).query).items()}


def multi_host_dsn(dsns: list[str]) -> str:
    """One DSN naming every node's socket folder and port, which connects only to the one accepting writes."""
    first = urlsplit(dsns[0])
    hosts = ",".join(_query(d)["host"] for d in dsns)
    ports = ",".join(_query(d).get("port", "5432") for d in dsns)
    return f"{first.scheme}://{first.netloc}{first.path}?host={hosts}&port={ports}&target_session_attrs=read-write"


def _kill_tree(pid: int) -> None:
    """SIGKILL a postmaster and every backend it started, at once: the machine it ran on is gone."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def build_standby(primary: EmbeddedPostgres, base: Path) -> EmbeddedPostgres:
    """A streaming, synchronous standby of `primary` in `base`, started and caught up."""
    standby = EmbeddedPostgres(base)
    standby.prepare()
    primary_conn = (f"host={primary.socket_dir} port={primary.port} user={SUPERUSER} "
                    f"application_name={STANDBY_NAME}")
    standby.run([standby.binary("pg_basebackup"), "-D", str(standby.pgdata), "-d", primary_conn,
                 "-X", "stream", "-c", "fast", "-R"], timeout=600)
    standby.adopt_copied_cluster({
        "primary_conninfo": f"'{primary_conn}'",
        # After promotion this node is alone: it must not wait for a standby of its own.
        "synchronous_standby_names": "''",
    })
    standby.start()
    return standby


async def _make_synchronous(primary: EmbeddedPostgres, timeout: float = 60) -> None:
    """Every commit on the primary now waits for the standby's flush; returns once it does."""
    conn = await asyncpg.connect(primary.dsn(SUPERUSER, "postgres"))
    try:
        await conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        await conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while await conn.fetchval("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


class _Load:
    """`clients` writers registering investors back to back, each write retried with its key until answered."""

    def __init__(self, url: str, token: str, clients: int) -> None:
        self.url, self.token, self.clients = url, token, clients
        self.acked: dict[str, tuple[int, float, float]] = {}  # key → (position, attempt sent, acknowledged)
        self.refused_503 = 0
        self.failures: dict[str, int] = {}
        self.stop = asyncio.Event()

    async def _one(self, client, c: int) -> None:
        n = 0
        while not self.stop.is_set():
            key = f"drill-{c}-{n}"
            body = {"kind": "natural_person", "name": f"演练投资者 {c}-{n}",
                    "identity_document_digest": f"{c:08x}{n:056x}"}
            while True:  # the same key until the service answers for it
                sent = time.monotonic()
                try:
                    r = await client.post("/investors", json=body, headers={"Idempotency-Key": key})
                except Exception as exc:  # noqa: BLE001 - transport errors are retried and counted
                    self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 503:
                    self.refused_503 += 1
                    await asyncio.sleep(min(float(r.headers.get("Retry-After", "1")), 1.0) / 4)
                    continue
                if 200 <= r.status_code < 300:
                    self.acked[key] = (r.json()["log"]["first_position"], sent, time.monotonic())
                else:
                    kind = f"HTTP {r.status_code}"
                    self.failures[kind] = self.failures.get(kind, 0) + 1
                break
            n += 1

    async def run(self) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as client:
            await asyncio.gather(*(self._one(client, c) for c in range(self.clients)))


async def _count_lost(dsn: str, acked: dict[str, tuple[int, float, float]]) -> tuple[int, int, int]:
    """(acknowledged writes missing, investors registered twice, log size) on the node at `dsn`."""
    conn = await asyncpg.connect(dsn)
    try:
        keys = await conn.fetch("SELECT k.key, k.first_position FROM idempotency_key k "
                                "JOIN event e ON e.position = k.first_position WHERE k.key LIKE 'drill-%'")
        duplicated = await conn.fetchval("SELECT count(*) FROM (SELECT name FROM investor WHERE name LIKE '演练投资者%' "
                                         "GROUP BY name HAVING count(*) > 1) twice")
        size = await conn.fetchval("SELECT count(*) FROM event")
    finally:
        await conn.close()
    stored = {r["key"]: r["first_position"] for r in keys}
    lost = sum(1 for key, (position, *_) in acked.items() if stored.get(key) != position)
    return lost, duplicated, size


def _cli(args: list[str], env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-m", "registry.cli", *args], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=600).returncode


async def failover_drill(*, clients: int = 8, before: float = 5.0, after: float = 10.0, base: Path | None = None,
                         say=lambda message: None) -> DrillReport:
    """Run the drill in `base` (a fresh temporary folder by default, removed afterwards)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from registry.access.tokens import Role, TokenService
    from registry.bench.transfers import start_server
    from registry.db.database import APP_ROLE
    from registry.db.migrate import apply_migrations
    from registry.settings import Settings

    owned = base is None
    base = Path(tempfile.mkdtemp(prefix="registry-drill-")) if base is None else base
    primary = EmbeddedPostgres(base / "primary", settings=PRIMARY_SETTINGS)
    standby: EmbeddedPostgres | None = None
    proc = None
    try:
        say(f"primary: starting in {primary.pgdata}")
        await asyncio.to_thread(primary.start)
        await apply_migrations(primary.dsn(SUPERUSER, DATABASE), Settings.from_env().resolved_migrations_path())
        say("standby: pg_basebackup -R from the primary, synchronous")
        standby = await asyncio.to_thread(build_standby, primary, base / "standby")
        await _make_synchronous(primary)

        key = Ed25519PrivateKey.generate()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        app = multi_host_dsn([primary.dsn(APP_ROLE), standby.dsn(APP_ROLE)])
        owner = multi_host_dsn([primary.dsn(SUPERUSER), standby.dsn(SUPERUSER)])
        proc, port = await asyncio.to_thread(start_server, base, owner, app, key_pem)
        say(f"service: serving on 127.0.0.1:{port} with DATABASE_URL={app}")

        load = _Load(f"http://127.0.0.1:{port}", TokenService(key).issue("drill-operator", Role.operator), clients)
        running = asyncio.create_task(load.run())
        await asyncio.sleep(before)
        say(f"{len(load.acked)} writes acknowledged; killing the primary (SIGKILL to its whole process tree)")
        killed_at = time.monotonic()
        pid = primary.running_pid()
        if pid is not None:
            await asyncio.to_thread(_kill_tree, pid)
        say("promoting the standby (pg_ctl promote)")
        await asyncio.to_thread(standby.run, [standby.binary("pg_ctl"), "-D", str(standby.pgdata), "-w", "promote"])
        promote_seconds = time.monotonic() - killed_at
        await asyncio.sleep(after)
        load.stop.set()
        await asyncio.wait_for(running, timeout=60)

        # acknowledged by the promoted standby: answers to attempts sent after the kill
        after_kill = sorted(acked for _, sent, acked in load.acked.values() if sent > killed_at)
        lost, duplicated, size = await _count_lost(standby.dsn(SUPERUSER), load.acked)
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "DATABASE_URL"}
        env.update(DATABASE_URL=standby.dsn(APP_ROLE), DATABASE_OWNER_URL=standby.dsn(SUPERUSER),
                   REGISTRY_DATA_DIR=str(base / "serve"))
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        say("registry verify and registry rebuild on the promoted standby")
        verify_exit = await asyncio.to_thread(_cli, ["verify"], env)
        rebuild_exit = await asyncio.to_thread(_cli, ["rebuild"], env)
        return DrillReport(
            acknowledged=len(load.acked), lost=lost, duplicated=duplicated,
            acknowledged_after_failover=len(after_kill), refused_503=load.refused_503,
            other_failures=dict(load.failures),
            unavailable_seconds=round(after_kill[0] - killed_at, 3) if after_kill else None,
            promote_seconds=round(promote_seconds, 3), log_size=size,
            verify_exit=verify_exit, rebuild_exit=rebuild_exit)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        for node in (standby, primary):
            if node is not None:
                try:
                    node.destroy()
                except Exception:  # noqa: BLE001 - the killed primary cannot be stopped by pg_ctl
                    pid = node.running_pid()
                    if pid is not None:
                        _kill_tree(pid)
        if owned:
            shutil.rmtree(base, ignore_errors=True)


def render(report: DrillReport) -> str:
    window = "never" if report.unavailable_seconds is None else f"{report.unavailable_seconds:.2f} s"
    return "\n".join([
        f"acknowledged writes        {report.acknowledged}",
        f"  of them after failover   {report.acknowledged_after_failover}",
        f"lost (must be 0)           {report.lost}",
        f"written twice (must be 0)  {report.duplicated}",
        f"unavailable (kill → write) {window}  (standby promoted {report.promote_seconds:.2f} s after the kill)",
        f"503s retried by clients    {report.refused_503}",
        f"other failures             {report.other_failures or 'none'}",
        f"log size after             {report.log_size}",
        f"registry verify            {'OK' if report.verify_exit == 0 else f'FAILED (exit {report.verify_exit})'}",
        f"registry rebuild           {'OK' if report.rebuild_exit == 0 else f'FAILED (exit {report.rebuild_exit})'}",
        f"drill                      {'PASSED' if report.ok else 'FAILED'}",
    ])
