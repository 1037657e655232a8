"""The Merkle tree and checkpoints in PostgreSQL: incremental, consistent under concurrency, every proof verifiable."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.audit import merkle, store
from registry.audit.checkpoint import CheckpointSigner, verify_checkpoint
from registry.audit.export import export_jsonl
from registry.db.database import Database
from registry.errors import RuleViolation
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.verify import fastchain
from registry.eventlog.writer import NO_STREAM
from support import rewrite_and_rechain

META = EventMeta(actor="op-1", role="operator", command="test")
ORIGIN = "registry.tjotc.example/log"
SIGNER = CheckpointSigner(Ed25519PrivateKey.generate(), origin=ORIGIN)


async def append(db: Database, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await db.writer.append(f"s-{i}", NO_STREAM, [NewEvent(type="test.happened", data={"i": i, "note": "认股权"})],
                               META)


async def canonicals(conn: asyncpg.Connection) -> list[bytes]:
    return [bytes(r["canonical"]) for r in await conn.fetch("SELECT canonical FROM event ORDER BY position")]


async def node_rows(conn: asyncpg.Connection) -> dict[tuple[int, int], bytes]:
    rows = await conn.fetch("SELECT level, node_index, hash FROM merkle_node")
    return {(r["level"], r["node_index"]): bytes(r["hash"]) for r in rows}


def complete_subtree_count(n: int) -> int:
    return sum(n >> level for level in range(n.bit_length()))


async def test_an_empty_log_has_the_empty_tree_head(db: Database) -> None:
    async with db.connection() as conn:
        head = await store.tree_head(conn)
    assert (head.size, head.root_hash) == (0, merkle.EMPTY_ROOT)


async def test_the_tree_grows_with_the_log_storing_only_the_new_subtrees(db: Database) -> None:
    await append(db, 5)
    async with db.connection() as conn:
        assert await store.extend(conn) == 5
        before = await node_rows(conn)
        assert len(before) == complete_subtree_count(5) == 8
        await append(db, 6, start=5)
        assert await store.extend(conn) == 11
        after = await node_rows(conn)
        assert len(after) == complete_subtree_count(11)
        assert {k: after[k] for k in before} == before  # nothing already stored was recomputed
        assert await store.extend(conn) == 11  # nothing new: nothing written
        assert len(await node_rows(conn)) == len(after)
        leaves = await canonicals(conn)
        for size in range(12):
            assert (await store.tree_head(conn, size)).root_hash == merkle.root(leaves[:size])


async def test_catching_up_in_small_batches_gives_the_same_tree(db: Database) -> None:
    await append(db, 50)
    async with db.connection() as conn:
        assert await store.extend(conn, batch=7) == 50
        assert (await store.tree_head(conn)).root_hash == merkle.root(await canonicals(conn))
        assert len(await node_rows(conn)) == complete_subtree_count(50)


async def test_concurrent_extenders_build_one_tree(db: Database) -> None:
    await asyncio.gather(*(db.writer.append(f"c-{i}", NO_STREAM, [NewEvent(type="test.happened", data={"i": i})],
                                            META) for i in range(300)))

    async def extend() -> int:
        async with db.connection() as conn:
            return await store.extend(conn, batch=40)

    assert await asyncio.gather(*(extend() for _ in range(6))) == [300] * 6
    async with db.connection() as conn:
        assert len(await node_rows(conn)) == complete_subtree_count(300)
        assert (await store.tree_head(conn)).root_hash == merkle.root(await canonicals(conn))


async def test_every_proof_the_store_produces_verifies_and_any_flipped_byte_is_caught(db: Database) -> None:
    n = 33  # past a power of two, so every shape of the recursion appears
    await append(db, n)
    inclusions, consistencies = [], []
    async with db.connection() as conn:
        leaves = [merkle.leaf_hash(c) for c in await canonicals(conn)]
        roots = [merkle.root_of_hashes(leaves[:size]) for size in range(n + 1)]
        for size in range(1, n + 1):
            for position in range(size):
                p = await store.inclusion_proof(conn, position, size)
                assert (p.leaf_hash, p.root_hash) == (leaves[position], roots[size])
                assert p.proof == merkle.inclusion_proof(leaves, position, size)
                assert merkle.verify_inclusion(p.leaf_hash, position, size, p.proof, roots[size])
                inclusions.append(p)
            for old in range(1, size):
                c = await store.consistency_proof(conn, old, size)
                assert (c.old_root, c.new_root) == (roots[old], roots[size])
                assert merkle.verify_consistency(old, size, c.old_root, c.new_root, c.proof)
                consistencies.append(c)

    def flip(data: bytes, byte: int, bit: int) -> bytes:
        i = byte % len(data)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(inclusions), st.integers(0, 10_000), st.integers(0, 7))
    def inclusion_flips(p: store.InclusionProof, byte: int, bit: int) -> None:
        args = p.position, p.tree_size
        assert not merkle.verify_inclusion(flip(p.leaf_hash, byte, bit), *args, p.proof, p.root_hash)
        assert not merkle.verify_inclusion(p.leaf_hash, *args, p.proof, flip(p.root_hash, byte, bit))
        if p.proof:
            i = byte % len(p.proof)
            bad = [*p.proof[:i], flip(p.proof[i], byte // len(p.proof), bit), *p.proof[i + 1:]]
            assert not merkle.verify_inclusion(p.leaf_hash, *args, bad, p.root_hash)

    @settings(max_examples=400, deadline=None)
    @given(st.sampled_from(consistencies), st.integers(0, 10_000), st.integers(0, 7))
    def consistency_flips(c: store.ConsistencyProof, byte: int, bit: int) -> None:
        sizes = c.old_size, c.new_size
        i = byte % len(c.proof)
        bad = [*c.proof[:i], flip(c.proof[i], byte // len(c.proof), bit), *c.proof[i + 1:]]
        assert not merkle.verify_consistency(*sizes, c.old_root, c.new_root, bad)
        assert not merkle.verify_consistency(*sizes, flip(c.old_root, byte, bit), c.new_root, c.proof)
        assert not merkle.verify_consistency(*sizes, c.old_root, flip(c.new_root, byte, bit), c.proof)

    inclusion_flips()
    consistency_flips()


async def test_sizes_beyond_the_tree_positions_outside_it_and_backwards_ranges_are_refused(db: Database) -> None:
    await append(db, 4)
    async with db.connection() as conn:
        for call, code in [
            (store.tree_head(conn, 5), "audit.size_out_of_range"),
            (store.tree_head(conn, -1), "audit.size_out_of_range"),
            (store.inclusion_proof(conn, 4, 4), "audit.position_out_of_range"),
            (store.inclusion_proof(conn, 0, 0), "audit.position_out_of_range"),
            (store.inclusion_proof(conn, 0, 9), "audit.size_out_of_range"),
            (store.consistency_proof(conn, 0, 4), "audit.consistency_sizes_invalid"),
            (store.consistency_proof(conn, 4, 4), "audit.consistency_sizes_invalid"),
            (store.consistency_proof(conn, 3, 2), "audit.consistency_sizes_invalid"),
            (store.consistency_proof(conn, 1, 5), "audit.size_out_of_range"),
            (store.integrity(conn, 3, 2), "audit.range_invalid"),
            (store.integrity(conn, 0, 5), "audit.size_out_of_range"),
        ]:
            with pytest.raises(RuleViolation) as refused:
                await call
            assert refused.value.code == code


async def test_an_intact_log_passes_the_integrity_check_over_any_range(db: Database) -> None:
    await append(db, 20)
    async with db.connection() as conn:
        await store.sign_current(conn, SIGNER, signed_by="op-1", now=db.writer.clock())
        whole = await store.integrity(conn, signer=SIGNER)
        assert whole.ok and whole.checked == 20 and whole.checkpoints_checked == 1
        assert whole.root_hash == whole.recomputed_root == merkle.root(await canonicals(conn))
        part = await store.integrity(conn, 7, 13)
        assert part.ok and part.checked == 6 and part.root_hash == merkle.root((await canonicals(conn))[:13])
        assert part.recomputed_root == part.root_hash


async def test_checkpoints_are_signed_only_when_the_log_has_grown(db: Database) -> None:
    assert await store.sign_checkpoint_if_grown(db, SIGNER) is None  # nothing to sign yet
    await append(db, 3)
    first = await store.sign_checkpoint_if_grown(db, SIGNER)
    assert first is not None and first.tree_size == 3 and first.signed_by == "system"
    assert await store.sign_checkpoint_if_grown(db, SIGNER) is None
    await append(db, 2, start=3)
    second = await store.sign_checkpoint_if_grown(db, SIGNER)
    assert second is not None and second.tree_size == 5
    for c in (first, second):
        signed = verify_checkpoint(c.note, origin=ORIGIN, vkey=SIGNER.vkey)
        assert (signed.size, signed.root_hash) == (c.tree_size, c.root_hash)
    async with db.connection() as conn:
        assert [c.tree_size for c in await store.list_checkpoints(conn, after=None, limit=10)] == [3, 5]
        assert [c.tree_size for c in await store.list_checkpoints(conn, after=3, limit=10)] == [5]
        assert (await store.latest_checkpoint(conn)).tree_size == 5
        again = await store.sign_current(conn, SIGNER, signed_by="op-2", now=db.writer.clock())
        assert again == second  # one checkpoint per size


async def test_the_app_role_can_neither_change_nor_delete_the_tree_or_checkpoints(db: Database) -> None:
    await append(db, 2)
    await store.sign_checkpoint_if_grown(db, SIGNER)
    async with db.connection() as conn:
        for sql in ("UPDATE merkle_node SET hash = hash", "DELETE FROM merkle_node", "TRUNCATE merkle_node",
                    "UPDATE checkpoint SET note = note", "DELETE FROM checkpoint", "TRUNCATE checkpoint"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)


async def test_the_export_holds_each_events_exact_bytes_hash_and_link_one_json_line_each(db: Database) -> None:
    await append(db, 12)
    binary, text = io.BytesIO(), io.StringIO()
    async with db.connection() as conn:
        summary = await export_jsonl(conn, binary)
        await export_jsonl(conn, text)
        rows = await conn.fetch("SELECT position, canonical, hash, prev_hash FROM event ORDER BY position")
    lines = binary.getvalue().splitlines()
    assert text.getvalue().encode() == binary.getvalue()
    assert summary.events == len(lines) == 12 and summary.last_position == 11
    for line, row in zip(lines, rows):
        obj = msgspec.json.decode(line)
        assert list(obj) == ["position", "canonical", "hash", "prev_hash"]
        assert obj["position"] == row["position"]
        assert obj["canonical"].encode("utf-8") == bytes(row["canonical"])
        assert obj["hash"] == bytes(row["hash"]).hex() and obj["prev_hash"] == bytes(row["prev_hash"]).hex()
    assert summary.head_hash == bytes(rows[-1]["hash"]).hex()


INTEGRITY_TAMPERING = {
    "intact": "",
    "altered bytes": "UPDATE event SET canonical = canonical || ' '::bytea WHERE position = 9",
    "a deleted event": "DELETE FROM event WHERE position = 12",
    "an actor column changed": "UPDATE event SET actor = 'op-9' WHERE position = 4",
    "a leaf of the tree changed": "UPDATE merkle_node SET hash = sha256(hash) WHERE level = 0 AND node_index = 7",
    "the tail cut": "DELETE FROM event WHERE position >= 17",
    "an event rewritten and the chain recomputed": "rechain 6",
}


@pytest.mark.parametrize("case", list(INTEGRITY_TAMPERING))
async def test_the_compiled_integrity_check_reports_exactly_what_the_row_by_row_check_reports(
        db: Database, owner: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    if fastchain is None:
        pytest.skip("the compiled verifier was not built")
    await append(db, 10)
    await store.sign_checkpoint_if_grown(db, SIGNER)
    await append(db, 10, start=10)
    await store.sign_checkpoint_if_grown(db, SIGNER)
    async with db.connection() as conn:
        await store.extend(conn)
    sql = INTEGRITY_TAMPERING[case]
    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await owner.execute("ALTER TABLE merkle_node DISABLE TRIGGER USER")
    if sql.startswith("rechain"):
        await rewrite_and_rechain(owner, int(sql.split()[1]), note="改")
    elif sql:
        await owner.execute(sql)
    fed_row_by_row: list[int] = []  # windows the compiled check handed to the row-by-row one
    original = store._feed_rows
    checking_fast = False

    async def recording(conn, checker, start, end, stored_size):
        if checking_fast:
            fed_row_by_row.append(start)
        await original(conn, checker, start, end, stored_size)

    monkeypatch.setattr(store, "_feed_rows", recording)
    async with db.connection() as conn:
        for window in (4, 5, 16384):
            monkeypatch.setattr(store, "INTEGRITY_WINDOW", window)
            for start, end in ((0, None), (3, 15), (8, 20), (0, 10)):
                checking_fast = True
                fast = await store.integrity(conn, start, end, SIGNER, fast=True)
                checking_fast = False
                slow = await store.integrity(conn, start, end, SIGNER, fast=False)
                assert fast == slow, (window, start, end)
                assert (start, end) != (0, None) or fast.ok is (case == "intact")
    assert (fed_row_by_row == []) is (case == "intact")
