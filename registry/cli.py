"""The `registry` command: serve, migrate, demo, verify, export, token, rebuild, checkpoint, valuation, bench, settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import fcntl
import gc
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.db.database import Dsns
from pathlib import Path

from registry import __version__
from registry.settings import Settings, SettingsError

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


def _claim_port(host: str, port: int) -> socket.socket:
    """The listening address, bound before anything else starts: a taken port is said plainly, with nothing
    built or started first (the server is handed this very socket, so nobody can take it in between)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # the family uvicorn would choose
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SystemExit(f"registry serve: port {port} on {host} is already in use by another program; "
                             f"stop it, or choose another port with --port") from None
        raise SystemExit(f"registry serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def _browsable(host: str, port: int) -> str:
    """The URL a person on this machine opens: a wildcard address is reached through the loopback one."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


GRACEFUL_SHUTDOWN_SECONDS = 3
"""After Ctrl-C or SIGTERM, requests still running (live tails, commands waiting on a database that went
away) get this long before they are cut off: the service stops within seconds, whatever the database does."""


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _Server = _uvicorn_server_class()

    from registry.app import create_app
    from registry.db.embedded import Supervisor

    settings = _settings(args)
    listening = _claim_port(args.host, args.port)
    with _database(settings, owner_lock=True) as dsns:
        if args.demo:
            from registry.demo import load_demo

            asyncio.run(load_demo(settings, dsns.app))
        app = create_app(settings, dsn=dsns.app, embedded=dsns.embedded)
        url = _browsable(args.host, args.port)
        print(f"registry is serving {settings.market_name} at {url}\n"
              f"  pages 网页: {url}/ui/sign-in   API docs: {url}/schema", flush=True)
        server = _Server(uvicorn.Config(app, host=args.host, port=args.port, log_config=None,
                                        access_log=args.access_log, lifespan="on",
                                        proxy_headers=settings.trust_proxy_headers,
                                        forwarded_allow_ips="*" if settings.trust_proxy_headers else None,
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
            server.run(sockets=[listening])  # returns on Ctrl-C or SIGTERM, after in-flight requests finish
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


def _checkpoint_signer(settings: Settings):  # noqa: ANN202 - CheckpointSigner, imported late
    from registry.audit.checkpoint import CheckpointSigner
    from registry.audit.checkpoint import load_or_create_key as load_checkpoint_key

    return CheckpointSigner(load_checkpoint_key(settings.data_dir, settings.checkpoint_key),
                            origin=settings.market_origin)


def cmd_checkpoint_public_key(args: argparse.Namespace) -> int:
    print(_checkpoint_signer(_settings(args)).vkey)
    return 0


def cmd_checkpoint_sign(args: argparse.Namespace) -> int:
    import asyncpg

    from registry.audit.store import sign_current
    from registry.clock import market_clock

    settings = _settings(args)
    signer = _checkpoint_signer(settings)

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            conn = await asyncpg.connect(dsns.app)
            try:
                stored = await sign_current(conn, signer, signed_by="cli", now=market_clock(settings.clock)())
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


def cmd_backup(args: argparse.Namespace) -> int:
    from registry.db.backup import run_backup

    return run_backup(_settings(args), args.out)


def cmd_restore(args: argparse.Namespace) -> int:
    from registry.db.backup import run_restore

    return run_restore(_settings(args), args.source)


def cmd_valuation(args: argparse.Namespace) -> int:
    from registry.valuation.cli import main as valuation_main

    return valuation_main(args)


def cmd_rebuild(args: argparse.Namespace) -> int:
    import asyncpg
    from tqdm import tqdm

    from registry.eventlog.rebuild import EventNotReplayable, rebuild

    settings = _settings(args)

    async def run() -> int:
        with _database(settings, migrate=False) as dsns:
            conn = await asyncpg.connect(dsns.app)
            try:
                total = await conn.fetchval("SELECT count(*) FROM event")
                with tqdm(total=total, unit="event", desc="replaying", file=sys.stderr, disable=args.quiet) as bar:
                    report = await rebuild(conn, apply=args.apply, progress=bar.update)
            except EventNotReplayable as exc:
                print(f"registry rebuild: {exc}; nothing changed", file=sys.stderr)
                return 2
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


def _token_service(args: argparse.Namespace):  # noqa: ANN202 - TokenService, imported late
    from registry.access.tokens import TokenService, load_or_create_key

    settings = _settings(args)
    return TokenService(load_or_create_key(settings.data_dir, settings.token_key))


def cmd_token_issue(args: argparse.Namespace) -> int:
    import datetime as dt

    from registry.access.tokens import Role

    print(_token_service(args).issue(args.subject, Role(args.role), ttl=dt.timedelta(hours=args.hours)))
    return 0


def cmd_token_public_key(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    print(_token_service(args).public_key.public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
          end="")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from registry.settings import markdown_table, with_table

    if args.readme is None:
        print(markdown_table(), end="")
        return 0
    text = args.readme.read_text(encoding="utf-8")
    updated = with_table(text)
    if updated != text:
        args.readme.write_text(updated, encoding="utf-8")
    print(f"{args.readme}: settings table {'updated' if updated != text else 'already current'}")
    return 0


def cmd_bench_eventlog(args: argparse.Namespace) -> int:
    from registry.bench.eventlog import main as bench_eventlog

    return bench_eventlog(args)


def cmd_drill_failover(args: argparse.Namespace) -> int:
    import msgspec

    from registry.bench.cluster import say
    from registry.db.drill import failover_drill, render

    report = asyncio.run(failover_drill(clients=args.clients, before=args.before, after=args.after, say=say))
    print(msgspec.json.encode(report).decode() if args.json else render(report))
    return 0 if report.ok else 1


def cmd_bench_transfers(args: argparse.Namespace) -> int:
    from registry.bench.transfers import main as bench_transfers

    return bench_transfers(args)


def cmd_bench_audit(args: argparse.Namespace) -> int:
    from registry.bench.audit import main as bench_audit

    return bench_audit(args)


def cmd_bench_valuation(args: argparse.Namespace) -> int:
    from registry.valuation.bench import main as bench_valuation

    bench_valuation(args.seconds)
    return 0


# -- the command line: one add_* function per command, each sub-command its own parser --------------------

ROLES_HELP = ("operator 运营机构 (market staff; subject: their user id) · enterprise 挂牌企业 (subject: its USCC "
              "统一社会信用代码) · investor 投资者 (subject: its investor id, e.g. INV00000006) · regulator 监管机构 "
              "(reads everything, writes nothing; subject: their user id)")

Commands = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _data_dir_option() -> argparse.ArgumentParser:
    """--data-dir, accepted by every command after its own arguments (`registry token issue … --data-dir D`)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="data folder for the embedded PostgreSQL and keys (default ./var; env REGISTRY_DATA_DIR)")
    return parent


