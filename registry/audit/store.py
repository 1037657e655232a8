"""The Merkle tree and checkpoints in PostgreSQL: extended incrementally, read in O(log n) rows per answer.

The tree is kept as its complete power-of-two subtrees (`merkle_node`). It is extended lazily:
whoever needs it first takes an advisory lock and hashes only the events appended since the
stored size, merging each new leaf with the stored "peaks" to its left. It is never rebuilt:
once a leaf is in the tree, later edits to the event row (by someone bypassing the database's
refusals) show as a difference between the event and the tree, and between the tree and every
checkpoint signed since.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from registry.audit import merkle
from registry.audit.checkpoint import CheckpointInvalid, CheckpointSigner, verify_checkpoint
from registry.audit.frontier import grow
from registry.errors import InternalError, NotFound, RuleViolation
from registry.eventlog.model import GENESIS_HASH
from registry.eventlog.store import copy_check, iter_rows
from registry.eventlog.verify import ChainVerifier, Finding, compiled

log = logging.getLogger(__name__)

MERKLE_LOCK = 7_301_003
"""Advisory lock key: one extender at a time (the writer uses 7_301_002, migrations 7_301_001)."""
EXTEND_BATCH = 5_000
"""Leaves hashed and stored per transaction while catching up."""


class SizeOutOfRange(RuleViolation):
    """A tree size beyond the tree, or below zero."""

    code = "audit.size_out_of_range"
    title = "There is no tree of that size"


class PositionOutOfRange(RuleViolation):
    """A leaf position that is not in the tree asked about."""

    code = "audit.position_out_of_range"
    title = "That position is not in the tree"


class ConsistencySizesInvalid(RuleViolation):
    """A consistency proof exists only from an older, non-empty tree to a larger one (0 < old < new)."""

    code = "audit.consistency_sizes_invalid"
    title = "A consistency proof needs 0 < old < new"


class RangeInvalid(RuleViolation):
    code = "audit.range_invalid"
    title = "The range to check is not valid"


class NoCheckpoint(NotFound):
    code = "audit.no_checkpoint"
    title = "No such checkpoint"


class TreeHead(msgspec.Struct, kw_only=True, frozen=True):
    size: int
    root_hash: bytes


class InclusionProof(msgspec.Struct, kw_only=True, frozen=True):
    position: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    proof: list[bytes]


class ConsistencyProof(msgspec.Struct, kw_only=True, frozen=True):
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: list[bytes]


class StoredCheckpoint(msgspec.Struct, kw_only=True, frozen=True):
    tree_size: int
    root_hash: bytes
    origin: str
    key_name: str
    key_id: bytes
    note: str
    signed_at: dt.datetime
    signed_by: str


class IntegrityReport(msgspec.Struct, kw_only=True, frozen=True):
    """What a range check found: the first bad position (if it can be named) and the problem."""

    start: int
    end: int
    checked: int
    ok: bool
    first_bad_position: int | None
    problem: str | None
    log_size: int
    tree_size: int
    root_hash: bytes | None
    """The stored tree's root at size `end` (None if the tree is smaller)."""
    recomputed_root: bytes | None
    """The root at size `end` recomputed from the events as stored now (None if they do not reach `end`)."""
    checkpoints_checked: int


# -- the tree -------------------------------------------------------------------------------------


async def tree_size(conn: asyncpg.Connection) -> int:
    size = await conn.fetchval("SELECT max(node_index) + 1 FROM merkle_node WHERE level = 0")
    return 0 if size is None else size


async def log_size(conn: asyncpg.Connection) -> int:
    """One past the last stored position (the count, while positions are dense)."""
    size = await conn.fetchval("SELECT max(position) + 1 FROM event")
    return 0 if size is None else size


