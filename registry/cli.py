"""The `registry` command: serve, migrate, demo, verify, token, bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import logging
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.db.database import Dsns
from pathlib import Path

from registry.settings import Settings

log = logging.getLogger("registry")

DESCRIPTION = """\
registry — system of record for a regional equity market (区域性股权市场).
Listing pipeline (挂牌/分层) and 认股权 (stock warrant) registry on an append-only, hash-chained event log.

With no DATABASE_URL, every command uses an embedded PostgreSQL under the data folder
(default ./var, or REGISTRY_DATA_DIR, or --data-dir).
"""


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(data_dir=getattr(args, "data_dir", None))


def _configure_logging(verbose: bool = False) -> None:
    from registry.http.request_id import RequestIdLogFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdLogFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("asyncio", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def _database(settings: Settings, *, migrate: bool = True, owner_lock: bool = False) -> Iterator["Dsns"]:
    """Resolve (and start, when embedded) the database; stop the embedded server if we started it."""
    from registry.db.database import resolve
    from registry.db.migrate import apply_migrations

    lock_file = None
    if owner_lock and not settings.database_url:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(settings.data_dir / "serve.lock", "w")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another `registry serve` is running on {settings.data_dir.resolve()}") from None
    dsns = resolve(settings)
    try:
        if migrate:
            applied = asyncio.run(apply_migrations(dsns.owner, settings.resolved_migrations_path(),
                                                   app_password=settings.app_password))
            for migration_id in applied:
                log.info("applied migration %s", migration_id)
        yield dsns
    finally:
        # `serve` owns the embedded server (even one adopted from a crashed run); others stop only their own.
        if dsns.embedded is not None and (owner_lock or dsns.started):
            log.info("stopping embedded PostgreSQL")
            dsns.embedded.stop()
        if lock_file is not None:
            lock_file.close()


def _uvicorn_server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """Uvicorn re-raises SIGINT/SIGTERM after shutting down, which would kill us before the embedded
        PostgreSQL is stopped; here the signal only asks the server to finish, and `serve` cleans up."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server


GRACEFUL_SHUTDOWN_SECONDS = 3
"""After Ctrl-C or SIGTERM, requests still running (live tails, commands waiting on a database that went
away) get this long before they are cut off: the service stops within seconds, whatever the database does."""


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _Server = _uvicorn_server_class()

    from registry.app import create_app
    from registry.db.embedded import Supervisor

    settings = _settings(args)
    with _database(settings, owner_lock=True) as dsns:
        if args.demo:
            from registry.demo import load_demo

            asyncio.run(load_demo(settings, dsns.app))
        app = create_app(settings, dsn=dsns.app)
        url = f"http://{args.host}:{args.port}"
        print(f"registry is serving {settings.market_name} at {url}  (API docs: {url}/schema)", flush=True)
        server = _Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                                        access_log=args.access_log, lifespan="on",
                                        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
        # The embedded server is ours to keep running: restarted if it dies, within bounds.
        supervisor = None if dsns.embedded is None else Supervisor(
            dsns.embedded, give_up=lambda: setattr(server, "should_exit", True),
            max_restarts=settings.embedded_max_restarts, window=settings.embedded_restart_window_seconds)
        # What is loaded by now (modules, the app, the route table) lives as long as the process: keep it
        # out of the garbage collector's scans, and collect the youngest objects less often, so a
        # long-running service with thousands of remembered accounts spends its time on requests.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        if supervisor is not None:
            supervisor.start()
        try:
            server.run()  # returns on Ctrl-C or SIGTERM, after in-flight requests finish
        finally:
            if supervisor is not None:
                supervisor.stop()  # before the embedded server is stopped: no restart after that
    if supervisor is not None and supervisor.gave_up:
        print("registry stopped: the embedded PostgreSQL kept dying (see its server.log)", file=sys.stderr)
        return 3
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with _database(settings, migrate=True):
        print("schema is current")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from registry.demo import load_demo

    settings = _settings(args)
    with _database(settings) as dsns:
        summary = asyncio.run(load_demo(settings, dsns.app, progress=True))
    print(summary)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import asyncpg
    from tqdm import tqdm

    from registry.eventlog.store import verify_log

    if args.export or args.old_checkpoint:
        from registry.audit import offline

        return offline.run(args)  # an exported log and checkpoints, without any database
    settings = _settings(args)

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            try:
                conn = await asyncpg.connect(dsns.app)
            except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError) as exc:
                print(f"nothing to verify: {exc} (run `registry migrate` first)", file=sys.stderr)
                return 2
            try:
                total = await conn.fetchval("SELECT count(*) FROM event")
                with tqdm(total=total, unit="event", desc="verifying", file=sys.stderr,
                          disable=args.quiet) as bar:
                    report = await verify_log(conn, progress=bar.update)
            finally:
                await conn.close()
        if report.ok:
            print(f"OK: {report.checked} events, chain intact; head hash {report.head_hash}")
            return 0
        print(f"FAILED at position {report.first_bad_position}: {report.problem} "
              f"({report.checked} events before it verified)", file=sys.stderr)
        return 1

    return asyncio.run(run())


