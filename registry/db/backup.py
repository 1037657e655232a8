"""Backup and restore of the embedded mode: an online base backup of the cluster plus the signing keys.

`registry backup --out DIR` asks the running embedded server (or starts it, and stops it again) for a
base backup with `pg_basebackup` from the same embedded binaries, the write-ahead log streamed
alongside (`-X stream`), so the copy is consistent at the moment the backup ends however much is
written meanwhile; the service keeps serving. `pg_verifybackup` checks the copy against its manifest,
then the key folder is copied beside it and each key's SHA-256 recorded in `registry-backup.json`.

`registry restore --from DIR` puts such a backup into an empty data folder. A base backup is a copy of
the original's cluster folder, so it still names the original's socket folder (`unix_socket_directories`
in postgresql.auto.conf) and, when that folder is the cluster folder itself, carries the original's
socket lock file: started as it is, the restored server would try the original's socket, and refuse
to start while the original runs. Both are rewritten for the new folder; then the restored server
is started once, replays the streamed WAL up to the end of the backup, and is stopped again.

Keys given in the environment (REGISTRY_TOKEN_KEY, REGISTRY_CHECKPOINT_KEY) are not in the data
folder and so not in the backup: they are kept wherever they are kept (a secret store).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres, EmbeddedPostgresError
from registry.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "registry-backup.json"
CLUSTER = "pg"
"""The base backup's folder inside a backup, and the cluster's folder inside a data folder."""
KEYS = "keys"
FORMAT = 1
LONG = 24 * 3600.0
"""A base backup or its verification may take hours on a large cluster; it is never cut short."""
class BackupError(RuntimeError):
    pass


class BackupManifest(msgspec.Struct, kw_only=True, frozen=True):
    """What `registry-backup.json` records about a backup."""

    format: int
    taken_at: dt.datetime
    postgres_version: str
    source_data_dir: str
    keys: dict[str, str]
    """Key file name → SHA-256 of its bytes."""
    keys_from_environment: list[str]
    """Keys the service took from settings (REGISTRY_*_KEY), which this backup does not hold."""


def _embedded_only(settings: Settings, what: str) -> None:
    if settings.database_url:
        raise BackupError(f"DATABASE_URL is set: the service runs on an external PostgreSQL, whose {what} is that "
                          "server's own (CloudNativePG: continuous WAL archiving and a recovery bootstrap; see "
                          "deploy/README.md)")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tool(name: str, *args: str) -> None:
    """Run one of the embedded PostgreSQL's client tools as this user (they read and write as we do)."""
    proc = subprocess.run([EmbeddedPostgres.binary(name), *args], capture_output=True, text=True, timeout=LONG,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BackupError(f"{name} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


def _empty_or_absent(folder: Path) -> bool:
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def _copy_keys(source: Path, target: Path) -> dict[str, str]:
    """Copy every key file (0600, in a 0700 folder) and return their digests."""
    digests: dict[str, str] = {}
    if not source.is_dir():
        return digests
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.chmod(0o700)
    for key in sorted(source.iterdir()):
        if key.is_file():
            copy = target / key.name
            shutil.copyfile(key, copy)
            copy.chmod(0o600)
            digests[key.name] = _sha256(copy)
    return digests


def take_backup(settings: Settings, out: Path) -> BackupManifest:
    """An online base backup of the embedded cluster, with the WAL it needs, and the key folder, into `out`."""
    _embedded_only(settings, "backup")
    out = Path(out).resolve()
    if not _empty_or_absent(out):
        raise BackupError(f"{out} is not empty: a backup goes into a new folder")
    server = EmbeddedPostgres(settings.data_dir)
    if not server.initialised():
        raise BackupError(f"there is no embedded PostgreSQL cluster in {server.pgdata}")
    cluster = out / CLUSTER
    started = server.start()  # adopts the server a running `registry serve` owns
    try:
        out.mkdir(parents=True, exist_ok=True)
        log.info("taking a base backup of %s into %s", server.pgdata, cluster)
        _tool("pg_basebackup", "-D", str(cluster), "-h", str(server.socket_dir), "-p", str(server.port),
              "-U", SUPERUSER, "--no-password", "-X", "stream", "-c", "fast", "-l", f"registry backup {out.name}")
    finally:
        if started:
            server.stop()
    _tool("pg_verifybackup", "-q", str(cluster))
    manifest = BackupManifest(
        format=FORMAT, taken_at=dt.datetime.now(dt.timezone.utc),
        postgres_version=(cluster / "PG_VERSION").read_text().strip(), source_data_dir=str(server.data_dir),
        keys=_copy_keys(server.data_dir / KEYS, out / KEYS),
        keys_from_environment=[name for name, pem in (("REGISTRY_TOKEN_KEY", settings.token_key),
                                                      ("REGISTRY_CHECKPOINT_KEY", settings.checkpoint_key)) if pem],
    )
    (out / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    return manifest


def read_manifest(source: Path) -> BackupManifest:
    try:
        manifest = msgspec.json.decode((Path(source) / MANIFEST).read_bytes(), type=BackupManifest)
    except FileNotFoundError:
        raise BackupError(f"{source} is not a registry backup (no {MANIFEST})") from None
    except msgspec.ValidationError as exc:
        raise BackupError(f"{Path(source) / MANIFEST} is not a registry backup manifest: {exc}") from None
    if manifest.format != FORMAT:
        raise BackupError(f"backup format {manifest.format} is not the format {FORMAT} this version restores")
    return manifest


class Restored(msgspec.Struct, kw_only=True, frozen=True):
    manifest: BackupManifest
    data_dir: Path
    log_size: int | None
    """Events in the restored log (None: the cluster has no event log)."""


def restore_backup(settings: Settings, source: Path) -> Restored:
    """Put a backup into the (empty) data folder, start it once to replay its WAL, and stop it."""
    _embedded_only(settings, "restore")
    source = Path(source).resolve()
    manifest = read_manifest(source)
    target = Path(settings.data_dir).resolve()
    if not _empty_or_absent(target):
        raise BackupError(f"{target} is not empty: a backup is restored into a new data folder")
    _tool("pg_verifybackup", "-q", str(source / CLUSTER))
    server = EmbeddedPostgres(target)
    shutil.copytree(source / CLUSTER, server.pgdata, dirs_exist_ok=True)  # adopt_copied_cluster drops its leftovers
    server.adopt_copied_cluster()
    server.take_ownership()
    server.pgdata.chmod(0o700)
    digests = _copy_keys(source / KEYS, target / KEYS)
    if digests != manifest.keys:
        bad = sorted(set(digests.items()) ^ set(manifest.keys.items()))
        raise BackupError(f"the backup's keys do not match its manifest: {', '.join(sorted({n for n, _ in bad}))}")
    try:
        server.start()
    except EmbeddedPostgresError as exc:
        raise BackupError(f"the restored cluster did not start: {exc}") from None
    try:
        size: int | None = int(server.psql("SELECT coalesce(max(position) + 1, 0) FROM event", database=DATABASE))
    except EmbeddedPostgresError:  # a cluster never migrated has no log yet
        size = None
    finally:
        server.stop()
    return Restored(manifest=manifest, data_dir=target, log_size=size)


def _command(name: str, work: Callable[[], list[str]]) -> int:
    """Run a command's work and print what it reports; a refusal or failure is one line on stderr, exit 2."""
    try:
        lines = work()
    except (BackupError, EmbeddedPostgresError) as exc:
        print(f"{name} failed: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def run_backup(settings: Settings, out: Path) -> int:
    """`registry backup --out DIR`."""

    def work() -> list[str]:
        manifest = take_backup(settings, out)
        lines = [f"backup of {manifest.source_data_dir} written to {Path(out).resolve()} (PostgreSQL "
                 f"{manifest.postgres_version}, keys: {', '.join(manifest.keys) or 'none in the data folder'})"]
        if manifest.keys_from_environment:
            lines.append(f"not in this backup, kept where you keep them: {', '.join(manifest.keys_from_environment)}")
        return lines

    return _command("backup", work)


def run_restore(settings: Settings, source: Path) -> int:
    """`registry restore --from DIR`."""

    def work() -> list[str]:
        restored = restore_backup(settings, source)
        size = "no event log" if restored.log_size is None else f"{restored.log_size} events"
        return [f"restored the backup taken {restored.manifest.taken_at:%Y-%m-%d %H:%M:%S} UTC into "
                f"{restored.data_dir}: {size}; run `registry verify`, then `registry serve`"]

    return _command("restore", work)


__all__ = ["take_backup", "restore_backup", "run_backup", "run_restore", "BackupError"]