async def extend(conn: asyncpg.Connection, *, batch: int = EXTEND_BATCH) -> int:
    """Bring the tree up to the log: hash only the events it does not cover yet. Returns the tree size.

    Stops at the first missing position: a gap is never papered over.
    """
    size = await tree_size(conn)
    if await log_size(conn) <= size:
        return size
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MERKLE_LOCK)
            size = await tree_size(conn)  # someone may have extended it while we waited
            rows = await conn.fetch(
                "SELECT position, canonical FROM event WHERE position >= $1 ORDER BY position LIMIT $2",
                size, batch)
            leaves = []
            for row in rows:
                if row["position"] != size + len(leaves):
                    break
                leaves.append(merkle.leaf_hash(bytes(row["canonical"])))
            if not leaves:
                return size
            peaks = merkle.peaks(size)
            known = await _nodes(conn, peaks)
            frontier = merkle.Frontier(size, [known[node] for node in peaks])
            made = [made for h in leaves for made in frontier.append(h)]
            await conn.execute(
                "INSERT INTO merkle_node (level, node_index, hash) "
                "SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])",
                [level for (level, _), _ in made], [index for (_, index), _ in made], [h for _, h in made])
        if len(leaves) < len(rows) or len(rows) < batch:
            return frontier.size


async def _nodes(conn: asyncpg.Connection, nodes: Iterable[merkle.Node]) -> dict[merkle.Node, bytes]:
    """Stored hashes of complete subtrees, in one round trip; a missing one means the tree is damaged."""
    wanted = sorted(set(nodes))
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT n.level, n.node_index, n.hash FROM unnest($1::smallint[], $2::bigint[]) AS k(level, node_index) "
        "JOIN merkle_node n ON n.level = k.level AND n.node_index = k.node_index",
        [level for level, _ in wanted], [index for _, index in wanted])
    found = {(r["level"], r["node_index"]): bytes(r["hash"]) for r in rows}
    missing = [node for node in wanted if node not in found]
    if missing:
        raise InternalError("the stored Merkle tree is missing subtrees", missing=[list(n) for n in missing[:5]])
    return found


def _root(size: int, known: dict[merkle.Node, bytes]) -> bytes:
    return merkle.Frontier(size, [known[node] for node in merkle.peaks(size)]).root()


async def _current(conn: asyncpg.Connection, size: int | None) -> int:
    """Extend the tree, then check `size` (default: the whole tree) is one it has."""
    current = await extend(conn)
    if size is None:
        return current
    if not 0 <= size <= current:
        raise SizeOutOfRange(f"the tree has sizes 0 to {current}; {size} was asked for", size=size,
                             tree_size=current)
    return size


async def tree_head(conn: asyncpg.Connection, size: int | None = None) -> TreeHead:
    """The tree head (size, root) for any size up to the current one."""
    size = await _current(conn, size)
    known = await _nodes(conn, merkle.peaks(size))
    return TreeHead(size=size, root_hash=_root(size, known))


async def inclusion_proof(conn: asyncpg.Connection, position: int, size: int | None = None) -> InclusionProof:
    """RFC 9162 inclusion proof of the event at `position` in the tree of `size` leaves."""
    size = await _current(conn, size)
    if not 0 <= position < size:
        raise PositionOutOfRange(f"position {position} is not in a tree of {size} events (0 to {size - 1})",
                                 position=position, tree_size=size)
    ranges = merkle.inclusion_ranges(position, size)
    known = await _nodes(conn, [(0, position), *merkle.peaks(size), *_spanned(ranges)])
    return InclusionProof(position=position, tree_size=size, leaf_hash=known[(0, position)],
                          root_hash=_root(size, known), proof=merkle.proof_from(ranges, known.__getitem__))


async def consistency_proof(conn: asyncpg.Connection, old_size: int, new_size: int | None = None) -> ConsistencyProof:
    """RFC 9162 proof that the tree of `old_size` events is a prefix of the tree of `new_size`."""
    new_size = await _current(conn, new_size)
    if not 0 < old_size < new_size:
        raise ConsistencySizesInvalid(f"a consistency proof needs 0 < old < new; old={old_size}, new={new_size}",
                                      old=old_size, new=new_size)
    ranges = merkle.consistency_ranges(old_size, new_size)
    known = await _nodes(conn, [*merkle.peaks(old_size), *merkle.peaks(new_size), *_spanned(ranges)])
    return ConsistencyProof(old_size=old_size, new_size=new_size, old_root=_root(old_size, known),
                            new_root=_root(new_size, known), proof=merkle.proof_from(ranges, known.__getitem__))