DATA_DIR = _data_dir_option()


def _command(commands: Commands, name: str, summary: str, func=None, *,  # noqa: ANN001
             description: str | None = None) -> argparse.ArgumentParser:
    """A command (or sub-command) parser; `func` runs it. One with sub-commands has no `func`, and no --data-dir
    either: only the sub-command takes it (a sub-parser's defaults would overwrite a value given before it)."""
    parser = commands.add_parser(name, help=summary, description=description or summary,
                                 parents=[DATA_DIR] if func is not None else [],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> Commands:
    return parser.add_subparsers(required=True, title="sub-commands")


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_serve(commands: Commands) -> None:
    p = _command(commands, "serve", "run the HTTP service and its pages 网页 (starts the embedded PostgreSQL unless "
                                    "DATABASE_URL is set; applies pending migrations)", cmd_serve)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--demo", action="store_true", help="load the demo market 演示市场 first (idempotent)")
    p.add_argument("--access-log", action="store_true", help="log every request")


def add_migrate(commands: Commands) -> None:
    _command(commands, "migrate", "apply pending schema migrations as the database owner", cmd_migrate)


def add_demo(commands: Commands) -> None:
    _command(commands, "demo", "load a small demo market 演示市场; running it again changes nothing", cmd_demo)


def add_verify(commands: Commands) -> None:
    from registry.audit.offline import add_arguments as add_offline_arguments

    p = _command(commands, "verify", "recompute the event log's hash chain 哈希链 (or, with --export, check an "
                                     "exported log against signed checkpoints without a database); exit 1 naming "
                                     "the first bad position", cmd_verify)
    _quiet(p)
    add_offline_arguments(p)


def add_export(commands: Commands) -> None:
    p = _command(commands, "export", "export for offline verification")
    log_ = _command(_subcommands(p), "log", "write the event log as JSON Lines (each event's canonical bytes and "
                                            "hashes)", cmd_export)
    log_.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    _quiet(log_)


def add_token(commands: Commands) -> None:
    p = _command(commands, "token", "bearer tokens 访问令牌 for the API and the pages")
    actions = _subcommands(p)
    issue = _command(actions, "issue", "print a signed bearer token for one caller",
                     description="print a signed bearer token for one caller\n\nroles 角色:\n  "
                                 + ROLES_HELP.replace(" · ", "\n  "), func=cmd_token_issue)
    issue.add_argument("--role", required=True, choices=["operator", "enterprise", "investor", "regulator"],
                       help="operator 运营机构, enterprise 挂牌企业, investor 投资者, regulator 监管机构")
    issue.add_argument("--subject", required=True,
                       help="who: the operator's or regulator's user id, the enterprise's USCC, or the investor id")
    issue.add_argument("--hours", type=float, default=8.0, help="validity in hours (default 8)")
    _command(actions, "public-key", "print the public key (PEM) that checks the tokens", cmd_token_public_key)


def add_rebuild(commands: Commands) -> None:
    p = _command(commands, "rebuild", "replay the whole log into empty projections and compare (exit 1 if they "
                                      "differ, 2 naming an event that cannot be replayed); --apply keeps the "
                                      "rebuilt ones", cmd_rebuild)
    p.add_argument("--apply", action="store_true", help="keep the rebuilt projections")
    _quiet(p)


def add_checkpoint(commands: Commands) -> None:
    p = _command(commands, "checkpoint", "signed tree heads 签名检查点 (C2SP signed notes) for regulators")
    actions = _subcommands(p)
    sign = _command(actions, "sign", "sign the log's current tree head", cmd_checkpoint_sign)
    sign.add_argument("--out", type=Path, metavar="FILE", help="write the signed note to this file (default: print it)")
    _command(actions, "public-key", "print the verifier key (for `registry verify --key`)", cmd_checkpoint_public_key)


def add_backup(commands: Commands) -> None:
    p = _command(commands, "backup", "online base backup 备份 of the embedded PostgreSQL (WAL included) and the key "
                                     "folder, taken while the service runs", cmd_backup)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new or empty folder to write the backup into")


def add_restore(commands: Commands) -> None:
    p = _command(commands, "restore", "restore 恢复 a `registry backup` into an empty data folder", cmd_restore)
    p.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR", help="the backup's folder")


def add_valuation(commands: Commands) -> None:
    from registry.valuation.cli import add_arguments as valuation_arguments

    p = _command(commands, "valuation", "valuations 估值 kept in the log")
    recompute = _command(_subcommands(p), "recompute", "price a past valuation again from the inputs stored in the "
                                                       "log; exit 1 if any figure differs", cmd_valuation)
    valuation_arguments(recompute)


def add_bench(commands: Commands) -> None:
    p = _command(commands, "bench", "benchmarks that print their figures beside a baseline measured in the same run")
    targets = _subcommands(p)

    def seconds(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")

    def events(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--events", type=int, default=1_000_000, help="events in the log before measuring (default 1000000)")

    eventlog = _command(targets, "eventlog", "serialized appends, against pgbench's on the same cluster",
                        cmd_bench_eventlog)
    seconds(eventlog)
    eventlog.add_argument("--writers", default="1,16,64", help="concurrent writers for the service path (default 1,16,64)")
    transfers = _command(targets, "transfers", "validated warrant transfers over HTTP, against the server's trivial "
                                               "endpoint", cmd_bench_transfers)
    seconds(transfers)
    events(transfers)
    transfers.add_argument("--clients", default="32,128", help="concurrent HTTP clients (default 32,128)")
    transfers.add_argument("--holders", type=int, default=10_000, help="qualified holders in the market (default 10000)")
    transfers.add_argument("--instances", type=int, default=1,
                           help="with 2 or more, the transfer round again on that many service instances sharing "
                                "the database, beside one instance in the same run (default 1)")
    events(_command(targets, "audit", "proofs, verification against raw hashing, live-tail lag", cmd_bench_audit))
    seconds(_command(targets, "valuation", "valuations against QuantLib called directly", cmd_bench_valuation))


def add_drill(commands: Commands) -> None:
    p = _command(commands, "drill", "operational drills 演练 on throwaway clusters on this machine")
    failover = _command(_subcommands(p), "failover", "lose the primary under write load, promote its synchronous "
                                                     "standby, and count what was lost (must be 0); exit 1 if the "
                                                     "drill fails", cmd_drill_failover)
    failover.add_argument("--clients", type=int, default=8, help="concurrent writing clients (default 8)")
    failover.add_argument("--before", type=float, default=5.0, help="seconds of load before the kill (default 5)")
    failover.add_argument("--after", type=float, default=10.0, help="seconds of load after the kill (default 10)")
    failover.add_argument("--json", action="store_true", help="print the report as JSON")


def add_settings(commands: Commands) -> None:
    p = _command(commands, "settings", "print every setting: environment variable, default, meaning (markdown)",
                 cmd_settings)
    p.add_argument("--readme", type=Path, metavar="FILE",
                   help="instead, replace the settings table between its markers in FILE (the README)")


COMMANDS = (add_serve, add_migrate, add_demo, add_verify, add_export, add_token, add_rebuild, add_checkpoint,
            add_backup, add_restore, add_valuation, add_bench, add_drill, add_settings)
"""Every command, in the order `registry --help` lists them; a new command is one more add_* function."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="registry", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help(sys.stderr)  # `registry` alone: what there is to do, not just "COMMAND is required"
        return 2
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"registry: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
