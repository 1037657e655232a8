"""The Merkle tree is RFC 6962 / RFC 9162's, checked against the Certificate Transparency reference vectors."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.audit import merkle

# The Certificate Transparency reference tests' leaves (hex) and the root of each tree size 0..8.
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = {name: bytes.fromhex(value) for name, value in {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}.items()}
# (leaf index, tree size, audit path) — the reference inclusion proofs (0-based indices).
INCLUSION = [
    (0, 1, []),
    (0, 8, [H["96a2"], H["5f08"], H["6b47"]]),
    (5, 8, [H["bc1a"], H["ca85"], ROOTS[4]]),
    (2, 3, [ROOTS[2]]),
    (1, 5, [ROOTS[1], H["5f08"], H["bc1a"]]),
]
# (old size, new size, proof) — the reference consistency proofs.
CONSISTENCY = [
    (1, 8, [H["96a2"], H["5f08"], H["6b47"]]),
    (6, 8, [H["0ebc"], H["ca85"], ROOTS[4]]),
    (2, 5, [H["5f08"], H["bc1a"]]),
]
LEAF_HASHES = [merkle.leaf_hash(leaf) for leaf in LEAVES]


def reference_root(leaf_hashes: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 §2.1's recursive definition."""
    if not leaf_hashes:
        return merkle.EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = merkle.split_point(len(leaf_hashes))
    return merkle.node_hash(reference_root(leaf_hashes[:k]), reference_root(leaf_hashes[k:]))


# -- the published vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(9))
def test_the_root_of_each_reference_tree_is_the_published_one(size: int) -> None:
    assert merkle.root(LEAVES[:size]) == ROOTS[size]
    assert merkle.root_of_hashes(LEAF_HASHES[:size]) == ROOTS[size]


def test_leaves_and_nodes_are_hashed_with_the_0x00_and_0x01_prefixes() -> None:
    assert merkle.leaf_hash(b"") == ROOTS[1]
    assert merkle.node_hash(LEAF_HASHES[0], LEAF_HASHES[1]) == ROOTS[2]
    assert merkle.EMPTY_ROOT == ROOTS[0]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_the_reference_inclusion_proofs_are_produced_and_verify(index: int, size: int, path: list[bytes]) -> None:
    assert merkle.inclusion_proof(LEAF_HASHES, index, size) == path
    assert merkle.verify_inclusion(LEAF_HASHES[index], index, size, path, ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_the_reference_consistency_proofs_are_produced_and_verify(old: int, new: int, proof: list[bytes]) -> None:
    assert merkle.consistency_proof(LEAF_HASHES, old, new) == proof
    assert merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof)


# -- what must be refused -------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[1:])
def test_an_inclusion_proof_for_the_wrong_index_leaf_or_root_is_refused(index: int, size: int,
                                                                           path: list[bytes]) -> None:
    leaf, root = LEAF_HASHES[index], ROOTS[size]
    for wrong in (index - 1, index + 1, index ^ 2):
        if 0 <= wrong < size:
            assert not merkle.verify_inclusion(leaf, wrong, size, path, root)
    assert not merkle.verify_inclusion(LEAF_HASHES[(index + 1) % 8], index, size, path, root)
    assert not merkle.verify_inclusion(leaf, index, size, path, ROOTS[size - 1])


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[1:])
def test_an_inclusion_proof_one_element_too_long_or_too_short_is_refused(index: int, size: int,
                                                                       path: list[bytes]) -> None:
    leaf, root = LEAF_HASHES[index], ROOTS[size]
    assert not merkle.verify_inclusion(leaf, index, size, path[:-1], root)
    assert not merkle.verify_inclusion(leaf, index, size, [*path, path[-1]], root)
    assert not merkle.verify_inclusion(leaf, index, size, [*path, bytes(32)], root)
    assert not merkle.verify_inclusion(leaf, index, size, [bytes(32), *path], root)


def test_an_index_at_or_beyond_the_size_is_invalid() -> None:
    assert not merkle.verify_inclusion(LEAF_HASHES[0], 8, 8, [H["96a2"], H["5f08"], H["6b47"]], ROOTS[8])
    assert not merkle.verify_inclusion(LEAF_HASHES[0], -1, 8, [H["96a2"], H["5f08"], H["6b47"]], ROOTS[8])
    assert not merkle.verify_inclusion(LEAF_HASHES[0], 0, 0, [], ROOTS[0])
    with pytest.raises(ValueError):
        merkle.inclusion_proof(LEAF_HASHES, 8, 8)
    with pytest.raises(ValueError):
        merkle.inclusion_proof(LEAF_HASHES, 0, 9)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_a_consistency_proof_one_element_too_long_or_too_short_or_altered_is_refused(old: int, new: int,
                                                                                   proof: list[bytes]) -> None:
    assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], proof[:-1])
    assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], [*proof, proof[-1]])
    assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], [*proof, bytes(32)])
    assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], [])
    assert not merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new], proof)
    assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new - 1], proof)
    if len(proof) > 1:
        assert not merkle.verify_consistency(old, new, ROOTS[old], ROOTS[new], [proof[1], proof[0], *proof[2:]])


