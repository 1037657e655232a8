"""Verify an exported log against signed checkpoints with no database: what a regulator runs on their own machine.

From a JSON Lines export (`registry.audit.export`) and a checkpoint note, with the log's origin and
the verifier key pinned: every event's canonical bytes, hash and link to its predecessor are
rechecked (the same `ChainVerifier` the service uses), the Merkle root of the first `size` events
is recomputed and compared with the signed root, and the signature is checked. Two checkpoints and
a consistency proof show that the newer tree extends the older one. The first bad position is
named whenever the evidence can place it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import mmap
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from registry.audit import merkle
from registry.audit.checkpoint import Checkpoint, CheckpointInvalid, NoteVerifier, verify_checkpoint
from registry.audit.frontier import grow
from registry.eventlog import canonical
from registry.eventlog.verify import ChainVerifier, LogRow, compiled, fastchain

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Report(msgspec.Struct, kw_only=True, frozen=True):
    """The outcome of checking an export against checkpoints."""

    ok: bool
    events: int
    """Lines (events) read from the export."""
    checked: int
    """Events whose bytes, hash and chain link verified."""
    checkpoint_size: int | None
    checkpoint_root: str | None
    """The signed root (hex) of the largest checkpoint given."""
    computed_root: str | None
    """The root recomputed from the export at that size (None if the export is shorter)."""
    first_bad_position: int | None = None
    problem: str | None = None
    head_hash: str | None = None


class ConsistencyReport(msgspec.Struct, kw_only=True, frozen=True):
    ok: bool
    old_size: int | None
    new_size: int | None
    problem: str | None = None


# -- the export ---------------------------------------------------------------------------------


def _lines(log_file: str | os.PathLike[str] | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(log_file, (str, os.PathLike)):
        with open(log_file, "rb") as f:
            yield from f
    else:
        yield from log_file


def _row(raw: bytes) -> LogRow:
    """An export line as the verifier's row: the columns are read back from the canonical bytes."""
    obj = msgspec.json.decode(raw)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    position = obj.get("position")
    if not isinstance(position, int) or isinstance(position, bool):
        raise ValueError("no integer position")
    if isinstance(obj.get("canonical"), str):
        data = obj["canonical"].encode("utf-8")
    elif isinstance(obj.get("canonical_base64"), str):
        data = base64.b64decode(obj["canonical_base64"], validate=True)
    else:
        raise ValueError("no canonical bytes")
    hashes = []
    for name in ("hash", "prev_hash"):
        value = obj.get(name)
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            raise ValueError(f"no {name} of 64 lowercase hex digits")
        hashes.append(bytes.fromhex(value))
    hash_, prev_hash = hashes
    try:
        doc = canonical.decode(data)
    except canonical.UNDECODABLE:  # the verifier itself reports bytes that are not an event
        return LogRow(position=position, stream_id="", stream_version=0, event_type="", schema_version=0, actor="",
                      recorded_at=_EPOCH, effective_date=None, canonical=data, hash=hash_, prev_hash=prev_hash)
    return LogRow(position=position, stream_id=doc.stream, stream_version=doc.version, event_type=doc.type,
                  schema_version=doc.schema, actor=doc.meta.actor, recorded_at=doc.recorded_at,
                  effective_date=doc.effective_date, canonical=data, hash=hash_, prev_hash=prev_hash)


def verify_export(log_file: str | os.PathLike[str] | Iterable[bytes], checkpoint_text: str | bytes | Sequence[str | bytes],
                  *, origin: str, vkey: str | NoteVerifier,
                  progress: Callable[[int], None] | None = None, fast: bool | None = None,
                  threads: int | None = None) -> Report:
    """Check an export against one checkpoint (or several: the roots are recomputed at each size).

    An export given as a file is checked by the compiled fast path when it was built (`fast`, by
    default) on `threads` threads (default: one per core, at most 8); lines it does not accept are
    checked in Python, which names any problem. Either way the report is the same."""
    notes = [checkpoint_text] if isinstance(checkpoint_text, (str, bytes)) else list(checkpoint_text)
    try:
        verifier = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.parse(vkey)
        checkpoints = sorted((verify_checkpoint(n, origin=origin, vkey=verifier) for n in notes),
                             key=lambda c: c.size)
    except CheckpointInvalid as exc:
        return Report(ok=False, events=0, checked=0, checkpoint_size=None, checkpoint_root=None,
                      computed_root=None, problem=f"checkpoint: {exc}")
    if not checkpoints:
        raise ValueError("give at least one checkpoint")
    by_size: dict[int, Checkpoint] = {}
    for c in checkpoints:
        if by_size.setdefault(c.size, c).root_hash != c.root_hash:
            return Report(ok=False, events=0, checked=0, checkpoint_size=c.size, checkpoint_root=c.root_hash.hex(),
                          computed_root=None, problem=f"two signed checkpoints of size {c.size} state different "
                                                      "roots: the log was forked")
    largest = checkpoints[-1]

    walk = _Walk(largest.size, by_size)
    if compiled(fast) and isinstance(log_file, (str, os.PathLike)):
        _walk_file_fast(log_file, walk, progress, threads or min(os.cpu_count() or 1, 8))  # type: ignore[arg-type]
    else:
        for raw in _lines(log_file):
            walk.line(raw, progress)

    chain, events = walk.chain, walk.events
    finding = walk.chain_finding
    if events < largest.size:
        short = (events, f"the export has {events} events but the checkpoint was signed over {largest.size}: "
                         f"the log is shorter than the signed tree (position {events} onwards is gone)")
        if finding is None or short[0] < finding[0]:
            finding = short
    computed = walk.roots.get(largest.size)
    if finding is None:
        finding = _root_finding(checkpoints, walk.roots)
    return Report(
        ok=finding is None, events=events, checked=chain.checked, checkpoint_size=largest.size,
        checkpoint_root=largest.root_hash.hex(), computed_root=None if computed is None else computed.hex(),
        first_bad_position=None if finding is None else finding[0],
        problem=None if finding is None else finding[1],
        head_hash=chain.previous_hash.hex() if chain.checked else None,
    )


