"""Audit over HTTP: tree heads and proofs that verify, signed checkpoints, and tampering caught online and offline."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.app import create_app
from registry.audit import merkle, offline
from registry.audit.checkpoint import CheckpointSigner, verify_checkpoint
from registry.audit.export import export_jsonl
from registry.calendar.service import ensure_seeded
from registry.db.database import Database
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.writer import NO_STREAM
from registry.settings import Settings
from support import auth, rewrite_and_rechain

CHECKPOINT_KEY = Ed25519PrivateKey.generate()
META = EventMeta(actor="op-1", role="operator", command="test")
OPERATOR = auth("operator", "op-1")
REGULATOR = auth("regulator", "examiner-1")


@pytest.fixture
async def audit(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a fresh database (calendar seeded at position 0), signing checkpoints with a known key."""
    await ensure_seeded(db.writer)
    app = create_app(settings, database=db)
    app.state.checkpoint_signer = CheckpointSigner(CHECKPOINT_KEY, origin=settings.market_origin)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test") as c:
        yield c


async def append(db: Database, n: int) -> None:
    for _ in range(n):
        i = await _next_position(db)
        await db.writer.append(f"s-{i}", NO_STREAM, [NewEvent(type="test.happened", data={"i": i, "memo": "aaaa"})],
                               META)


async def _next_position(db: Database) -> int:
    async with db.connection() as conn:
        return await conn.fetchval("SELECT count(*) FROM event")


async def canonicals(db: Database) -> list[bytes]:
    async with db.connection() as conn:
        return [bytes(r["canonical"]) for r in await conn.fetch("SELECT canonical FROM event ORDER BY position")]


