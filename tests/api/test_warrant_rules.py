"""Every warrant refusal through the API: its problem code, its figures, and nothing appended."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from support import auth
from warrant_fixtures import (
    REGULATOR, TARGET, TODAY, bank_and_fund, enterprise, investor, log_size, ok, op, register_series, travel,
)


@pytest.fixture
async def market(client: httpx.AsyncClient, db):
    """A registered series: the bank holds 100 000 units; the fund and a nominee can receive."""
    return await bank_and_fund(client, db, 100_000)


def transfer(m: dict, units: int = 1_000, **changes) -> dict:
    return {"from_account": m["bank_acct"], "to_account": m["fund_acct"], "units": units,
            "mode": "private_agreement", "price_per_unit": "1.00", "consideration_fen": units * 100, **changes}


async def refused(client: httpx.AsyncClient, path: str, body: dict, code: str, status: int = 422,
                  headers: dict | None = None) -> dict:
    before = await log_size(client)
    r = await client.post(path, json=body, headers=headers or op())
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text
    assert await log_size(client) == before, "a refused command appended events"
    return r.json()


async def test_an_unqualified_receiver_is_refused(client: httpx.AsyncClient, market) -> None:
    _, plain_acct = await investor(client, "王芳", qualified=False)
    body = await refused(client, f"/warrant-series/{market['code']}/transfers",
                         transfer(market, to_account=plain_acct), "warrant.investor_not_qualified")
    assert body["account_id"] == plain_acct


async def test_a_nominee_account_is_qualified_only_if_every_beneficial_owner_is(client, market) -> None:
    alice, _ = await investor(client, "Alice")
    bob, _ = await investor(client, "Bob", qualified=False)
    _, nominee_acct = await investor(client, "海河证券名义持有", nominee_for=[alice, bob])
    await refused(client, f"/warrant-series/{market['code']}/transfers", transfer(market, to_account=nominee_acct),
                  "warrant.investor_not_qualified")


async def test_the_holder_cap_counts_beneficial_owners_behind_a_nominee(client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    owners = [(await investor(client, f"受益人{i}"))[0] for i in range(3)]
    _, nominee_acct = await investor(client, "名义持有人", nominee_for=owners)
    code = await register_series(client, [(bank_acct, 1_000)], max_holders=3)
    travel(db, trading_days=6)
    body = await refused(client, f"/warrant-series/{code}/transfers", {
        "from_account": bank_acct, "to_account": nominee_acct, "units": 10, "mode": "private_agreement",
        "price_per_unit": "1", "consideration_fen": 1000}, "warrant.holder_limit_exceeded")
    assert (body["holders_after"], body["max_holders"], body["basis"]) == (4, 3, "cumulative")


async def test_selling_within_five_trading_days_of_buying_is_refused_and_allowed_on_the_fifth(
        client: httpx.AsyncClient, db, market) -> None:
    await ok(await client.post(f"/warrant-series/{market['code']}/transfers", headers=op(), json=transfer(market)))
    bought_on = travel(db, trading_days=6)
    _, other_acct = await investor(client, "第三方")
    resale = transfer(market, from_account=market["fund_acct"], to_account=other_acct, units=500)
    travel(db, trading_days=6 + 4)
    body = await refused(client, f"/warrant-series/{market['code']}/transfers", resale, "warrant.holding_interval")
    assert (body["last_opposite_trade"], body["trading_days_elapsed"], body["trading_days_required"]) == (
        bought_on.isoformat(), 4, 5)
    travel(db, trading_days=6 + 5)
    await ok(await client.post(f"/warrant-series/{market['code']}/transfers", headers=op(), json=resale))


async def test_only_available_units_move(client: httpx.AsyncClient, market) -> None:
    code, acct = market["code"], market["bank_acct"]
    pledged = await ok(await client.post(f"/warrant-series/{code}/holdings/{acct}/pledges", headers=op(), json={
        "units": 60_000, "document_ref": "质押合同2026-01", "reason": "贷款质押"}))
    assert pledged["before"] == {"available": 100_000, "pledged": 0, "frozen": 0}
    assert pledged["after"] == {"available": 40_000, "pledged": 60_000, "frozen": 0}
    frozen = await ok(await client.post(f"/warrant-series/{code}/holdings/{acct}/freezes", headers=op(), json={
        "units": 30_000, "document_ref": "(2026)津01执保9号", "reason": "司法冻结"}))
    assert frozen["after"] == {"available": 10_000, "pledged": 60_000, "frozen": 30_000}
    body = await refused(client, f"/warrant-series/{code}/transfers", transfer(market, units=10_001),
                         "warrant.insufficient_available_units")
    assert (body["available"], body["pledged"], body["frozen"], body["requested"]) == (10_000, 60_000, 30_000, 10_001)
    await refused(client, f"/warrant-series/{code}/exercises", {"account_id": acct, "units": 10_001},
                  "warrant.insufficient_available_units")
    await refused(client, f"/warrant-series/{code}/holdings/{acct}/thaws",
                  {"units": 30_001, "document_ref": "x", "reason": "y"}, "warrant.insufficient_units")
    await refused(client, f"/warrant-series/{code}/cancellations", {"reason": "提前终止"},
                  "warrant.frozen_units_present")


async def test_a_frozen_account_neither_sends_nor_receives(client: httpx.AsyncClient, market) -> None:
    await ok(await client.post(f"/accounts/{market['fund_acct']}/freezes", headers=op(), json={
        "basis": "court_order", "document_ref": "(2026)津01执保10号", "reason": "冻结"}))
    await refused(client, f"/warrant-series/{market['code']}/transfers", transfer(market), "warrant.account_frozen")
    await ok(await client.post(f"/accounts/{market['bank_acct']}/freezes", headers=op(), json={
        "basis": "regulator", "document_ref": "监管函", "reason": "冻结"}))
    await refused(client, f"/warrant-series/{market['code']}/transfers",
                  transfer(market, to_account=market["fund_acct"]), "warrant.account_frozen")


async def test_a_transfer_mode_the_series_does_not_allow_is_refused(client: httpx.AsyncClient, market) -> None:
    body = await refused(client, f"/warrant-series/{market['code']}/transfers",
                         transfer(market, mode="one_sided_bidding"), "warrant.transfer_mode_not_allowed")
    assert body["allowed_modes"] == ["private_agreement", "disclosed_agreement"]


async def test_ipo_filing_suspends_rejection_resumes_with_expiry_extended(client, db, market) -> None:
    code = market["code"]
    before = await ok(await client.get(f"/warrant-series/{code}", headers=REGULATOR))
    filed = travel(db, days=10)
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(), json={
        "filed_on": filed.isoformat(), "reason": "向证监会提交首发申请"}))
    await refused(client, f"/warrant-series/{code}/transfers", transfer(market), "warrant.series_suspended")
    await refused(client, f"/warrant-series/{code}/exercises", {"account_id": market["bank_acct"], "units": 1},
                  "warrant.series_suspended")
    outcome_day = travel(db, days=40)
    resumed = await ok(await client.post(f"/enterprises/{TARGET}/ipo-outcomes", headers=op(), json={
        "outcome": "withdrawn", "on": outcome_day.isoformat(), "reason": "撤回申请"}))
    expected = dt.date.fromisoformat(before["valid_until"]) + dt.timedelta(days=30)
    assert resumed["series"][0]["valid_until_after"] == expected.isoformat()
    after = await ok(await client.get(f"/warrant-series/{code}", headers=REGULATOR))
    assert after["status"] == "registered" and after["valid_until"] == expected.isoformat()
    assert after["original_valid_until"] == before["valid_until"]


async def test_ipo_approval_terminates_the_series(client, db, market) -> None:
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(), json={
        "filed_on": TODAY.isoformat(), "reason": "首发申请"}))
    approved_on = travel(db, days=20)
    ended = await ok(await client.post(f"/enterprises/{TARGET}/ipo-outcomes", headers=op(), json={
        "outcome": "approved", "on": approved_on.isoformat(), "reason": "注册生效"}))
    assert ended["series"][0]["units_cancelled"] == 100_000
    series = await ok(await client.get(f"/warrant-series/{market['code']}", headers=REGULATOR))
    assert (series["status"], series["units_outstanding"], series["units_cancelled"]) == ("terminated", 0, 100_000)
    await refused(client, f"/warrant-series/{market['code']}/transfers", transfer(market), "warrant.series_not_live")


async def test_exercise_outside_the_window_is_refused(client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    _, acct = await investor(client, "银行")
    code = await register_series(client, [(acct, 100)],
                                 valid_from=(TODAY + dt.timedelta(days=10)).isoformat())
    body = await refused(client, f"/warrant-series/{code}/exercises", {"account_id": acct, "units": 10},
                         "warrant.outside_validity_window")
    assert body["valid_from"] == (TODAY + dt.timedelta(days=10)).isoformat()


async def test_a_series_expires_once_even_after_downtime(client: httpx.AsyncClient, db) -> None:
    from registry.eventlog.model import EventMeta
    from registry.warrants.service import expire_due
    await enterprise(client)
    _, acct = await investor(client, "银行")
    code = await register_series(client, [(acct, 500)], valid_until=(TODAY + dt.timedelta(days=3)).isoformat())
    meta = EventMeta(actor="system", role="system", command="ExpireSeries")
    assert (await db.writer.execute(expire_due(TODAY + dt.timedelta(days=3)), meta)).response["expired"] == []
    first = await db.writer.execute(expire_due(TODAY + dt.timedelta(days=20)), meta)  # the service was down
    second = await db.writer.execute(expire_due(TODAY + dt.timedelta(days=21)), meta)
    assert first.response["expired"] == [code] and second.response["expired"] == []
    series = await ok(await client.get(f"/warrant-series/{code}", headers=REGULATOR))
    assert (series["status"], series["units_expired"], series["units_outstanding"]) == ("expired", 500, 0)
    events = (await client.get("/events?type=warrant.series_expired", headers=REGULATOR)).json()["items"]
    assert len(events) == 1 and events[0]["effective_date"] == (TODAY + dt.timedelta(days=4)).isoformat()


async def test_adjustments_change_entitlement_and_price_per_share_together(client, db) -> None:
    await enterprise(client)
    _, acct = await investor(client, "银行")
    code = await register_series(client, [(acct, 1_000)], anti_dilution="broad_based_weighted_average",
                                 exercise_price_per_unit="10")
    bonus = await ok(await client.post(f"/warrant-series/{code}/adjustments", headers=op(), json={
        "kind": "bonus_issue", "effective_date": TODAY.isoformat(), "ratio": "0.3", "reason": "10送3"}))
    assert (bonus["entitlement_before"], bonus["entitlement_after"]) == ("1", "1.30000000")
    assert (bonus["price_per_share_before"], bonus["price_per_share_after"]) == ("10.000000", "7.692308")
    down = await ok(await client.post(f"/warrant-series/{code}/adjustments", headers=op(), json={
        "kind": "down_round", "effective_date": TODAY.isoformat(), "new_issue_price": "5",
        "shares_outstanding_before": "10000000", "new_shares_issued": "1000000", "reason": "B轮低价增资"}))
    # CP2 = CP1 × (A + B) / (A + C) with B = C × 5 / CP1
    cp1 = 10 / 1.3
    cp2 = cp1 * (10_000_000 + 1_000_000 * 5 / cp1) / (10_000_000 + 1_000_000)
    assert float(down["price_per_share_after"]) == pytest.approx(cp2, abs=1e-5)
    assert down["inputs"]["formula"] == "CP2 = CP1 × (A + B) / (A + C)"
    no_clause = await register_series(client, [(acct, 10)])
    await refused(client, f"/warrant-series/{no_clause}/adjustments", {
        "kind": "down_round", "effective_date": TODAY.isoformat(), "new_issue_price": "1", "reason": "x"},
        "warrant.adjustment_invalid")


async def test_invalid_terms_are_refused_at_approval_with_every_problem(client: httpx.AsyncClient) -> None:
    from warrant_fixtures import terms
    await enterprise(client, legal_form="llc")
    _, acct = await investor(client, "银行")
    bad = terms([(acct, 10)], max_holders=201, transfer_modes=[])
    proposal = await ok(await client.post("/warrant-series", headers=op(), json={"terms": bad, "reason": "x"}))
    body = await refused(client, f"/approvals/{proposal['approval_id']}/approve", {}, "warrant.terms_invalid",
                         headers=op("op-2"))
    assert {"a llc target's underlying is registered_capital", "at least one transfer mode is allowed",
            "max_holders must be between 1 and 200"} <= set(body["problems"])


async def test_an_enterprise_cannot_propose_for_another(client: httpx.AsyncClient) -> None:
    from warrant_fixtures import terms
    r = await client.post("/warrant-series", headers=auth("enterprise", "911201160000000000", "k"),
                          json={"terms": terms([("ACC1", 1)]), "reason": "x"})
    assert r.status_code == 403


async def test_the_holder_register_as_of_an_earlier_date_and_position(client: httpx.AsyncClient, db, market) -> None:
    code = market["code"]
    first = await ok(await client.get(f"/warrant-series/{code}/register", headers=REGULATOR))
    await ok(await client.post(f"/warrant-series/{code}/transfers", headers=op(), json=transfer(market, units=400)))
    now = await ok(await client.get(f"/warrant-series/{code}/register", headers=REGULATOR))
    then = await ok(await client.get(f"/warrant-series/{code}/register?at_position={first['at_position']}",
                                     headers=REGULATOR))
    assert [x["total"] for x in then["lines"]] == [100_000]
    assert sorted(x["total"] for x in now["lines"]) == [400, 99_600]
    yesterday = await client.get(f"/warrant-series/{code}/register?as_of={(TODAY - dt.timedelta(days=1))}",
                                 headers=REGULATOR)
    assert yesterday.status_code == 404 and yesterday.json()["code"] == "warrant.series_not_found"


async def test_a_write_stating_a_stale_stream_version_is_a_409_and_appends_nothing(client, market) -> None:
    code = market["code"]
    events = (await client.get(f"/events?stream=series-{code}", headers=REGULATOR)).json()["items"]
    version = events[-1]["version"]
    await ok(await client.post(f"/warrant-series/{code}/transfers", headers={**op(), "If-Match": f'"{version}"'},
                               json=transfer(market, units=10)))
    body = await refused(client, f"/warrant-series/{code}/transfers", transfer(market, units=10),
                         "eventlog.stream_version_conflict", status=409,
                         headers={**op(), "If-Match": f'"{version}"'})
    assert (body["expected_version"], body["actual_version"]) == (version, version + 1)


@pytest.mark.parametrize("price", ["NaN", "sNaN", "Infinity", "1e999999", "1e-999999"])
async def test_a_transfer_price_that_is_not_a_usable_decimal_is_a_400_and_appends_nothing(
        client: httpx.AsyncClient, market, price: str) -> None:
    await refused(client, f"/warrant-series/{market['code']}/transfers", transfer(market, price_per_unit=price),
                  "request.invalid", 400)


async def test_a_consideration_past_what_the_register_stores_is_a_400(client: httpx.AsyncClient, market) -> None:
    await refused(client, f"/warrant-series/{market['code']}/transfers", transfer(market, consideration_fen=2**63),
                  "request.invalid", 400)


@pytest.mark.parametrize("changes", [{"kind": "bonus_issue", "ratio": "NaN"}, {"kind": "bonus_issue", "ratio": "1e50"},
                                     {"kind": "split", "ratio": "Infinity"}])
async def test_an_adjustment_ratio_that_is_not_a_usable_decimal_is_a_400(client, market, changes) -> None:
    body = {"effective_date": TODAY.isoformat(), "reason": "股东大会决议", **changes}
    await refused(client, f"/warrant-series/{market['code']}/adjustments", body, "request.invalid", 400)


async def test_a_split_that_rounds_the_entitlement_to_nothing_is_refused(client: httpx.AsyncClient, market) -> None:
    body = {"effective_date": TODAY.isoformat(), "reason": "股东大会决议", "kind": "split", "ratio": "0.000000000001"}
    await refused(client, f"/warrant-series/{market['code']}/adjustments", body, "warrant.adjustment_invalid")


@pytest.mark.parametrize("changes", [{"entitlement_per_unit": "NaN"}, {"exercise_price_per_unit": "sNaN"},
                                     {"entitlement_per_unit": "1e999999"}])
async def test_a_proposal_with_an_unusable_decimal_is_a_400(client: httpx.AsyncClient, market, changes) -> None:
    from warrant_fixtures import terms
    body = {"terms": {**terms([(market["fund_acct"], 10)]), **changes}, "reason": "银行认股权贷款"}
    await refused(client, "/warrant-series", body, "request.invalid", 400, auth("enterprise", TARGET, "bad-decimal"))


async def test_a_series_whose_exercise_would_cost_more_than_the_register_stores_is_refused_at_approval(
        client: httpx.AsyncClient, market) -> None:
    from warrant_fixtures import terms
    proposal = await ok(await client.post("/warrant-series", headers=auth("enterprise", TARGET, "huge-series"), json={
        "terms": terms([(market["fund_acct"], 10**12)], exercise_price_per_unit="999999999999"), "reason": "贷款"}))
    r = await client.post(f"/approvals/{proposal['approval_id']}/approve", headers=op("op-2"), json={"reason": "x"})
    assert r.status_code == 422 and r.json()["code"] == "warrant.terms_invalid", r.text


async def test_a_share_register_amount_that_is_not_a_usable_decimal_is_a_400(client: httpx.AsyncClient, market) -> None:
    for amount in ("NaN", "1e999999"):
        await refused(client, f"/enterprises/{TARGET}/share-register",
                      {"holders": [{"holder_id": "founder", "holder_name": "创始人", "amount": amount}], "reason": "名册"},
                      "request.invalid", 400)


async def test_an_ipo_outcome_that_would_push_expiry_past_the_calendar_is_refused(client, db) -> None:
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    await register_series(client, [(acct, 100)], valid_until="9999-12-31")
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(),
                               json={"filed_on": TODAY.isoformat(), "reason": "申报IPO"}))
    outcome_day = travel(db, days=1)
    await refused(client, f"/enterprises/{TARGET}/ipo-outcomes", {"outcome": "rejected", "on": outcome_day.isoformat(),
                                                                   "reason": "未通过"}, "warrant.terms_invalid")


async def test_ipo_dates_after_today_or_past_the_series_are_refused_naming_the_dates(client, db, market) -> None:
    today = travel(db, trading_days=6)  # the business date the market fixture left us on
    body = await refused(client, f"/enterprises/{TARGET}/ipo-filings",
                         {"filed_on": (today + dt.timedelta(days=1)).isoformat(), "reason": "申报IPO"},
                         "warrant.ipo_date_invalid")
    assert body["business_date"] == today.isoformat()
    series = await ok(await client.get(f"/warrant-series/{market['code']}", headers=REGULATOR))
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(),
                               json={"filed_on": today.isoformat(), "reason": "申报IPO"}))
    body = await refused(client, f"/enterprises/{TARGET}/ipo-outcomes",
                         {"outcome": "withdrawn", "on": (today + dt.timedelta(days=3)).isoformat(), "reason": "撤回"},
                         "warrant.ipo_date_invalid")
    assert body["on"] == (today + dt.timedelta(days=3)).isoformat()
    body = await refused(client, f"/enterprises/{TARGET}/ipo-outcomes",
                         {"outcome": "withdrawn", "on": (today - dt.timedelta(days=1)).isoformat(), "reason": "撤回"},
                         "warrant.ipo_date_invalid")
    assert body["suspended_since"] == today.isoformat()
    assert series["status"] == "registered"


async def test_an_ipo_filed_before_the_series_began_suspends_it_from_its_first_day(client, db) -> None:
    """No days before the validity window are given back when the series resumes."""
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    starts = TODAY + dt.timedelta(days=2)
    code = await register_series(client, [(acct, 100)], valid_from=starts.isoformat())
    before = await ok(await client.get(f"/warrant-series/{code}", headers=REGULATOR))
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(),
                               json={"filed_on": (TODAY - dt.timedelta(days=30)).isoformat(), "reason": "申报IPO"}))
    outcome_day = travel(db, days=12)
    resumed = await ok(await client.post(f"/enterprises/{TARGET}/ipo-outcomes", headers=op(), json={
        "outcome": "rejected", "on": outcome_day.isoformat(), "reason": "未通过"}))
    pushed = (outcome_day - starts).days
    assert resumed["series"][0]["valid_until_after"] == (
        dt.date.fromisoformat(before["valid_until"]) + dt.timedelta(days=pushed)).isoformat()


async def test_an_ipo_filed_after_a_series_ran_out_is_refused(client, db) -> None:
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    ends = TODAY + dt.timedelta(days=3)
    await register_series(client, [(acct, 100)], valid_until=ends.isoformat())
    filed = travel(db, days=5)
    body = await refused(client, f"/enterprises/{TARGET}/ipo-filings",
                         {"filed_on": filed.isoformat(), "reason": "申报IPO"}, "warrant.ipo_date_invalid")
    assert body["valid_until"] == ends.isoformat()