def _spanned(ranges: Sequence[merkle.Range]) -> list[merkle.Node]:
    return [node for start, end in ranges for node in merkle.complete_subtrees(start, end)]


# -- checking a range -----------------------------------------------------------------------------


async def integrity(conn: asyncpg.Connection, start: int = 0, end: int | None = None,
                    signer: CheckpointSigner | None = None, *, fast: bool | None = None) -> IntegrityReport:
    """Check events [start, end): the hash chain (seeded with the previous event's hash), each event
    against the leaf the tree recorded for it, and the root at size `end` against the stored tree and
    every checkpoint signed in the range. `end` defaults to the larger of the log and the tree.

    With the compiled fast path (`fast`, by default when built) windows of events are checked in C
    and their leaf hashes compared with the tree's at once; a window that does not pass whole is
    fed row by row, so the report is the row-by-row check's either way."""
    await extend(conn)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        stored_size, events = await tree_size(conn), await log_size(conn)
        limit = max(stored_size, events)
        end = limit if end is None else end
        if not 0 <= start <= end:
            raise RangeInvalid(f"check positions from <= to; got from={start}, to={end}", start=start, end=end)
        if end > limit:
            raise SizeOutOfRange(f"the log and its tree end at {limit}; to={end} was asked for", to=end,
                                 tree_size=stored_size, log_size=events)
        checker = _RangeChecker(start, end)
        if start > 0:
            previous = await conn.fetchval("SELECT hash FROM event WHERE position = $1", start - 1)
            if previous is None:
                checker.fail(start - 1, f"position {start - 1} is missing")
            else:
                checker.chain = ChainVerifier(start, bytes(previous))
        if start <= stored_size:
            known = await _nodes(conn, merkle.peaks(start))
            checker.frontier = merkle.Frontier(start, [known[node] for node in merkle.peaks(start)])
        checkpoints = [_checkpoint(r) for r in await conn.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoint WHERE tree_size > $1 AND tree_size <= $2 "
            "ORDER BY tree_size", start, end)]
        checker.expect_roots({c.tree_size: c.root_hash for c in checkpoints})
        for c in checkpoints:
            problem = _checkpoint_problem(c, signer)
            if problem is not None:
                checker.fail(None, problem)
        if compiled(fast):
            position = start
            while position < end and checker.chain is not None and not checker.stopped:
                stop = min(end, position + INTEGRITY_WINDOW)
                if not await _window_intact(conn, checker, position, stop, stored_size):
                    await _feed_rows(conn, checker, position, stop, stored_size)
                position = stop
        else:
            await _feed_rows(conn, checker, start, end, stored_size)
        checker.finish()
        root = _root(end, await _nodes(conn, merkle.peaks(end))) if end <= stored_size else None
    recomputed = checker.recomputed_root()
    if root is not None and recomputed is not None and root != recomputed:
        checker.fail(None, f"the Merkle root of size {end} recomputed from the events differs from the stored tree's")
    if end > stored_size:
        checker.fail(stored_size, f"the Merkle tree covers {stored_size} events; position {stored_size} "
                                  f"is not in it (a gap or a damaged tree)")
    finding = checker.finding
    return IntegrityReport(
        start=start, end=end, checked=checker.checked, ok=finding is None,
        first_bad_position=None if finding is None else finding[0], problem=None if finding is None else finding[1],
        log_size=events, tree_size=stored_size, root_hash=root, recomputed_root=recomputed,
        checkpoints_checked=len(checkpoints),
    )


INTEGRITY_WINDOW = 16384
"""Events per window of the compiled integrity check."""


async def _feed_rows(conn: asyncpg.Connection, checker: _RangeChecker, start: int, end: int, stored_size: int) -> None:
    """Events [start, end) fed one by one, each beside the leaf the tree recorded for it."""
    leaves: dict[int, bytes] = {}
    async for row in iter_rows(conn, start):
        if row.position >= end or checker.stopped:
            break
        if row.position < stored_size and row.position not in leaves:
            leaves = await _stored_leaves(conn, row.position, min(stored_size, row.position + EXTEND_BATCH))
        checker.feed(row, leaves.get(row.position))


