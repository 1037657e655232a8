"""Warrant valuations through the API: recorded as events, listed, recomputed, refused, scoped, and a portfolio."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from support import DIGEST, auth, tianjin_uscc
from warrant_fixtures import (
    REGULATOR, TARGET, TODAY, enterprise, investor, key, log_size, ok, op, register_series, travel,
)


@pytest.fixture
async def market(client: httpx.AsyncClient):
    """A registered series on TARGET: the bank holds 100 000 units (1 share each at 8.50); the fund holds none."""
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 100_000)])
    return {"code": code, "bank": bank, "bank_acct": bank_acct, "fund": fund, "fund_acct": fund_acct}


def inputs(on: dt.date = TODAY, **changes) -> dict:
    sources = {"underlying_basis": "latest_round", "underlying_basis_date": (on - dt.timedelta(days=30)).isoformat(),
               "volatility_peers": ["688981.SH", "430047.BJ"],
               "volatility_method": "median of 3-year daily log-return volatility",
               "risk_free_source": "ChinaBond CGB 1-year yield, 1.45% annual → continuous"}
    return {"valuation_date": on.isoformat(), "underlying_price": "12.00", "volatility": "0.45",
            "risk_free_rate": "0.0144", "dividend_yield": "0", "shares_outstanding": 50_000_000,
            "style": "european", "dlom_method": "finnerty_2012", "sources": sources, **changes}


async def value(client: httpx.AsyncClient, code: str, body: dict | None = None) -> dict:
    return await ok(await client.post(f"/warrant-series/{code}/valuations", headers=op(), json=body or inputs()), 201)


async def refused(client: httpx.AsyncClient, code: str, body: dict, problem: str) -> dict:
    before = await log_size(client)
    r = await client.post(f"/warrant-series/{code}/valuations", json=body, headers=op())
    assert r.status_code == 422, r.text
    assert r.json()["code"] == problem, r.text
    assert await log_size(client) == before, "a refused valuation appended events"
    return r.json()


async def test_a_valuation_is_recorded_as_one_event_with_the_series_terms_inputs_sources_and_result(
        client: httpx.AsyncClient, market) -> None:
    code = market["code"]
    before = await log_size(client)
    recorded = await value(client, code)
    assert await log_size(client) == before + 1
    valuation_id = recorded["valuation_id"]
    assert valuation_id == f"V{recorded['log']['first_position']:08d}"
    assert recorded["model"] == "black_scholes_merton"
    assert Decimal(recorded["value_per_unit"]) > 0

    event = (await ok(await client.get(f"/events?stream=valuation-{code}", headers=REGULATOR)))["items"][0]
    assert (event["type"], event["effective_date"]) == ("valuation.recorded", TODAY.isoformat())
    data = event["data"]
    assert data["result"] == recorded["result"] and data["sources"]["volatility_peers"] == ["688981.SH", "430047.BJ"]
    assert data["inputs"]["underlying_price"] == "12.00" and data["quantlib_version"] == data["result"]["quantlib_version"]
    # the series' own terms come from the register, not from the caller
    assert (data["inputs"]["exercise_price"], data["inputs"]["new_shares_per_warrant"],
            data["inputs"]["warrants_outstanding"], data["inputs"]["creates_new_shares"]) == ("8.500000", "1", 100_000, True)
    assert data["inputs"]["expiry_date"] == (TODAY + dt.timedelta(days=365)).isoformat()
    assert data["series_terms"]["exercise_price_per_unit"] == "8.50"

    one = await ok(await client.get(f"/valuations/{valuation_id}", headers=REGULATOR))
    assert one["result"] == recorded["result"] and one["code"] == code and one["recorded_by"] == "op-1"
    listed = await ok(await client.get(f"/warrant-series/{code}/valuations", headers=REGULATOR))
    assert [v["valuation_id"] for v in listed["items"]] == [valuation_id] and listed["next"] is None


async def test_exercise_price_per_share_is_the_unit_price_over_the_entitlement(client: httpx.AsyncClient) -> None:
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    code = await register_series(client, [(acct, 1_000)], entitlement_per_unit="2", exercise_price_per_unit="17")
    recorded = await value(client, code)
    one = await ok(await client.get(f"/valuations/{recorded['valuation_id']}", headers=REGULATOR))
    assert (one["inputs"]["exercise_price"], one["inputs"]["new_shares_per_warrant"]) == ("8.500000", "2")
    assert one["result"]["new_shares_on_exercise"] == "2000"


async def test_an_american_valuation_exercisable_from_valid_from_uses_the_lattice(client: httpx.AsyncClient) -> None:
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    opens = TODAY + dt.timedelta(days=60)
    code = await register_series(client, [(acct, 1_000)], valid_from=opens.isoformat())
    recorded = await value(client, code, inputs(style="american", lattice_steps=200))
    one = await ok(await client.get(f"/valuations/{recorded['valuation_id']}", headers=REGULATOR))
    assert one["model"] == "binomial_crr" and one["inputs"]["exercise_start_date"] == opens.isoformat()


async def test_recomputing_a_past_valuation_gives_identical_figures_and_appends_nothing(
        client: httpx.AsyncClient, market) -> None:
    recorded = await value(client, market["code"], inputs(dlom_method="chaffe_1993"))
    before = await log_size(client)
    again = await ok(await client.get(f"/valuations/{recorded['valuation_id']}/recomputation", headers=REGULATOR))
    assert again["identical"] is True and again["differences"] == []
    assert again["stored"] == again["recomputed"] == recorded["result"]
    assert again["position"] == recorded["log"]["first_position"]
    assert await log_size(client) == before
    operator = await ok(await client.get(f"/valuations/{recorded['valuation_id']}/recomputation", headers=op()))
    assert operator["identical"] is True


async def test_recomputing_an_unknown_valuation_is_not_found(client: httpx.AsyncClient, market) -> None:
    await value(client, market["code"])
    for valuation_id in ("V00000000", "V99999999", "nonsense"):
        r = await client.get(f"/valuations/{valuation_id}/recomputation", headers=REGULATOR)
        assert r.status_code == 404 and r.json()["code"] == "valuation.not_found", (valuation_id, r.text)


async def test_valuations_list_latest_date_first_and_as_of_gives_the_latest_on_or_before(
        client: httpx.AsyncClient, market) -> None:
    code = market["code"]
    old = await value(client, code, inputs(TODAY - dt.timedelta(days=20)))
    new = await value(client, code, inputs(TODAY))
    middle = await value(client, code, inputs(TODAY - dt.timedelta(days=10), underlying_price="11.00"))
    listed = await ok(await client.get(f"/warrant-series/{code}/valuations", headers=REGULATOR))
    assert [v["valuation_id"] for v in listed["items"]] == [new["valuation_id"], middle["valuation_id"],
                                                            old["valuation_id"]]
    first = await ok(await client.get(f"/warrant-series/{code}/valuations?limit=2", headers=REGULATOR))
    rest = await ok(await client.get(f"/warrant-series/{code}/valuations?limit=2&after={first['next']}",
                                     headers=REGULATOR))
    assert [v["valuation_id"] for v in first["items"] + rest["items"]] == [
        v["valuation_id"] for v in listed["items"]] and rest["next"] is None
    as_of = (TODAY - dt.timedelta(days=5)).isoformat()
    latest = await ok(await client.get(f"/warrant-series/{code}/valuations?as_of={as_of}", headers=REGULATOR))
    assert [v["valuation_id"] for v in latest["items"]] == [middle["valuation_id"]]
    too_early = (TODAY - dt.timedelta(days=21)).isoformat()
    assert (await ok(await client.get(f"/warrant-series/{code}/valuations?as_of={too_early}",
                                      headers=REGULATOR)))["items"] == []


async def test_a_volatility_outside_the_model_is_refused(client: httpx.AsyncClient, market) -> None:
    body = await refused(client, market["code"], inputs(volatility="0"), "valuation.volatility_invalid")
    assert body["volatility"] == "0"
    await refused(client, market["code"], inputs(volatility="5.01"), "valuation.volatility_invalid")


async def test_an_independent_report_without_its_digest_is_refused(client: httpx.AsyncClient, market) -> None:
    body = inputs()
    body["sources"] = {**body["sources"], "underlying_basis": "independent_report"}
    await refused(client, market["code"], body, "valuation.underlying_document_digest_invalid")
    body["sources"]["underlying_document_digest"] = DIGEST
    await value(client, market["code"], body)


async def test_a_valuation_date_on_or_after_expiry_is_refused(client: httpx.AsyncClient, market) -> None:
    expiry = TODAY + dt.timedelta(days=365)
    body = await refused(client, market["code"], inputs(expiry + dt.timedelta(days=1)), "valuation.date_after_expiry")
    assert body["expiry_date"] == expiry.isoformat()
    await refused(client, market["code"], inputs(expiry), "valuation.date_after_expiry")


async def test_a_cancelled_series_is_not_valued(client: httpx.AsyncClient, market) -> None:
    await ok(await client.post(f"/warrant-series/{market['code']}/cancellations", headers=op(),
                               json={"reason": "协议解除"}))
    body = await refused(client, market["code"], inputs(), "valuation.series_not_live")
    assert body["series_status"] == "cancelled"


async def test_an_expired_series_is_not_valued(client: httpx.AsyncClient, db) -> None:
    from registry.eventlog.model import EventMeta
    from registry.warrants.service import expire_due
    await enterprise(client)
    _, acct = await investor(client, "银行")
    code = await register_series(client, [(acct, 500)], valid_until=(TODAY + dt.timedelta(days=3)).isoformat())
    meta = EventMeta(actor="system", role="system", command="ExpireSeries")
    assert (await db.writer.execute(expire_due(TODAY + dt.timedelta(days=5)), meta)).response["expired"] == [code]
    body = await refused(client, code, inputs(TODAY + dt.timedelta(days=1)), "valuation.series_not_live")
    assert body["series_status"] == "expired"


async def test_a_valuation_of_an_unknown_series_is_not_found(client: httpx.AsyncClient, market) -> None:
    r = await client.post("/warrant-series/WR999999/valuations", headers=op(), json=inputs())
    assert r.status_code == 404 and r.json()["code"] == "warrant.series_not_found"


async def test_only_operators_value_and_regulators_may_recompute(client: httpx.AsyncClient, market) -> None:
    for headers in (REGULATOR, auth("enterprise", TARGET), auth("investor", market["bank"])):
        r = await client.post(f"/warrant-series/{market['code']}/valuations", headers=key(headers), json=inputs())
        assert r.status_code == 403, r.text
    recorded = await value(client, market["code"])
    for headers in (auth("enterprise", TARGET), auth("investor", market["bank"])):
        r = await client.get(f"/valuations/{recorded['valuation_id']}/recomputation", headers=headers)
        assert r.status_code == 403, r.text


async def test_an_enterprise_sees_only_valuations_of_series_on_itself(client: httpx.AsyncClient, market) -> None:
    recorded = await value(client, market["code"])
    own = auth("enterprise", TARGET)
    assert len((await ok(await client.get(f"/warrant-series/{market['code']}/valuations", headers=own)))["items"]) == 1
    assert (await ok(await client.get(f"/valuations/{recorded['valuation_id']}", headers=own)))["code"] == market["code"]
    other = auth("enterprise", tianjin_uscc(78))
    r = await client.get(f"/warrant-series/{market['code']}/valuations", headers=other)
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    assert (await client.get(f"/valuations/{recorded['valuation_id']}", headers=other)).status_code == 403
    # a valuation that does not exist looks the same as another's
    assert (await client.get("/valuations/V99999999", headers=other)).status_code == 403


async def test_an_investor_sees_valuations_only_of_series_it_holds(client: httpx.AsyncClient, market) -> None:
    recorded = await value(client, market["code"])
    holder = auth("investor", market["bank"])
    assert len((await ok(await client.get(f"/warrant-series/{market['code']}/valuations", headers=holder)))[
        "items"]) == 1
    assert (await ok(await client.get(f"/valuations/{recorded['valuation_id']}", headers=holder)))["valuation_id"] == \
        recorded["valuation_id"]
    stranger = auth("investor", market["fund"])
    assert (await client.get(f"/warrant-series/{market['code']}/valuations", headers=stranger)).status_code == 403
    assert (await client.get(f"/valuations/{recorded['valuation_id']}", headers=stranger)).status_code == 403


async def test_a_portfolio_values_units_at_the_latest_value_per_unit(client: httpx.AsyncClient, market) -> None:
    code, bank = market["code"], market["bank"]
    await value(client, code, inputs(TODAY - dt.timedelta(days=10), underlying_price="9.00"))
    latest = await value(client, code)
    unvalued = await register_series(client, [(market["bank_acct"], 500)], name="海河智芯2026年第二期认股权")
    report = await ok(await client.get(f"/investors/{bank}/portfolio-valuation", headers=auth("investor", bank)))
    assert report["as_of"] == TODAY.isoformat() and report["stale_after_days"] == 90
    lines = {p["code"]: p for p in report["positions"]}
    valued = lines[code]
    assert (valued["units"], valued["valuation_id"], valued["valuation_date"], valued["age_days"], valued["stale"]) == (
        100_000, latest["valuation_id"], TODAY.isoformat(), 0, False)
    assert Decimal(valued["value"]) == 100_000 * Decimal(latest["value_per_unit"])
    assert valued["value_per_unit"] == latest["value_per_unit"]
    assert (lines[unvalued]["value"], lines[unvalued]["stale"]) == (None, True)
    assert Decimal(report["total_value"]) == Decimal(valued["value"])
    assert (report["unvalued_positions"], report["stale_positions"]) == (1, 1)


async def test_a_portfolio_flags_a_valuation_older_than_ninety_days_as_stale(
        client: httpx.AsyncClient, db, market) -> None:
    await value(client, market["code"])
    travel(db, days=100)
    report = await ok(await client.get(f"/investors/{market['bank']}/portfolio-valuation", headers=REGULATOR))
    [line] = report["positions"]
    assert (line["age_days"], line["stale"], report["stale_positions"]) == (100, True, 1)
    assert line["value"] is not None
    [position] = (await ok(await client.get(f"/investors/{market['bank']}/positions", headers=REGULATOR)))["items"]
    assert (position["valuation_stale"], position["value_per_unit"]) == (True, line["value_per_unit"])
    travel(db, days=0)
    [fresh] = (await ok(await client.get(f"/investors/{market['bank']}/positions", headers=REGULATOR)))["items"]
    assert fresh["valuation_stale"] is False and fresh["valuation_date"] == line["valuation_date"]


async def test_another_investors_portfolio_is_forbidden(client: httpx.AsyncClient, market) -> None:
    r = await client.get(f"/investors/{market['bank']}/portfolio-valuation", headers=auth("investor", market["fund"]))
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    r = await client.get(f"/investors/{market['bank']}/portfolio-valuation", headers=auth("enterprise", TARGET))
    assert r.status_code == 403
    own = await ok(await client.get(f"/investors/{market['fund']}/portfolio-valuation",
                                    headers=auth("investor", market["fund"])))
    assert own["positions"] == [] and own["total_value"] == "0"


async def test_the_same_valuation_request_replayed_appends_nothing(client: httpx.AsyncClient, market) -> None:
    headers = op()
    first = await client.post(f"/warrant-series/{market['code']}/valuations", headers=headers, json=inputs())
    size = await log_size(client)
    again = await client.post(f"/warrant-series/{market['code']}/valuations", headers=headers, json=inputs())
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["valuation_id"] == first.json()["valuation_id"] and await log_size(client) == size