def test_an_empty_old_tree_an_old_tree_larger_than_the_new_or_equal_sizes_are_refused() -> None:
    assert not merkle.verify_consistency(0, 8, ROOTS[0], ROOTS[8], [])
    assert not merkle.verify_consistency(0, 8, ROOTS[0], ROOTS[8], [ROOTS[8]])
    assert not merkle.verify_consistency(8, 6, ROOTS[8], ROOTS[6], [H["0ebc"], H["ca85"], ROOTS[4]])
    assert not merkle.verify_consistency(8, 8, ROOTS[8], ROOTS[8], [])
    for old, new in ((0, 8), (8, 6), (8, 8)):
        with pytest.raises(ValueError):
            merkle.consistency_proof(LEAF_HASHES, old, new)


def test_hashes_that_are_not_32_bytes_are_refused() -> None:
    path = [H["bc1a"], H["ca85"], ROOTS[4]]
    assert not merkle.verify_inclusion(LEAF_HASHES[5][:31], 5, 8, path, ROOTS[8])
    assert not merkle.verify_inclusion(LEAF_HASHES[5], 5, 8, [path[0][:31], *path[1:]], ROOTS[8])
    assert not merkle.verify_inclusion(LEAF_HASHES[5], 5, 8, path, ROOTS[8] + b"\x00")


# -- properties over many tree shapes -------------------------------------------------------------

MANY = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(70)]
MANY_ROOTS = [reference_root(MANY[:n]) for n in range(len(MANY) + 1)]


def test_the_incremental_frontier_gives_the_recursive_definitions_root_at_every_size() -> None:
    frontier = merkle.Frontier()
    assert frontier.root() == merkle.EMPTY_ROOT
    for n, h in enumerate(MANY, start=1):
        frontier.append(h)
        assert frontier.root() == MANY_ROOTS[n]


def test_every_proof_from_stored_complete_subtrees_equals_the_proof_from_the_leaves() -> None:
    nodes: dict[merkle.Node, bytes] = {}
    frontier = merkle.Frontier()
    for h in MANY:
        nodes.update(frontier.append(h))
    for size in range(1, len(MANY) + 1):
        peaks = [nodes[node] for node in merkle.peaks(size)]
        assert merkle.Frontier(size, peaks).root() == MANY_ROOTS[size]
        for index in range(size):
            assert merkle.proof_from(merkle.inclusion_ranges(index, size), nodes.__getitem__) == \
                merkle.inclusion_proof(MANY, index, size)
        for old in range(1, size):
            assert merkle.proof_from(merkle.consistency_ranges(old, size), nodes.__getitem__) == \
                merkle.consistency_proof(MANY, old, size)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_nothing_else_does(case: tuple[int, int]) -> None:
    size, index = case
    proof = merkle.inclusion_proof(MANY, index, size)
    assert merkle.verify_inclusion(MANY[index], index, size, proof, MANY_ROOTS[size])
    if index + 1 < size:
        assert not merkle.verify_inclusion(MANY[index + 1], index, size, proof, MANY_ROOTS[size])
        assert not merkle.verify_inclusion(MANY[index], index + 1, size, proof, MANY_ROOTS[size])


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))))
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    new, old = case
    proof = merkle.consistency_proof(MANY, old, new)
    assert merkle.verify_consistency(old, new, MANY_ROOTS[old], MANY_ROOTS[new], proof)


def _flip(data: bytes, byte: int, bit: int) -> bytes:
    i = byte % len(data)
    return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:]


@settings(max_examples=300, deadline=None)
@given(leaves=st.lists(st.binary(max_size=40), min_size=1, max_size=40), pick=st.integers(0, 10_000),
       byte=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_a_single_flipped_bit_in_a_leaf_or_an_inclusion_proof_is_caught(leaves: list[bytes], pick: int, byte: int,
                                                                      bit: int) -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    size, index = len(leaves), pick % len(leaves)
    root = merkle.root(leaves)
    proof = merkle.inclusion_proof(hashes, index, size)
    assert merkle.verify_inclusion(hashes[index], index, size, proof, root)
    altered_leaf = _flip(leaves[index], byte, bit) if leaves[index] else b"\x01"
    assert not merkle.verify_inclusion(merkle.leaf_hash(altered_leaf), index, size, proof, root)
    if proof:
        which = byte % len(proof)
        bad = [*proof[:which], _flip(proof[which], byte // len(proof), bit), *proof[which + 1:]]
        assert not merkle.verify_inclusion(hashes[index], index, size, bad, root)
    assert not merkle.verify_inclusion(hashes[index], index, size, proof, _flip(root, byte, bit))


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))),
       st.integers(0, 10_000), st.integers(0, 7))
def test_a_single_flipped_bit_in_a_consistency_proof_or_root_is_caught(case: tuple[int, int], byte: int,
                                                                     bit: int) -> None:
    new, old = case
    proof = merkle.consistency_proof(MANY, old, new)
    which = byte % len(proof)
    bad = [*proof[:which], _flip(proof[which], byte // len(proof), bit), *proof[which + 1:]]
    assert not merkle.verify_consistency(old, new, MANY_ROOTS[old], MANY_ROOTS[new], bad)
    assert not merkle.verify_consistency(old, new, _flip(MANY_ROOTS[old], byte, bit), MANY_ROOTS[new], proof)
    assert not merkle.verify_consistency(old, new, MANY_ROOTS[old], _flip(MANY_ROOTS[new], byte, bit), proof)


# -- purity ---------------------------------------------------------------------------------------


def test_the_merkle_module_is_pure_standard_library() -> None:
    tree = ast.parse(Path(str(merkle.__file__)).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert all(m.split(".")[0] in sys.stdlib_module_names for m in imported), imported
    assert not any(isinstance(n, ast.AsyncFunctionDef) for n in ast.walk(tree))