def cmd_export(args: argparse.Namespace) -> int:
    import asyncpg
    from tqdm import tqdm

    from registry.audit.export import export_jsonl

    settings = _settings(args)

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            conn = await asyncpg.connect(dsns.app)
            try:
                total = await conn.fetchval("SELECT count(*) FROM event")
                with open(args.out, "wb") as out, tqdm(total=total, unit="event", desc="exporting", file=sys.stderr,
                                                         disable=args.quiet) as bar:
                    summary = await export_jsonl(conn, out, progress=bar.update)
            finally:
                await conn.close()
        print(f"exported {summary.events} events to {args.out}; head hash {summary.head_hash}")
        return 0

    return asyncio.run(run())


def cmd_checkpoint(args: argparse.Namespace) -> int:
    import asyncpg

    from registry.audit.checkpoint import CheckpointSigner
    from registry.audit.checkpoint import load_or_create_key as load_checkpoint_key
    from registry.audit.store import sign_current

    settings = _settings(args)
    signer = CheckpointSigner(load_checkpoint_key(settings.data_dir, settings.checkpoint_key),
                              origin=settings.market_origin)
    if args.action == "public-key":
        print(signer.vkey)
        return 0

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            conn = await asyncpg.connect(dsns.app)
            try:
                stored = await sign_current(conn, signer, signed_by="cli")
            finally:
                await conn.close()
        note = stored.note
        if args.out:
            Path(args.out).write_text(note, encoding="utf-8")
            print(f"signed checkpoint of {stored.tree_size} events written to {args.out}")
        else:
            print(note, end="")
        return 0

    return asyncio.run(run())


def cmd_valuation(args: argparse.Namespace) -> int:
    from registry.valuation.cli import main as valuation_main

    return valuation_main(args)


def cmd_rebuild(args: argparse.Namespace) -> int:
    import asyncpg
    from tqdm import tqdm

    from registry.eventlog.rebuild import rebuild

    settings = _settings(args)

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            conn = await asyncpg.connect(dsns.app)
            try:
                total = await conn.fetchval("SELECT count(*) FROM event")
                with tqdm(total=total, unit="event", desc="replaying", file=sys.stderr, disable=args.quiet) as bar:
                    report = await rebuild(conn, apply=args.apply, progress=bar.update)
            finally:
                await conn.close()
        for d in report.differences:
            print(f"{d.table}: {d.only_before} row(s) only in the projection, {d.only_rebuilt} only in the replay")
        if report.identical:
            print(f"OK: replaying {report.events} events reproduces all {report.tables} projection tables exactly")
            return 0
        print("projections rebuilt from the log" if report.applied else
              "projections differ from the log (nothing changed; --apply rebuilds them)")
        return 0 if report.applied else 1

    return asyncio.run(run())