async def _window_intact(conn: asyncpg.Connection, checker: _RangeChecker, start: int, stop: int,
                         stored_size: int) -> bool:
    """True, with the checker advanced past the window, only if every event in [start, stop) passes
    the compiled check and its leaf hash equals the one the tree recorded (where the tree reaches).
    False leaves the checker as it was: the caller feeds the window row by row."""
    chain = checker.chain
    if chain is None or chain.finding is not None or chain.expected_position != start:
        return False
    check = await copy_check(conn, start, stop - start, start, chain.previous_hash, leaves=True)
    if not check.complete or check.position != stop:
        return False
    leaves, last_hash = check.leaves, check.previous_hash
    in_tree = max(0, min(stop, stored_size) - start)
    if in_tree:
        stored, count = await conn.fetchrow(
            "SELECT string_agg(hash, ''::bytea ORDER BY node_index), count(*) FROM merkle_node "
            "WHERE level = 0 AND node_index >= $1 AND node_index < $2", start, start + in_tree)
        if count != in_tree or bytes(stored) != leaves[:in_tree * merkle.HASH_SIZE]:
            return False
    checker.accept(stop - start, last_hash, leaves)
    return True


async def _stored_leaves(conn: asyncpg.Connection, start: int, end: int) -> dict[int, bytes]:
    rows = await conn.fetch("SELECT node_index, hash FROM merkle_node WHERE level = 0 AND node_index >= $1 "
                            "AND node_index < $2", start, end)
    return {r["node_index"]: bytes(r["hash"]) for r in rows}


class _RangeChecker:
    """Feeds events to the chain verifier and to a Merkle frontier; keeps the earliest finding."""

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end
        self.chain = ChainVerifier(start, GENESIS_HASH) if start == 0 else None
        self.frontier: merkle.Frontier | None = None
        self.finding: tuple[int | None, str] | None = None
        self.checked = 0
        self._expected_roots: dict[int, bytes] = {}
        self.stopped = False

    def fail(self, position: int | None, problem: str) -> None:
        """Keep the earliest named position; an unplaceable finding counts only if nothing is placed."""
        if self.finding is None or (position is not None and (self.finding[0] is None or position < self.finding[0])):
            self.finding = (position, problem)

    def expect_roots(self, roots: dict[int, bytes]) -> None:
        self._expected_roots = roots

    def feed(self, row: Any, stored_leaf: bytes | None) -> None:
        if self.chain is None:
            self.stopped = True
            return
        found: Finding | None = self.chain.feed(row)
        if found is not None:
            self.fail(found.position, found.problem)
            self.stopped = True
            return
        self.checked += 1
        leaf = merkle.leaf_hash(row.canonical)
        if stored_leaf is not None and stored_leaf != leaf:
            self.fail(row.position, "the event's bytes differ from the leaf the Merkle tree recorded for it "
                                    "(rewritten after it was appended)")
        self._take(leaf)

    def accept(self, count: int, last_hash: bytes, leaves: bytes) -> None:
        """`count` events checked by the compiled path, with their leaf hashes (as `feed` would have)."""
        assert self.chain is not None
        self.chain.accept(count, last_hash)
        self.checked += count
        self._take(leaves)

    def _take(self, leaves: bytes) -> None:
        """Leaf hashes into the frontier, the root checked at every signed checkpoint size reached."""
        if self.frontier is None:
            return
        for grown in grow(self.frontier, leaves, self._expected_roots):
            if self._expected_roots[grown.size] != grown.root():
                self.fail(None, f"the Merkle root of the first {grown.size} events differs from the "
                                f"signed checkpoint of that size")

    def finish(self) -> None:
        if self.chain is not None and not self.stopped and self.chain.expected_position < self.end:
            missing = self.chain.expected_position
            self.fail(missing, f"position {missing} is missing: the log ends before {self.end}")

    def recomputed_root(self) -> bytes | None:
        if self.frontier is None or self.frontier.size != self.end:
            return None  # the events stop (or the check stopped) before `end`
        return self.frontier.root()