class _Walk:
    """One pass over the export's lines: the chain, and the Merkle roots at every checkpoint size."""

    def __init__(self, largest: int, by_size: dict[int, Checkpoint]) -> None:
        self.largest = largest
        self.by_size = by_size
        self.chain = ChainVerifier()
        self.frontier = merkle.Frontier()
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in by_size else {}
        self.events = 0
        self.chain_finding: tuple[int, str] | None = None
        self.leaves_ok = True

    def line(self, raw: bytes, progress: Callable[[int], None] | None) -> None:
        """One line, checked in Python (`ChainVerifier.feed`)."""
        if progress is not None:
            progress(len(raw))
        if not raw.strip():
            return
        position = self.events
        self.events += 1
        try:
            row = _row(raw)
        except (msgspec.DecodeError, ValueError, UnicodeEncodeError, binascii.Error) as exc:
            self.leaves_ok = False
            if self.chain_finding is None:
                self.chain_finding = (self.chain.expected_position,
                                      f"line {position + 1} is not an exported event: {exc}")
            return
        if self.chain_finding is None:
            found = self.chain.feed(row)
            if found is not None:
                self.chain_finding = (found.position, found.problem)
        if self.leaves_ok:
            self._take(merkle.leaf_hash(row.canonical))

    def fast_ready(self) -> bool:
        """Nothing found so far, so the compiled path may continue the walk."""
        return (self.chain_finding is None and self.leaves_ok and self.chain.expected_position == self.events
                and self.frontier.size == min(self.events, self.largest))

    def wants_leaves(self) -> bool:
        return self.frontier.size < self.largest

    def accept(self, count: int, last_hash: bytes, leaves: bytes) -> None:
        """`count` lines verified by the compiled path, with their leaf hashes when asked for."""
        self.chain.accept(count, last_hash)
        self.events += count
        self._take(leaves)

    def _take(self, leaves: bytes) -> None:
        """Leaf hashes into the frontier, up to the largest checkpoint's size, with the root taken at
        every checkpoint size reached."""
        wanted = max(0, self.largest - self.frontier.size) * merkle.HASH_SIZE
        for grown in grow(self.frontier, leaves[:wanted], self.by_size):
            self.roots[grown.size] = grown.root()


CHUNK = 8 << 20
"""Bytes of the export checked per step by the compiled path."""


def _walk_file_fast(path: str | os.PathLike[str], walk: _Walk, progress: Callable[[int], None] | None,
                    threads: int) -> None:
    """Lines checked in C a chunk at a time, straight from the mapped file (`_verify_lines`); a line it
    does not accept, and the rest of that chunk, are walked in Python, which names what is wrong (or
    accepts the line)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            offset = 0
            while offset < size:
                end = min(size, offset + CHUNK)
                complete, consumed = False, 0
                if walk.fast_ready():
                    before = walk.chain.expected_position
                    complete, position, last_hash, consumed, leaves = _verify_lines(
                        mapped, offset, end, before, walk.chain.previous_hash, walk.wants_leaves(), threads)
                    walk.accept(position - before, last_hash, leaves)
                    if progress is not None and consumed:
                        progress(consumed)
                if complete and consumed and end < size:
                    offset += consumed  # what is left is an unfinished line: it starts the next chunk
                    continue
                start = offset + consumed
                stop = size if end == size else mapped.rfind(b"\n", start, end) + 1
                if stop <= start:  # one line longer than a chunk
                    newline = mapped.find(b"\n", start)
                    stop = size if newline < 0 else newline + 1
                for raw in _split_lines(mapped[start:stop]):
                    walk.line(raw, progress)
                offset = stop


class _LineHead(msgspec.Struct):
    """Where an export line says it stands: its position and its predecessor's hash."""

    position: int
    prev_hash: str


