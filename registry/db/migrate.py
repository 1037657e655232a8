"""Schema migrations: Piccolo's migration runner over the top-level `migrations/` folder, as the owner."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from pathlib import Path

import asyncpg

os.environ.setdefault("PICCOLO_CONF", "registry.db.piccolo_conf")

from piccolo.apps.migrations.auto.migration_manager import MigrationManager  # noqa: E402
from piccolo.apps.migrations.commands.forwards import ForwardsMigrationManager  # noqa: E402
from piccolo.apps.migrations.tables import Migration  # noqa: E402
from piccolo.conf.apps import AppConfig  # noqa: E402
from piccolo.engine.postgres import PostgresEngine  # noqa: E402

from registry.db import piccolo_conf  # noqa: E402

APP_NAME = "registry"
MIGRATION_LOCK = 7_301_001
"""Advisory lock key: two processes starting at once apply migrations one after the other."""
_local_lock = asyncio.Lock()


def sql_migration(py_file: str, migration_id: str, description: str) -> MigrationManager:
    """A migration whose DDL lives in the `.sql` file beside it (reviewable SQL, not generated)."""
    sql = Path(py_file).with_suffix(".sql").read_text(encoding="utf-8")
    manager = MigrationManager(migration_id=migration_id, app_name=APP_NAME, description=description)

    async def run_sql() -> None:
        transaction = piccolo_conf.DB.current_transaction.get()  # type: ignore[union-attr]
        await transaction.connection.execute(sql)

    manager.add_raw(run_sql)
    return manager


def migration_ids(folder: Path) -> list[str]:
    """Migration ids shipped with this build, read from the files without importing them."""
    ids = []
    for path in sorted(folder.glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("ID = "):
                ids.append(line.split("=", 1)[1].strip().strip("\"'"))
    return sorted(ids)


async def apply_migrations(owner_dsn: str, folder: Path, *, quiet: bool = True,
                           app_password: str | None = None) -> list[str]:
    """Apply pending migrations as the schema owner; returns the ids applied now.

    `app_password` (external servers) is set on the application role, which migrations create
    without one: on the embedded server it signs in over the local socket.
    """
    engine = PostgresEngine(config={"dsn": owner_dsn}, log_queries=False)
    async with _local_lock:
        lock_conn = await engine.get_new_connection()
        try:
            await lock_conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            piccolo_conf.DB = engine
            Migration._meta.db = engine
            manager = ForwardsMigrationManager(app_name=APP_NAME)
            await manager.create_migration_table()
            before = set(await Migration.get_migrations_which_ran(app_name=APP_NAME))
            config = AppConfig(app_name=APP_NAME, migrations_folder_path=str(folder))
            out = io.StringIO()
            with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
                result = await manager.run_migrations(config)
            if not result.success:
                raise RuntimeError(f"migrations failed: {result.message}")
            after = set(await Migration.get_migrations_which_ran(app_name=APP_NAME))
            if app_password:
                literal = await lock_conn.fetchval("SELECT quote_literal($1)", app_password)
                await lock_conn.execute(f"ALTER ROLE registry_app LOGIN PASSWORD {literal}")
        finally:
            await lock_conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
            await lock_conn.close()
            piccolo_conf.DB = None
    return sorted(after - before)


async def pending_migrations(conn, folder: Path) -> list[str]:
    """Ids shipped but not yet applied to the database behind `conn`."""
    try:
        applied = {r["name"] for r in await conn.fetch("SELECT name FROM migration WHERE app_name = $1", APP_NAME)}
    except asyncpg.UndefinedTableError:  # no migration table yet: nothing applied
        applied = set()
    return [i for i in migration_ids(folder) if i not in applied]
