"""HTTP for audit: tree heads, inclusion and consistency proofs, range integrity checks, signed checkpoints.

Hashes are lowercase hex; checkpoint notes are served exactly as signed (C2SP signed-note text).
The checkpoint signer comes from the app's state (`checkpoint_signer`); its private key never
leaves it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, QueryParameter

from registry.access.policy import READ_ALL, allow
from registry.access.tokens import Role
from registry.audit import store
from registry.audit.checkpoint import CheckpointSigner
from registry.errors import InternalError
from registry.http.commands import run_command
from registry.http.openapi import refuses
from registry.http.pagination import MAX_POSITION, Page, clamp_limit, page, position_cursor
from registry.http.params import Limit, PositionAfter

EVERYONE = tuple(Role)


class TreeHead(msgspec.Struct, kw_only=True, frozen=True):
    tree_size: int
    root_hash: str


class InclusionProof(msgspec.Struct, kw_only=True, frozen=True):
    """RFC 9162 §2.1.3: the audit path of one event (leaf hash = SHA-256(0x00 ‖ canonical bytes))."""

    position: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str]


class ConsistencyProof(msgspec.Struct, kw_only=True, frozen=True):
    """RFC 9162 §2.1.4: the older tree is a prefix of the newer one."""

    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str]


class Integrity(msgspec.Struct, kw_only=True, frozen=True):
    """A range check: hash chain, each event against its recorded leaf, the root at `to` and checkpoints."""

    from_: int = msgspec.field(name="from")
    to: int
    checked: int
    ok: bool
    first_bad_position: int | None
    problem: str | None
    log_size: int
    tree_size: int
    root_hash: str | None
    recomputed_root: str | None
    checkpoints_checked: int


class Checkpoint(msgspec.Struct, kw_only=True, frozen=True):
    """A signed tree head; `note` is the C2SP checkpoint exactly as signed (save it as a file to verify later)."""

    tree_size: int
    root_hash: str
    origin: str
    key_name: str
    key_id: str
    note: str
    signed_at: dt.datetime
    signed_by: str


class PublicKey(msgspec.Struct, kw_only=True, frozen=True):
    """The key that verifies checkpoints, as a signed-note verifier key `<name>+<key id>+<base64(0x01 ‖ key)>`."""

    vkey: str
    key_name: str
    key_id: str
    algorithm: str
    origin: str


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def checkpoint_out(c: store.StoredCheckpoint) -> Checkpoint:
    return Checkpoint(tree_size=c.tree_size, root_hash=c.root_hash.hex(), origin=c.origin, key_name=c.key_name,
                      key_id=c.key_id.hex(), note=c.note, signed_at=c.signed_at, signed_by=c.signed_by)


def signer_of(state: State) -> CheckpointSigner:
    signer = state.get("checkpoint_signer")
    if signer is None:
        raise InternalError("no checkpoint signing key is configured")
    return signer


class AuditController(Controller):
    path = "/audit"
    tags = ["audit · 审计"]

    @get("/tree-head", summary="The Merkle tree head (size, root) for a size up to the current one",
         opt=allow(*READ_ALL) | refuses(store.SizeOutOfRange))
    async def tree_head(
        self, state: State,
        size: Annotated[int | None, QueryParameter(description="tree size (default: the whole log)", le=MAX_POSITION)] = None,
    ) -> TreeHead:
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            head = await store.tree_head(conn, size)
        return TreeHead(tree_size=head.size, root_hash=head.root_hash.hex())

    @get("/inclusion-proof", summary="Proof that the event at a position is in the tree of a size",
         opt=allow(*READ_ALL) | refuses(store.SizeOutOfRange, store.PositionOutOfRange))
    async def inclusion_proof(
        self, state: State,
        position: Annotated[int, QueryParameter(description="log position of the event", le=MAX_POSITION)],
        size: Annotated[int | None, QueryParameter(description="tree size (default: the whole log)", le=MAX_POSITION)] = None,
    ) -> InclusionProof:
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            p = await store.inclusion_proof(conn, position, size)
        return InclusionProof(position=p.position, tree_size=p.tree_size, leaf_hash=p.leaf_hash.hex(),
                              root_hash=p.root_hash.hex(), proof=[h.hex() for h in p.proof])

    @get("/consistency-proof", summary="Proof that the tree of `old` events is a prefix of the tree of `new`",
         opt=allow(*READ_ALL) | refuses(store.SizeOutOfRange, store.ConsistencySizesInvalid))
    async def consistency_proof(
        self, state: State,
        old: Annotated[int, QueryParameter(description="the older tree size (at least 1)", le=MAX_POSITION)],
        new: Annotated[int | None, QueryParameter(description="the newer tree size (default: the whole log)", le=MAX_POSITION)] = None,
    ) -> ConsistencyProof:
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            p = await store.consistency_proof(conn, old, new)
        return ConsistencyProof(old_size=p.old_size, new_size=p.new_size, old_root=p.old_root.hex(),
                                new_root=p.new_root.hex(), proof=[h.hex() for h in p.proof])

    @get("/integrity", summary="Check positions [from, to): hash chain, Merkle leaves and root, checkpoints",
         opt=allow(*READ_ALL) | refuses(store.SizeOutOfRange, store.RangeInvalid))
    async def integrity(
        self, state: State,
        start: Annotated[int, QueryParameter(name="from", description="first position checked", le=MAX_POSITION)] = 0,
        to: Annotated[int | None, QueryParameter(description="end (exclusive) = the tree size whose root is "
                                                             "checked; default: the whole log", le=MAX_POSITION)] = None,
    ) -> Integrity:
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            r = await store.integrity(conn, start, to, state.get("checkpoint_signer"))
        return Integrity(from_=r.start, to=r.end, checked=r.checked, ok=r.ok, first_bad_position=r.first_bad_position,
                         problem=r.problem, log_size=r.log_size, tree_size=r.tree_size, root_hash=_hex(r.root_hash),
                         recomputed_root=_hex(r.recomputed_root), checkpoints_checked=r.checkpoints_checked)


class CheckpointController(Controller):
    path = "/checkpoints"
    tags = ["audit · 审计"]

    @post("/", summary="Sign the current tree head (a checkpoint); the same size is signed once",
          opt=allow(Role.operator, writes=True))
    async def sign(self, request: Request, state: State) -> Response[Any]:
        signer = signer_of(state)
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            await store.extend(conn)  # catch up outside the writer; the command then extends only the last few

        async def handler(ctx: Any) -> dict[str, Any]:
            signed = await store.sign_current(ctx.conn, signer, signed_by=ctx.meta.actor, now=ctx.now)
            return msgspec.to_builtins(checkpoint_out(signed))

        return await run_command(request, command="SignCheckpoint", body={}, handler=handler)

    @get("/", summary="Signed checkpoints, smallest tree first (cursor: tree size)", opt=allow(*READ_ALL))
    async def list_checkpoints(
        self, state: State,
        after: PositionAfter = None, limit: Limit = None,
    ) -> Page[Checkpoint]:
        n = clamp_limit(limit, state.settings.page_limit_max)
        async with state.db.connection() as conn:
            items = await store.list_checkpoints(conn, after=position_cursor(after), limit=n)
        return page([checkpoint_out(c) for c in items], n, lambda c: c.tree_size)

    @get("/latest", summary="The latest signed checkpoint", opt=allow(*READ_ALL) | refuses(store.NoCheckpoint))
    async def latest(self, state: State) -> Checkpoint:
        async with state.db.connection() as conn:
            found = await store.latest_checkpoint(conn)
        if found is None:
            raise store.NoCheckpoint("no checkpoint has been signed yet")
        return checkpoint_out(found)

    @get("/public-key", summary="The verifier key of checkpoints (signed-note vkey format)", opt=allow(*EVERYONE))
    async def public_key(self, state: State) -> PublicKey:
        signer = signer_of(state)
        return PublicKey(vkey=signer.vkey, key_name=signer.name, key_id=signer.verifier.key_id.hex(),
                         algorithm="Ed25519", origin=signer.origin)

    @get("/{tree_size:int}", summary="The checkpoint of one tree size", opt=allow(*READ_ALL))
    async def one(self, state: State, tree_size: FromPath[int]) -> Checkpoint:
        async with state.db.connection() as conn:
            found = await store.checkpoint_at(conn, tree_size)
        if found is None:
            raise store.NoCheckpoint(f"no checkpoint of tree size {tree_size}", tree_size=tree_size)
        return checkpoint_out(found)
