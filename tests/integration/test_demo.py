"""`registry demo` loads a realistic market through the real commands; a second run changes nothing."""

from __future__ import annotations

import asyncpg

from registry.demo import load_demo


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
