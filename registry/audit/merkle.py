"""The RFC 6962 / RFC 9162 Merkle tree over the log's leaves: hashes, tree heads, proofs and their checks.

Pure (hashlib only). The tree over n leaves D[0:n] is the standard one: MTH({}) = SHA-256(),
MTH({d}) = SHA-256(0x00 ‖ d), MTH(D[0:n]) = SHA-256(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])) with k the
largest power of two smaller than n. A leaf of the registry's log is one event's canonical bytes.

Proofs are described twice: as the *ranges* of leaves whose subtree hashes make them up
(`inclusion_ranges`, `consistency_ranges` — RFC 9162 §2.1.3.1 PATH and §2.1.4.1 SUBPROOF), and as
hashes. Every range that appears is either a complete power-of-two subtree or a suffix of one
tree size's right edge, so it decomposes into complete subtrees (`complete_subtrees`); that is what
lets the database keep only complete subtrees and still answer any head or proof in O(log n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of nothing."""

Range = tuple[int, int]
"""Leaves [start, end) whose subtree hash is one proof element."""
Node = tuple[int, int]
"""A complete subtree: (level, index) covers leaves [index·2^level, (index+1)·2^level)."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2): where RFC 6962 splits a tree."""
    if n < 2:
        raise ValueError("only a tree of two or more leaves is split")
    return 1 << ((n - 1).bit_length() - 1)


# -- tree heads ---------------------------------------------------------------------------------


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaves (their raw bytes, not their hashes)."""
    return root_of_hashes([leaf_hash(leaf) for leaf in leaves])


def root_of_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a tree given its leaf hashes."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


class Frontier:
    """The complete subtrees of a growing tree (its "peaks"), enough to append and to give the root.

    Appending a leaf touches O(log n) hashes; the root folds the peaks right to left. This is the
    incremental form of MTH: any size's root from the leaves streamed once.
    """

    def __init__(self, size: int = 0, peaks: Sequence[bytes] = ()) -> None:
        if len(peaks) != size.bit_count():
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} peaks, not {len(peaks)}")
        self.size = size
        self.peaks: list[bytes] = list(peaks)
        """Left to right: the complete subtrees of sizes given by size's binary digits, largest first."""

    def append(self, leaf_hash_: bytes) -> list[tuple[Node, bytes]]:
        """Add one leaf hash; returns every complete subtree this completes (the leaf first, then parents)."""
        index = self.size
        made = [((0, index), leaf_hash_)]
        h = leaf_hash_
        level = 0
        while index & 1:  # a right child: merge with the peak to its left
            h = node_hash(self.peaks.pop(), h)
            index >>= 1
            level += 1
            made.append(((level, index), h))
        self.peaks.append(h)
        self.size += 1
        return made

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        return fold(self.peaks)


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a right-edge range from its complete subtrees, left to right: h0 ⊕ (h1 ⊕ (… ⊕ hk))."""
    result = hashes[-1]
    for h in reversed(hashes[:-1]):
        result = node_hash(h, result)
    return result


def complete_subtrees(start: int, end: int) -> list[Node]:
    """The complete subtrees, left to right, that make up leaves [start, end) as RFC 6962 builds them.

    Valid for the ranges MTH's recursion produces (whole trees, their left halves and right edges):
    there the largest aligned block that fits is always the recursion's left part.
    """
    if not 0 <= start < end:
        raise ValueError(f"[{start}, {end}) is not a non-empty range")
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def peaks(size: int) -> list[Node]:
    """The complete subtrees of a tree of `size` leaves (nothing for the empty tree)."""
    return complete_subtrees(0, size) if size else []


# -- proofs as ranges ---------------------------------------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 PATH(index, D[0:size]), bottom-up, as the leaf ranges of its elements."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    path: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append((start + k, end))
            end = start + k
        else:
            path.append((start, start + k))
            start += k
    path.reverse()
    return path


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[0:new]) = SUBPROOF(old, D[0:new], true), for 0 < old < new."""
    if not 0 < old_size < new_size:
        raise ValueError(f"a consistency proof needs 0 < old < new; got old={old_size}, new={new_size}")
    proof: list[Range] = []
    m, start, end, whole = old_size, 0, new_size, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                proof.append((start, end))
            break
        k = split_point(n)
        if m <= k:
            proof.append((start + k, end))
            end = start + k
        else:
            proof.append((start, start + k))
            m -= k
            start += k
            whole = False
    proof.reverse()
    return proof


# -- proofs as hashes, over an in-memory list of leaf hashes --------------------------------------


def subtree_hash(leaf_hashes: Sequence[bytes], start: int, end: int) -> bytes:
    return root_of_hashes(leaf_hashes[start:end])


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves (default: all)."""
    size = len(leaf_hashes) if size is None else size
    _check_size(leaf_hashes, size)
    return [subtree_hash(leaf_hashes, s, e) for s, e in inclusion_ranges(index, size)]


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """The proof that the tree of `old_size` leaves is a prefix of the tree of `new_size` leaves."""
    new_size = len(leaf_hashes) if new_size is None else new_size
    _check_size(leaf_hashes, new_size)
    return [subtree_hash(leaf_hashes, s, e) for s, e in consistency_ranges(old_size, new_size)]


def proof_from(ranges: Sequence[Range], subtree: Callable[[Node], bytes]) -> list[bytes]:
    """Proof hashes from a source of complete-subtree hashes (e.g. the database)."""
    return [fold([subtree(node) for node in complete_subtrees(s, e)]) for s, e in ranges]


def _check_size(leaf_hashes: Sequence[bytes], size: int) -> None:
    if not 0 <= size <= len(leaf_hashes):
        raise ValueError(f"a tree of {size} leaves needs that many leaves; {len(leaf_hashes)} given")


# -- verification, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 -------------------------------------


def verify_inclusion(leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does `proof` show the leaf with this hash at `index` in the tree with `root_hash`?"""
    if not _hashes_ok(leaf_hash_, root_hash, *proof) or index < 0 or index >= size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash_
    for p in proof:
        if sn == 0:
            return False  # the proof is longer than the path
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (old_size, old_root) a prefix of the tree (new_size, new_root)?

    Only 0 < old < new is provable: an empty old tree or equal sizes have no proof to check.
    """
    if not _hashes_ok(old_root, new_root, *proof) or not 0 < old_size < new_size:
        return False
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False  # the proof is longer than needed
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def _hashes_ok(*hashes: object) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)