_line_head = msgspec.json.Decoder(_LineHead).decode


def _verify_lines(mapped: mmap.mmap, start: int, end: int, position: int, previous_hash: bytes,
                  leaves: bool, cores: int) -> tuple[bool, int, bytes, int, bytes]:
    """`fastchain.verify_lines` over mapped[start:end], on every core: the range is cut at line
    boundaries into one part per core, and each part after the first is checked from where its first
    line says it stands (position, prev_hash). The parts are stitched only if each one ended exactly
    where the next one's first line says it starts; otherwise the range is checked again in one
    piece, so the result is always that of one sequential pass."""
    def check(a: int, b: int, at: int, previous: bytes) -> tuple[bool, int, bytes, int, bytes]:
        with memoryview(mapped) as view, view[a:b] as part:
            return fastchain.verify_lines(part, at, previous, leaves)

    bounds = [start]
    starts: list[tuple[int, bytes]] = [(position, previous_hash)]
    try:
        for k in range(1, cores):
            cut = mapped.find(b"\n", max(bounds[-1], start + (end - start) * k // cores), end) + 1
            line_end = mapped.find(b"\n", cut, end) if 0 < cut < end else -1
            if cut <= bounds[-1] or line_end < 0:
                break  # no whole line left to start another part with
            head = _line_head(mapped[cut:line_end])
            starts.append((head.position, bytes.fromhex(head.prev_hash)))
            bounds.append(cut)
    except (msgspec.DecodeError, ValueError):  # not an exported line: the sequential pass says what it is
        return check(start, end, position, previous_hash)
    if len(bounds) == 1:
        return check(start, end, position, previous_hash)
    bounds.append(end)
    with ThreadPoolExecutor(max_workers=len(starts), thread_name_prefix="verify") as pool:
        parts = list(pool.map(lambda k: check(bounds[k], bounds[k + 1], *starts[k]), range(len(starts))))
    for k, (complete, next_position, last_hash, consumed, _) in enumerate(parts[:-1]):
        if not (complete and consumed == bounds[k + 1] - bounds[k] and (next_position, last_hash) == starts[k + 1]):
            return check(start, end, position, previous_hash)
    complete, next_position, last_hash, consumed, _ = parts[-1]
    return complete, next_position, last_hash, bounds[-2] - start + consumed, b"".join(part[4] for part in parts)


def _split_lines(data: bytes) -> Iterator[bytes]:
    """As iterating over a file opened in binary mode splits: after each b"\n", which stays on its line."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield data[start:end]
        start = end


def _root_finding(checkpoints: list[Checkpoint], roots: dict[int, bytes]) -> tuple[int | None, str] | None:
    """The smallest checkpoint whose root differs; the previous matching one bounds where the change is."""
    good = 0
    for c in checkpoints:
        computed = roots.get(c.size)
        if computed is None:
            continue
        if computed != c.root_hash:
            if c.size - good == 1:  # the previous checkpoint matched: the one event between them changed
                return (good, f"the Merkle root of the first {c.size} events differs from the signed checkpoint "
                              f"while the first {good} match: the event at position {good} was changed "
                              "(and the hashes after it recomputed to hide it)")
            where = f"positions {good} to {c.size - 1}" if good else f"the first {c.size} events"
            return (None, f"the Merkle root of the first {c.size} events differs from the signed checkpoint: "
                          f"an event in {where} was changed (and the hashes after it recomputed to hide it)")
        good = c.size
    return None


# -- two checkpoints ----------------------------------------------------------------------------


def verify_consistency(old_checkpoint: str | bytes, new_checkpoint: str | bytes, proof: Sequence[bytes | str], *,
                       origin: str, vkey: str | NoteVerifier) -> ConsistencyReport:
    """Both checkpoints signed by the pinned key, and the newer tree an extension of the older (RFC 9162)."""
    try:
        verifier = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.parse(vkey)
        old = verify_checkpoint(old_checkpoint, origin=origin, vkey=verifier)
        new = verify_checkpoint(new_checkpoint, origin=origin, vkey=verifier)
        hashes = [p if isinstance(p, bytes) else bytes.fromhex(p) for p in proof]
    except (CheckpointInvalid, ValueError) as exc:
        return ConsistencyReport(ok=False, old_size=None, new_size=None, problem=f"checkpoint: {exc}")

    def result(ok: bool, problem: str) -> ConsistencyReport:
        return ConsistencyReport(ok=ok, old_size=old.size, new_size=new.size, problem=None if ok else problem)

    if old.size > new.size:
        return result(False, f"the newer checkpoint ({new.size} events) is smaller than the older ({old.size}): "
                             "the log was truncated")
    if old.size == new.size:
        return result(old.root_hash == new.root_hash and not hashes,
                      f"two checkpoints of size {old.size} state different roots: the log was forked")
    if old.size == 0:  # the empty tree is a prefix of every tree: nothing to prove
        return result(old.root_hash == merkle.EMPTY_ROOT and not hashes, "the empty checkpoint's root is wrong")
    return result(merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, hashes),
                  f"the consistency proof from {old.size} to {new.size} does not verify: the newer tree does "
                  "not extend the older one")


# -- the command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The offline options, for `registry verify` (which has its own -q/--quiet)."""
    parser.add_argument("--export", type=Path, help="JSON Lines export of the log (`registry export log`)")
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="signed checkpoint note; repeat to check the export against several")
    parser.add_argument("--origin", help="the log's origin the checkpoints must name (default: the key's name)")
    parser.add_argument("--key", help="verifier key <name>+<id>+<base64>, or a file holding it "
                                      "(GET /checkpoints/public-key)")
    parser.add_argument("--old-checkpoint", type=Path, help="an older checkpoint to prove the newest one extends")
    parser.add_argument("--consistency-proof", type=Path,
                        help="JSON from GET /audit/consistency-proof (or a list of hex hashes)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when everything verifies, 1 naming the first bad position, 2 for unusable input."""
    try:
        vkey_text = Path(args.key).read_text(encoding="utf-8").strip() if args.key and Path(args.key).is_file() \
            else args.key
        if not vkey_text or not args.checkpoint:
            print("give --key and at least one --checkpoint", file=sys.stderr)
            return 2
        verifier = NoteVerifier.parse(vkey_text)
        origin = args.origin or verifier.name
        notes = [p.read_bytes() for p in args.checkpoint]
        if args.export is None and args.old_checkpoint is None:
            print("give --export, or --old-checkpoint with --consistency-proof", file=sys.stderr)
            return 2
        old_note = args.old_checkpoint.read_bytes() if args.old_checkpoint is not None else None
        proof = _read_proof(args.consistency_proof) if args.consistency_proof is not None else []
        if args.export is not None and not args.export.is_file():
            raise FileNotFoundError(f"no export file {args.export}")
    except (OSError, CheckpointInvalid, ValueError) as exc:  # msgspec.DecodeError is a ValueError
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2

    failed = False
    if args.export is not None:
        report = _verify_with_progress(args.export, notes, origin, verifier, quiet=getattr(args, "quiet", False))
        if report.ok:
            print(f"OK: {report.events} events, chain intact; the Merkle root of the first {report.checkpoint_size} "
                  f"matches the checkpoint signed by {verifier.name}; head hash {report.head_hash}")
        else:
            failed = True
            where = f" at position {report.first_bad_position}" if report.first_bad_position is not None else ""
            print(f"FAILED{where}: {report.problem} ({report.checked} events before it verified)", file=sys.stderr)
    if old_note is not None:
        newest = max(notes, key=lambda n: _size_of(n, origin, verifier))
        consistency = verify_consistency(old_note, newest, proof, origin=origin, vkey=verifier)
        if consistency.ok:
            print(f"OK: the tree of {consistency.new_size} events extends the tree of {consistency.old_size}")
        else:
            failed = True
            print(f"FAILED: {consistency.problem}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="registry verify",
        description="verify an exported log against signed checkpoints, with no database; exit 1 naming the "
                    "first bad position")
    add_arguments(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return run(parser.parse_args(argv))


def _verify_with_progress(export: Path, notes: list[bytes], origin: str, verifier: NoteVerifier, *,
                          quiet: bool) -> Report:
    from tqdm import tqdm

    with tqdm(total=export.stat().st_size, unit="B", unit_scale=True, desc="verifying", file=sys.stderr,
              disable=quiet) as bar:
        return verify_export(export, notes, origin=origin, vkey=verifier, progress=bar.update)


def _read_proof(path: Path) -> list[str]:
    data: Any = msgspec.json.decode(path.read_bytes())
    if isinstance(data, dict):
        data = data.get("proof")
    if not isinstance(data, list) or not all(isinstance(h, str) for h in data):
        raise ValueError(f"{path} holds no list of hex hashes (a `proof` member)")
    return data


def _size_of(note: bytes, origin: str, verifier: NoteVerifier) -> int:
    """The size a note states, if it verifies (-1 otherwise, so that the consistency check reports it)."""
    try:
        return verify_checkpoint(note, origin=origin, vkey=verifier).size
    except CheckpointInvalid:
        return -1
