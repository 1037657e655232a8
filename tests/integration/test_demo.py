"""`registry demo` loads a realistic market through the real commands; a second run changes nothing."""

from __future__ import annotations

import asyncpg
import pytest

from registry.demo import load_demo
from registry.eventlog.store import verify_log
from registry.eventlog.verify import ChainVerifier, fastchain


async def test_the_demo_market_loads_once_and_a_second_run_changes_nothing(dsns, settings) -> None:
    first = await load_demo(settings, dsns.app)
    conn = await asyncpg.connect(dsns.app)
    try:
        size, head = await conn.fetchrow("SELECT count(*), max(hash) FROM event")
        second = await load_demo(settings, dsns.app)
        assert await conn.fetchrow("SELECT count(*), max(hash) FROM event") == (size, head)
        stages = {r["status"] for r in await conn.fetch("SELECT status FROM account")}
        assert stages == {"open", "frozen"}
        assert await conn.fetchval("SELECT count(*) FROM account WHERE kind = 'nominee'") == 1
        assert await conn.fetchval("SELECT count(*) FROM approval_request WHERE status = 'pending'") >= 1
    finally:
        await conn.close()
    assert "0 already present" in first and "nothing changed" in second


@pytest.mark.skipif(fastchain is None, reason="the compiled verifier was not built")
async def test_the_compiled_verifier_accepts_every_kind_of_event_the_market_writes(dsns, settings,
                                                                                monkeypatch) -> None:
    """Warrants, listings, parties, approvals, valuations: Chinese names, reasons with line breaks, dates;
    none of it falls back to the row-by-row verifier."""
    await load_demo(settings, dsns.app)
    fed: list[int] = []
    original = ChainVerifier.feed
    monkeypatch.setattr(ChainVerifier, "feed", lambda self, row: fed.append(row.position) or original(self, row))
    conn = await asyncpg.connect(dsns.app)
    try:
        kinds = await conn.fetchval("SELECT count(DISTINCT event_type) FROM event")
        report = await verify_log(conn, window=64, fast=True)
    finally:
        await conn.close()
    assert report.ok and report.checked == report.size
    assert kinds >= 15 and fed == []


async def test_the_demo_market_has_the_ids_the_readme_lists(dsns, settings, client) -> None:
    """README "The demo market": on a fresh data folder the same ids, whoever loads it and when."""
    from support import auth

    await load_demo(settings, dsns.app)
    regulator = auth("regulator", "examiner-1")

    async def read(path: str) -> dict:
        r = await client.get(path, headers=regulator)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    names = {i["investor_id"]: i["name"] for i in (await read("/investors"))["items"]}
    assert {k: names[k] for k in ("INV00000006", "INV00000008", "INV00000010", "INV00000012", "INV00000014")} == {
        "INV00000006": "天津银行股份有限公司", "INV00000008": "渤海产业投资基金管理有限公司", "INV00000010": "张伟",
        "INV00000012": "李娜", "INV00000014": "王芳"}
    accounts = {i: (await read(f"/investors/{i}/accounts"))["items"][0] for i in ("INV00000006", "INV00000012")}
    assert accounts["INV00000006"]["account_id"] == "ACC00000017" and accounts["INV00000012"]["status"] == "frozen"
    register = await read("/warrant-series/WR000001/register")
    holdings = {line["account_id"]: (line["available"], line["pledged"]) for line in register["lines"]}
    assert holdings == {"ACC00000017": (500_000, 300_000), "ACC00000018": (150_000, 0), "ACC00000019": (40_000, 0)}
    assert register["units_issued"] == 1_000_000
    series = await read("/warrant-series/WR000001")
    assert series["target_uscc"] == "91120116MA05ABC025"
    assert (await read("/enterprises/91120116MA05ABC025/stage"))["stage"] == "listing_reserve"
    assert (await read("/enterprises/91120116MA05ABC012/stage"))["stage"] == "standardisation"
    assert (await read("/enterprises/91120111MA05ABC056/stage"))["stage"] == "incubation"