async def sign(client: httpx.AsyncClient, key: str) -> dict:
    r = await client.post("/checkpoints", headers=OPERATOR | {"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return r.json()


async def vkey_of(client: httpx.AsyncClient) -> str:
    return (await client.get("/checkpoints/public-key", headers=REGULATOR)).json()["vkey"]


async def export(db: Database) -> bytes:
    out = io.BytesIO()
    async with db.connection() as conn:
        await export_jsonl(conn, out)
    return out.getvalue()


# -- tree heads and proofs ------------------------------------------------------------------------


async def test_tree_heads_and_proofs_verify_against_the_events_canonical_bytes(audit: httpx.AsyncClient,
                                                                             db: Database) -> None:
    await append(db, 9)
    leaves = await canonicals(db)
    head = (await audit.get("/audit/tree-head", headers=REGULATOR)).json()
    assert head == {"tree_size": 10, "root_hash": merkle.root(leaves).hex()}
    older = (await audit.get("/audit/tree-head?size=6", headers=REGULATOR)).json()
    assert older == {"tree_size": 6, "root_hash": merkle.root(leaves[:6]).hex()}

    p = (await audit.get("/audit/inclusion-proof?position=3&size=7", headers=REGULATOR)).json()
    assert p["leaf_hash"] == merkle.leaf_hash(leaves[3]).hex() and p["root_hash"] == merkle.root(leaves[:7]).hex()
    assert merkle.verify_inclusion(merkle.leaf_hash(leaves[3]), 3, 7, [bytes.fromhex(h) for h in p["proof"]],
                                   merkle.root(leaves[:7]))
    latest = (await audit.get("/audit/inclusion-proof?position=9", headers=OPERATOR)).json()
    assert latest["tree_size"] == 10

    c = (await audit.get("/audit/consistency-proof?old=6&new=10", headers=REGULATOR)).json()
    assert (c["old_root"], c["new_root"]) == (older["root_hash"], head["root_hash"])
    assert merkle.verify_consistency(6, 10, bytes.fromhex(c["old_root"]), bytes.fromhex(c["new_root"]),
                                     [bytes.fromhex(h) for h in c["proof"]])


@pytest.mark.parametrize(("query", "status", "code"), [
    ("/audit/tree-head?size=11", 422, "audit.size_out_of_range"),
    ("/audit/tree-head?size=-1", 422, "audit.size_out_of_range"),
    ("/audit/tree-head?size=ten", 400, "request.invalid"),
    ("/audit/inclusion-proof?position=10&size=10", 422, "audit.position_out_of_range"),
    ("/audit/inclusion-proof?position=0&size=11", 422, "audit.size_out_of_range"),
    ("/audit/inclusion-proof?size=5", 400, "request.invalid"),
    ("/audit/consistency-proof?old=0&new=5", 422, "audit.consistency_sizes_invalid"),
    ("/audit/consistency-proof?old=5&new=5", 422, "audit.consistency_sizes_invalid"),
    ("/audit/consistency-proof?old=6&new=5", 422, "audit.consistency_sizes_invalid"),
    ("/audit/consistency-proof?old=5&new=11", 422, "audit.size_out_of_range"),
    ("/audit/integrity?from=6&to=5", 422, "audit.range_invalid"),
    ("/audit/integrity?to=11", 422, "audit.size_out_of_range"),
])
async def test_bad_parameters_are_problems_naming_the_rule(audit: httpx.AsyncClient, db: Database, query: str,
                                                          status: int, code: str) -> None:
    await append(db, 9)
    r = await audit.get(query, headers=REGULATOR)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == f"urn:registry:problem:{code}"


# -- checkpoints ----------------------------------------------------------------------------------


async def test_an_operator_signs_a_checkpoint_that_verifies_with_the_published_key(audit: httpx.AsyncClient,
                                                                                 db: Database) -> None:
    await append(db, 4)
    assert (await audit.post("/checkpoints", headers=OPERATOR)).status_code == 400  # no Idempotency-Key
    signed = await sign(audit, "cp-1")
    assert signed["tree_size"] == 5 and signed["signed_by"] == "op-1" and signed["log"]["first_position"] is None
    key = (await audit.get("/checkpoints/public-key", headers=auth("investor", "I-1"))).json()
    assert key["algorithm"] == "Ed25519" and key["origin"] == "registry.tjotc.example/log"
    checkpoint = verify_checkpoint(signed["note"], origin=key["origin"], vkey=key["vkey"])
    assert checkpoint.size == 5 and checkpoint.root_hash == merkle.root(await canonicals(db))
    assert signed["root_hash"] == checkpoint.root_hash.hex()

    replay = await audit.post("/checkpoints", headers=OPERATOR | {"Idempotency-Key": "cp-1"})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["note"] == signed["note"]

    await append(db, 2)
    newer = await sign(audit, "cp-2")
    assert newer["tree_size"] == 7
    latest = (await audit.get("/checkpoints/latest", headers=REGULATOR)).json()
    assert latest["note"] == newer["note"]
    listed = (await audit.get("/checkpoints?limit=1", headers=REGULATOR)).json()
    assert [c["tree_size"] for c in listed["items"]] == [5] and listed["next"] == "5"
    rest = (await audit.get("/checkpoints?after=5", headers=REGULATOR)).json()
    assert [c["tree_size"] for c in rest["items"]] == [7] and rest["next"] is None
    one = await audit.get("/checkpoints/5", headers=REGULATOR)
    assert one.json()["note"] == signed["note"]
    missing = await audit.get("/checkpoints/6", headers=REGULATOR)
    assert missing.status_code == 404 and missing.json()["code"] == "audit.no_checkpoint"

    seed = CHECKPOINT_KEY.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
    pem = CHECKPOINT_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()).decode()
    for shown in (signed, newer, latest, listed, key):
        text = str(shown)
        assert seed.hex() not in text and base64.b64encode(seed).decode() not in text and pem not in text


async def test_signing_twice_at_the_same_size_returns_the_same_checkpoint(audit: httpx.AsyncClient) -> None:
    first = await sign(audit, "a")
    second = await sign(audit, "b")
    assert (first["tree_size"], first["note"]) == (second["tree_size"], second["note"])


async def test_before_any_checkpoint_the_latest_is_a_404_problem(audit: httpx.AsyncClient) -> None:
    r = await audit.get("/checkpoints/latest", headers=REGULATOR)
    assert r.status_code == 404 and r.json()["code"] == "audit.no_checkpoint"


async def test_regulators_read_but_do_not_sign_and_parties_see_only_the_public_key(audit: httpx.AsyncClient) -> None:
    assert (await audit.post("/checkpoints", headers=REGULATOR | {"Idempotency-Key": "x"})).status_code == 403
    for role, subject in (("enterprise", "91120116MA00000011"), ("investor", "I-1")):
        headers = auth(role, subject)
        assert (await audit.get("/checkpoints/public-key", headers=headers)).status_code == 200
        for path in ("/checkpoints/latest", "/checkpoints", "/audit/tree-head", "/audit/integrity",
                     "/audit/inclusion-proof?position=0", "/audit/consistency-proof?old=1"):
            assert (await audit.get(path, headers=headers)).status_code == 403, path
    assert (await audit.get("/audit/tree-head")).status_code == 401


# -- tampering, caught by the integrity check and by offline verification of an export ------------

Tamper = Callable[[asyncpg.Connection], Awaitable[None]]
K = 5  # the position tampered with; the log has positions 0 (calendar seed) to 11


async def _alter(conn: asyncpg.Connection) -> None:
    raw = bytes(await conn.fetchval("SELECT canonical FROM event WHERE position = $1", K))
    await conn.execute("UPDATE event SET canonical = $2 WHERE position = $1", K, raw.replace(b"aaaa", b"aaab"))


async def _delete(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM event WHERE position = $1", K)


async def _reorder(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "UPDATE event e SET canonical = o.canonical, hash = o.hash FROM event o "
        "WHERE (e.position, o.position) IN (($1, $2), ($2, $1))", K, K + 3)


async def _truncate_tail(conn: asyncpg.Connection) -> None:
    await conn.execute("DELETE FROM event WHERE position >= $1", K + 3)


async def _rewrite_and_rechain(conn: asyncpg.Connection) -> None:
    await rewrite_and_rechain(conn, K, memo="bbbb")


TAMPERING = {
    "alter": (_alter, K, K),
    "delete": (_delete, K, K),
    "reorder": (_reorder, K, K),
    "truncate-tail": (_truncate_tail, K + 3, K + 3),
    # the chain is whole: the tree's recorded leaf names the position online; offline, one signed root
    # says only "something before 12 changed", a checkpoint at every size names it
    "rewrite-and-rechain": (_rewrite_and_rechain, K, None),
}


@pytest.mark.parametrize("case", list(TAMPERING))
async def test_tampering_is_caught_by_the_integrity_check_and_by_offline_verification(
        audit: httpx.AsyncClient, db: Database, owner: asyncpg.Connection, case: str) -> None:
    tamper, online_position, offline_position = TAMPERING[case]
    notes = []
    for i in range(11):
        await append(db, 1)
        notes.append((await sign(audit, f"cp-{i}"))["note"])  # checkpoints of sizes 2 .. 12
    vkey = await vkey_of(audit)
    origin = "registry.tjotc.example/log"
    before = (await audit.get("/audit/integrity", headers=REGULATOR)).json()
    assert before["ok"] and before["checked"] == 12 and before["checkpoints_checked"] == 11
    clean = offline.verify_export(io.BytesIO(await export(db)), notes[-1], origin=origin, vkey=vkey)
    assert clean.ok and clean.events == 12, clean

    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await tamper(owner)
    await owner.execute("ALTER TABLE event ENABLE TRIGGER event_refuse_change")

    report = (await audit.get("/audit/integrity", headers=REGULATOR)).json()
    assert not report["ok"] and report["first_bad_position"] == online_position, report
    ranged = (await audit.get(f"/audit/integrity?from={online_position}", headers=REGULATOR)).json()
    assert not ranged["ok"] and ranged["first_bad_position"] == online_position, ranged
    untouched = (await audit.get(f"/audit/integrity?to={min(K, online_position)}", headers=REGULATOR)).json()
    assert untouched["ok"], untouched

    exported = await export(db)
    against_last = offline.verify_export(io.BytesIO(exported), notes[-1], origin=origin, vkey=vkey)
    assert not against_last.ok and against_last.first_bad_position == offline_position, against_last
    against_all = offline.verify_export(io.BytesIO(exported), notes, origin=origin, vkey=vkey)
    assert not against_all.ok and against_all.first_bad_position == online_position, against_all
