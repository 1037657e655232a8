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
