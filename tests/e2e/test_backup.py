"""`registry backup` of a serving embedded-mode registry under write load, and `registry restore` of it elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from registry.audit.checkpoint import verify_checkpoint
from registry.db.embedded import EmbeddedPostgres
from registry.settings import Settings
from test_server import Server, _burst, data_dir, operator_token, registry  # noqa: F401 - data_dir is a fixture

pytestmark = pytest.mark.slow


async def positions_and_hashes(folder: Path) -> list[tuple[int, bytes]]:
    conn = await asyncpg.connect(EmbeddedPostgres(folder).dsn())
    try:
        return [(r["position"], bytes(r["hash"])) for r in await conn.fetch(
            "SELECT position, hash FROM event ORDER BY position")]
    finally:
        await conn.close()


@pytest.fixture
def restored_dir(data_dir: Path) -> Path:  # noqa: F811
    folder = data_dir.parent / "restored"
    yield folder
    EmbeddedPostgres(folder).destroy()


def test_a_backup_taken_under_write_load_restores_a_prefix_of_the_log_with_its_keys(
        data_dir: Path, restored_dir: Path) -> None:  # noqa: F811
    server = Server(data_dir)
    headers = operator_token(data_dir)
    note = data_dir.parent / "checkpoint-before.txt"
    registry("checkpoint", "sign", "--out", str(note), data_dir=data_dir)
    backup = data_dir.parent / "backup"
    acknowledged: dict[str, str] = {}

    async def back_up_while_writing() -> tuple[int, int]:
        burst = asyncio.create_task(_burst(server.url, headers, 1200, acknowledged))
        while len(acknowledged) < 100:
            await asyncio.sleep(0.01)
        before = len(acknowledged)
        taken = await asyncio.to_thread(registry, "backup", "--out", str(backup), data_dir=data_dir)
        assert "backup of" in taken.stdout, taken.stderr
        after = len(acknowledged)
        await burst
        return before, after

    try:
        before, after = asyncio.run(back_up_while_writing())
        assert after > before, "the service went on answering writes while the backup ran"
        assert len(acknowledged) == 1200, "every write was answered 201"

        restored = registry("restore", "--from", str(backup), data_dir=restored_dir)
        assert "restored the backup" in restored.stdout, restored.stderr
        verified = registry("verify", "--quiet", data_dir=restored_dir)
        assert verified.stdout.startswith("OK:"), verified.stderr

        twin = Server(restored_dir)  # starts beside the original, which still runs
        try:
            original = asyncio.run(positions_and_hashes(data_dir))
            copy = asyncio.run(positions_and_hashes(restored_dir))
            assert len(copy) >= before, "writes acknowledged before the backup began are in it"
            assert len(copy) < len(original), "writes after the backup ended are not"
            assert copy == original[:len(copy)], "the restored log is a prefix of the original, hash for hash"
            # the keys came along: a token of the original is honoured, a checkpoint it signed verifies
            assert httpx.get(f"{twin.url}/investors?limit=1", headers=headers).status_code == 200
            vkey = registry("checkpoint", "public-key", data_dir=restored_dir).stdout.strip()
            assert vkey == registry("checkpoint", "public-key", data_dir=data_dir).stdout.strip()
            checkpoint = verify_checkpoint(note.read_text(), origin=Settings().market_origin, vkey=vkey)
            assert checkpoint.size <= len(copy)
        finally:
            assert twin.stop() == 0
    finally:
        assert server.stop() == 0


def test_restore_refuses_a_data_folder_that_is_not_empty_and_a_folder_that_is_no_backup(
        data_dir: Path, restored_dir: Path) -> None:  # noqa: F811
    registry("migrate", data_dir=data_dir)
    registry("backup", "--out", str(data_dir.parent / "backup"), data_dir=data_dir)
    into_used = registry("restore", "--from", str(data_dir.parent / "backup"), data_dir=data_dir, check=False)
    assert into_used.returncode == 2 and "is not empty" in into_used.stderr
    not_a_backup = registry("restore", "--from", str(data_dir), data_dir=restored_dir, check=False)
    assert not_a_backup.returncode == 2 and "is not a registry backup" in not_a_backup.stderr
    assert not restored_dir.exists()
