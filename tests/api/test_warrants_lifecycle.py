"""A warrant series from proposal to exercise, through the API, as its users would drive it."""

from __future__ import annotations

import httpx

from support import auth
from warrant_fixtures import REGULATOR, TARGET, enterprise, investor, key, log_size, ok, op, register_series, travel


async def test_a_series_is_proposed_approved_registered_confirmed_transferred_and_exercised(
        client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    await ok(await client.post(f"/enterprises/{TARGET}/share-register", headers=op(), json={
        "holders": [{"holder_id": "founder", "holder_name": "创始人", "amount": "8000000"}], "reason": "挂牌时名册"}))
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 100_000)])
    assert code == "WR000001"

    series = await ok(await client.get(f"/warrant-series/{code}", headers=auth("enterprise", TARGET)))
    assert series["status"] == "registered" and series["units_outstanding"] == 100_000

    confirm = await client.post(f"/warrant-series/{code}/confirmations", headers=key(auth("investor", bank)),
                                json={"account_id": bank_acct})
    assert confirm.status_code == 201, confirm.text

    travel(db, trading_days=5)  # the bank bought (was issued) today: it may sell on T+5
    moved = await ok(await client.post(f"/warrant-series/{code}/transfers", headers=op(), json={
        "from_account": bank_acct, "to_account": fund_acct, "units": 30_000, "mode": "private_agreement",
        "price_per_unit": "1.20", "consideration_fen": 3_600_000}))
    assert moved["from_balance"] == {"available": 70_000, "pledged": 0, "frozen": 0}
    assert moved["to_balance"]["available"] == 30_000

    exercised = await ok(await client.post(f"/warrant-series/{code}/exercises", headers=key(auth("investor", fund)),
                                           json={"account_id": fund_acct, "units": 10_000}))
    assert exercised["payment_due_fen"] == 8_500_000 and exercised["payee"] == {"kind": "target", "id": TARGET}
    confirmed = await ok(await client.post(
        f"/warrant-series/{code}/exercises/{exercised['exercise_id']}/confirmations",
        headers=key(auth("enterprise", TARGET))))
    assert confirmed["register_changes"][0]["after"] == "10000.0000"

    register = await ok(await client.get(f"/warrant-series/{code}/register", headers=REGULATOR))
    assert register["units_outstanding"] == 90_000 and register["units_exercised"] == 10_000
    assert {(x["account_id"], x["total"], x["rights_confirmed"]) for x in register["lines"]} == {
        (bank_acct, 70_000, True), (fund_acct, 20_000, False)}

    cap = await ok(await client.get(f"/enterprises/{TARGET}/cap-table", headers=auth("enterprise", TARGET)))
    lines = {x["holder_id"]: x for x in cap["lines"]}
    assert lines["founder"]["amount"] == "8000000" and lines[fund]["amount"] == "10000.0000"
    assert lines[bank]["warrant_amount"] == "70000"

    positions = await ok(await client.get(f"/investors/{fund}/positions", headers=auth("investor", fund)))
    assert [(p["code"], p["available"]) for p in positions["items"]] == [(code, 20_000)]
    assert (await client.get(f"/investors/{fund}/positions", headers=auth("investor", bank))).status_code == 403
    assert await log_size(client) > 0


async def test_a_series_history_filtered_by_account_gives_full_pages_and_skips_nothing(
        client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 100_000), (fund_acct, 100_000)])
    for account in [fund_acct] * 6 + [bank_acct] * 3 + [fund_acct] * 4 + [bank_acct] * 2:
        await ok(await client.post(f"/warrant-series/{code}/holdings/{account}/freezes", headers=op(), json={
            "units": 1, "document_ref": "(2026)津01执保1号", "reason": "司法冻结"}))

    async def pages(account: str, limit: int) -> list[list[int]]:
        out, after = [], None
        while True:
            query = f"account_id={account}&limit={limit}" + (f"&after={after}" if after else "")
            page = await ok(await client.get(f"/warrant-series/{code}/history?{query}", headers=REGULATOR))
            out.append([e["position"] for e in page["items"]])
            if page["next"] is None:
                return out
            after = page["next"]

    everything = await ok(await client.get(f"/warrant-series/{code}/history?limit=500", headers=REGULATOR))
    touching_bank = [e["position"] for e in everything["items"]
                     if bank_acct in {e["data"].get("account_id"), e["data"].get("from_account"),
                                      e["data"].get("to_account")}]
    bank_pages = await pages(bank_acct, 2)
    assert [p for page in bank_pages for p in page] == touching_bank  # nothing skipped, nothing repeated
    assert all(len(page) == 2 for page in bank_pages[:-1])  # full pages, though fund's events lie between
    assert len(touching_bank) >= 6
