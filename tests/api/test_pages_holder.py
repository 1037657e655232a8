"""The holder's pages: each holding's history, and what it may still do today and why not — the same
answers the API gives when the holder actually tries."""

from __future__ import annotations

import re

import httpx
import pytest

from registry.access.tokens import Role
from registry.calendar.seed import load_seed
from support import sign_in
from warrant_fixtures import TODAY, enterprise, investor, ok, op, register_series, travel


def action(page: str, key: str) -> str:
    """The row of the "what can I do" table for one action."""
    found = re.search(rf'<tr id="action-{key}">(.*?)</tr>', page, re.S)
    assert found, page[:2000]
    return found.group(1)


@pytest.fixture
async def market(client: httpx.AsyncClient, db) -> dict[str, str]:
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 70_000), (fund_acct, 30_000)])
    return {"code": code, "bank": bank, "bank_acct": bank_acct, "fund": fund, "fund_acct": fund_acct}


def transfer(market: dict[str, str], units: int = 1_000) -> dict:
    return {"from_account": market["fund_acct"], "to_account": market["bank_acct"], "units": units,
            "mode": "private_agreement", "price_per_unit": "1.00", "consideration_fen": units * 100}


async def test_a_fresh_holding_may_be_exercised_but_not_sold_until_the_holding_interval_ends(
        client: httpx.AsyncClient, db, market) -> None:
    await sign_in(client, Role.investor, market["fund"])
    page = (await client.get(f"/ui/holdings/{market['code']}/{market['fund_acct']}")).text
    sell_from = load_seed().add_trading_days(TODAY, 5)  # issuance counts as a buy; T+5 is allowed
    assert "不可以" in action(page, "sell")
    assert f"sell allowed from {sell_from}: 5-trading-day holding interval" in action(page, "sell")
    assert "可以" in action(page, "exercise") and "30000 份" in action(page, "exercise")
    # the page said no: so does the API, for the same rule
    refused = await client.post(f"/warrant-series/{market['code']}/transfers", headers=op(), json=transfer(market))
    assert refused.json()["code"] == "warrant.holding_interval"
    # the positions list says the same in one line, with the day
    positions = (await client.get("/ui/positions")).text
    assert f"from {sell_from}" in positions and "渤海基金" in positions

    travel(db, trading_days=5)
    page = (await client.get(f"/ui/holdings/{market['code']}/{market['fund_acct']}")).text
    assert "✔" in action(page, "sell") and "30000 份" in action(page, "sell")
    await ok(await client.post(f"/warrant-series/{market['code']}/transfers", headers=op(), json=transfer(market)))
    # the seller just sold: buying back waits for the interval, selling more does not
    page = (await client.get(f"/ui/holdings/{market['code']}/{market['fund_acct']}")).text
    assert "buy allowed from" in action(page, "buy") and "✔" in action(page, "sell")


async def test_pledged_frozen_suspended_and_frozen_account_each_say_why_not(client: httpx.AsyncClient, db,
                                                                            market) -> None:
    code, acct = market["code"], market["fund_acct"]
    travel(db, trading_days=6)
    await ok(await client.post(f"/warrant-series/{code}/holdings/{acct}/pledges", headers=op(), json={
        "units": 20_000, "document_ref": "质押合同2026-01", "reason": "贷款质押"}))
    await ok(await client.post(f"/warrant-series/{code}/holdings/{acct}/freezes", headers=op(), json={
        "units": 10_000, "document_ref": "(2026)津01执保9号", "reason": "司法冻结"}))
    await sign_in(client, Role.investor, market["fund"])
    page = (await client.get(f"/ui/holdings/{code}/{acct}")).text
    for key in ("sell", "exercise"):
        assert "没有可用份额（质押 20000、冻结 10000 份不可动用）" in action(page, key)
    history = re.search(r'<table id="history">(.*?)</table>', page, re.S).group(1)
    assert "份额登记" in history and "质押" in history and "冻结" in history and "(2026)津01执保9号" in history
    assert "30000 / 0 / 0" in history and "0 / 20000 / 10000" in history  # before → after, as registered

    await ok(await client.post(f"/accounts/{acct}/freezes", headers=op(), json={
        "basis": "court_order", "document_ref": "(2026)津01执保10号", "reason": "冻结"}))
    await ok(await client.post(f"/enterprises/{(await client.get(f'/warrant-series/{code}', headers=op())).json()['target_uscc']}/ipo-filings",
                               headers=op(), json={"filed_on": "2026-11-27", "reason": "申报IPO"}))
    page = (await client.get(f"/ui/holdings/{code}/{acct}")).text
    for key in ("sell", "exercise", "buy"):
        assert "发行人IPO申请期间，认股权暂停" in action(page, key)
        assert "账户已被冻结" in action(page, key)


async def test_a_holder_cannot_open_another_holders_holding_by_editing_the_url(client: httpx.AsyncClient,
                                                                              market) -> None:
    await sign_in(client, Role.investor, market["fund"])
    theirs = await client.get(f"/ui/holdings/{market['code']}/{market['bank_acct']}")
    assert theirs.status_code == 403 and "70000" not in theirs.text and market["bank_acct"] not in theirs.text
    mine = await client.get(f"/ui/holdings/{market['code']}/{market['fund_acct']}")
    assert mine.status_code == 200 and "30000" in mine.text
    await sign_in(client, Role.enterprise, "911201160000000000")
    assert (await client.get(f"/ui/holdings/{market['code']}/{market['fund_acct']}")).status_code == 403
    await sign_in(client, Role.regulator, "examiner-1")  # regulators read everything
    assert "70000" in (await client.get(f"/ui/holdings/{market['code']}/{market['bank_acct']}")).text