def _checkpoint_problem(stored: StoredCheckpoint, signer: CheckpointSigner | None) -> str | None:
    """A stored checkpoint signed with the service's current key must verify and agree with its columns."""
    if signer is None or stored.key_id != signer.verifier.key_id:
        return None  # another (older) key: the regulator checks it with the key they pinned
    try:
        signed = verify_checkpoint(stored.note, origin=signer.origin, vkey=signer.verifier)
    except CheckpointInvalid as exc:
        return f"checkpoint {stored.tree_size} does not verify: {exc}"
    if (signed.size, signed.root_hash) != (stored.tree_size, stored.root_hash):
        return f"checkpoint {stored.tree_size}'s signed note states another tree head than its row"
    return None


# -- checkpoints ----------------------------------------------------------------------------------

_CHECKPOINT_COLUMNS = "tree_size, root_hash, origin, key_name, key_id, note, signed_at, signed_by"


def _checkpoint(row: asyncpg.Record) -> StoredCheckpoint:
    return msgspec.convert(dict(row), StoredCheckpoint)


async def sign_current(conn: asyncpg.Connection, signer: CheckpointSigner, *, signed_by: str,
                       now: dt.datetime) -> StoredCheckpoint:
    """Sign the current tree head and keep it (one checkpoint per size: a repeat returns the stored one).
    `now` is the market's clock (the writer's), as for the events it covers."""
    head = await tree_head(conn)
    stored = await checkpoint_at(conn, head.size)
    if stored is not None:
        return stored
    await conn.execute(
        f"INSERT INTO checkpoint ({_CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT (tree_size) DO NOTHING",
        head.size, head.root_hash, signer.origin, signer.name, signer.verifier.key_id,
        signer.sign(head.size, head.root_hash), now, signed_by)
    stored = await checkpoint_at(conn, head.size)
    if stored is None:
        raise InternalError("the checkpoint was signed but could not be stored", tree_size=head.size)
    return stored


async def sign_checkpoint_if_grown(db: Any, signer: CheckpointSigner, *,
                                   now: dt.datetime | None = None) -> StoredCheckpoint | None:
    """Sign the tree head if the log grew since the latest checkpoint; the periodic signer's one round.

    `db` is the service's Database (anything whose `connection()` yields an asyncpg connection).
    """
    async with db.primary() as conn:
        size = await extend(conn)
        latest = await latest_checkpoint(conn)
        if size == 0 or (latest is not None and latest.tree_size >= size):
            return None
        return await sign_current(conn, signer, signed_by="system", now=now or db.writer.clock())


async def sign_checkpoints_periodically(db: Any, signer: CheckpointSigner, every_seconds: float) -> None:
    """Run `sign_checkpoint_if_grown` now and every `every_seconds` (an app lifespan task; cancel to stop)."""
    while True:
        try:
            await sign_checkpoint_if_grown(db, signer)
        except Exception:  # keep signing; the next round retries
            log.exception("checkpoint signing failed")
        await asyncio.sleep(every_seconds)


async def checkpoint_at(conn: asyncpg.Connection, size: int) -> StoredCheckpoint | None:
    row = await conn.fetchrow(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoint WHERE tree_size = $1", size)
    return None if row is None else _checkpoint(row)


async def latest_checkpoint(conn: asyncpg.Connection) -> StoredCheckpoint | None:
    row = await conn.fetchrow(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoint ORDER BY tree_size DESC LIMIT 1")
    return None if row is None else _checkpoint(row)


async def list_checkpoints(conn: asyncpg.Connection, *, after: int | None, limit: int) -> list[StoredCheckpoint]:
    """Checkpoints with tree size > `after`, smallest first."""
    rows = await conn.fetch(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoint WHERE tree_size > $1 "
                            "ORDER BY tree_size LIMIT $2", -1 if after is None else after, limit)
    return [_checkpoint(r) for r in rows]
