"""Growing a Merkle frontier by many leaves at once: what the verifiers do after checking a window.

`merkle` stays pure standard library (a regulator can read it alone); this adds the compiled fast
path, which hashes the frontier's new nodes in C, and falls back to `Frontier.append` without it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from registry.audit.merkle import HASH_SIZE, Frontier
from registry.eventlog.verify import fastchain


def grow(frontier: Frontier, leaf_hashes: bytes, pauses: Collection[int] = ()) -> Iterator[Frontier]:
    """Append leaf hashes (32 bytes each, concatenated) to `frontier` in place, exactly as `append`
    would one at a time; yields it whenever its size reaches one of `pauses` (to take a root there).
    Many leaves at once are hashed in C when the compiled fast path was built."""
    count = len(leaf_hashes) // HASH_SIZE
    end = frontier.size + count
    stops = sorted(p for p in pauses if frontier.size < p <= end)
    at = 0
    for stop in [*stops, end]:
        take = stop - frontier.size
        if take <= 0:
            continue
        part = leaf_hashes[at:at + take * HASH_SIZE]
        if fastchain is not None:
            frontier.size, frontier.peaks = fastchain.frontier_extend(frontier.size, frontier.peaks, part)
        else:
            for i in range(0, len(part), HASH_SIZE):
                frontier.append(part[i:i + HASH_SIZE])
        at += take * HASH_SIZE
        if frontier.size in pauses:
            yield frontier