def cmd_token(args: argparse.Namespace) -> int:
    import datetime as dt

    from cryptography.hazmat.primitives import serialization

    from registry.access.tokens import Role, TokenService, load_or_create_key

    settings = _settings(args)
    tokens = TokenService(load_or_create_key(settings.data_dir, settings.token_key))
    if args.action == "public-key":
        print(tokens.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode(), end="")
        return 0
    if not args.role or not args.subject:
        print("token issue needs --role and --subject", file=sys.stderr)
        return 2
    print(tokens.issue(args.subject, Role(args.role), ttl=dt.timedelta(hours=args.hours)))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.target == "valuation":
        from registry.valuation.bench import main as bench_valuation

        bench_valuation(args.seconds)
        return 0
    if args.target == "audit":
        from registry.bench.audit import main as bench_audit

        return bench_audit(args)
    if args.target == "transfers":
        from registry.bench.transfers import main as bench_transfers

        return bench_transfers(args)
    from registry.bench.eventlog import main as bench_eventlog

    return bench_eventlog(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, func) -> argparse.ArgumentParser:  # noqa: ANN001
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--data-dir", type=Path, default=None,
                       help="data folder for the embedded PostgreSQL and keys (default ./var; env REGISTRY_DATA_DIR)")
        p.set_defaults(func=func)
        return p

    p = add("serve", "run the HTTP service (starts the embedded PostgreSQL unless DATABASE_URL is set; "
                     "applies pending migrations)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--demo", action="store_true", help="load the demo market first (idempotent)")
    p.add_argument("--access-log", action="store_true", help="log every request")

    add("migrate", "apply pending schema migrations as the database owner", cmd_migrate)
    add("demo", "load a small demo market; running it again changes nothing", cmd_demo)
    p = add("verify", "recompute the event log's hash chain (or, with --export, check an exported log against "
                      "signed checkpoints without a database); exit 1 naming the first bad position", cmd_verify)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from registry.audit.offline import add_arguments as add_offline_arguments

    add_offline_arguments(p)

    p = add("export", "export the event log as JSON Lines (canonical bytes, hashes) for offline verification",
            cmd_export)
    p.add_argument("what", choices=["log"], help="what to export")
    p.add_argument("--out", type=Path, required=True, help="file to write")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("token", "issue a signed bearer token for local use, or print the public key that checks them",
            cmd_token)
    p.add_argument("action", choices=["issue", "public-key"])
    p.add_argument("--role", choices=["operator", "enterprise", "investor", "regulator"],
                   help="operator (运营机构), enterprise (挂牌企业), investor (投资者), regulator (监管机构)")
    p.add_argument("--subject", help="operator user id, the enterprise's USCC, or the investor id")
    p.add_argument("--hours", type=float, default=8.0, help="validity in hours (default 8)")

    p = add("rebuild", "replay the whole log into empty projections and compare (exit 1 if they differ); "
                       "--apply keeps the rebuilt ones", cmd_rebuild)
    p.add_argument("--apply", action="store_true", help="keep the rebuilt projections")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = add("checkpoint", "sign the log's current tree head (C2SP signed note), or print the verifier key",
            cmd_checkpoint)
    p.add_argument("action", choices=["sign", "public-key"])
    p.add_argument("--out", type=Path, help="write the signed note to this file (default: print it)")

    p = add("valuation", "recompute a past valuation from the inputs stored in the log; exit 1 if any figure "
                         "differs", cmd_valuation)
    from registry.valuation.cli import add_arguments as valuation_arguments

    valuation_arguments(p)

    p = add("bench", "benchmarks that print ratios against a baseline measured in the same run", cmd_bench)
    p.add_argument("target", choices=["eventlog", "transfers", "audit", "valuation"],
                   help="eventlog: appends vs pgbench; transfers: validated transfers over HTTP vs the trivial "
                        "endpoint; audit: proofs, verification vs raw hashing, live-tail lag")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    p.add_argument("--writers", default="1,16,64", help="eventlog: concurrent writers for the service path")
    p.add_argument("--clients", default="32,128", help="transfers: concurrent HTTP clients")
    p.add_argument("--events", type=int, default=1_000_000,
                   help="transfers, audit: events in the log before measuring")
    p.add_argument("--holders", type=int, default=10_000, help="transfers: qualified holders in the market")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
