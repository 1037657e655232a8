"""The listing pipeline through the API: facts, four-eyes moves, overrides, security codes, rulebook versions."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from listing_fixtures import (
    INCUBATION,
    READY_FOR_RESERVE,
    REGULATOR,
    STANDARDISATION,
    approve,
    as_enterprise,
    as_operator,
    enterprise,
    fact,
    file_facts,
    move,
    move_through,
    request_move,
)
from registry.listing.rulebooks import shipped_files
from support import auth
from warrant_fixtures import TARGET, TODAY, investor, log_size, ok, register_series, travel
from warrant_fixtures import enterprise as warrant_target


@pytest.fixture(autouse=True)
def business_day(db) -> dt.date:
    """Pin the registry's business date to TODAY, so dated assertions hold at any hour."""
    return travel(db, 0)


async def refused(response_or_call, client: httpx.AsyncClient, code: str, status: int = 422) -> dict:
    before = await log_size(client)
    r = await response_or_call
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text
    assert await log_size(client) == before, "a refused command appended events"
    return r.json()


async def applied(client: httpx.AsyncClient, n: int, facts: list[tuple] = ()) -> str:
    uscc = await enterprise(client, n)
    await file_facts(client, uscc, list(facts))
    await move(client, uscc, "applied")
    return uscc


# -- facts ------------------------------------------------------------------------------------


async def test_facts_are_filed_listed_and_a_correction_supersedes_the_earlier_filing(client: httpx.AsyncClient) -> None:
    uscc = await enterprise(client, 1)
    first = await ok(await client.post(f"/enterprises/{uscc}/facts", headers=as_enterprise(uscc),
                                       json=fact("invention_patents", 2, "2025-12-31")), 201)
    assert first["filed_by"] == uscc and first["in_force"] and first["log"]["replayed"] is False
    await ok(await client.post(f"/enterprises/{uscc}/facts", headers=as_operator(),
                               json=fact("revenue", 3_000_000_000, "FY2025")))
    correction = await ok(await client.post(f"/enterprises/{uscc}/facts", headers=as_enterprise(uscc), json=fact(
        "invention_patents", 3, "2025-12-31", corrects=first["position"], source_document_digest="cd" * 32)))

    listed = (await client.get(f"/enterprises/{uscc}/facts", headers=as_enterprise(uscc))).json()
    assert [(f["name"], f["value"], f["in_force"], f["superseded_by"]) for f in listed["items"]] == [
        ("invention_patents", 2, False, correction["position"]), ("revenue", 3_000_000_000, True, None),
        ("invention_patents", 3, True, None)]
    current = (await client.get(f"/enterprises/{uscc}/facts?in_force=true", headers=REGULATOR)).json()["items"]
    assert [f["position"] for f in current] == [listed["items"][1]["position"], correction["position"]]
    before = (await client.get(f"/enterprises/{uscc}/facts?as_of={TODAY - dt.timedelta(days=1)}",
                               headers=REGULATOR)).json()
    assert before["items"] == []


async def test_a_malformed_fact_and_a_mismatched_correction_are_refused(client: httpx.AsyncClient) -> None:
    uscc = await enterprise(client, 2)
    [patents] = await file_facts(client, uscc, [("invention_patents", 2, "2025-12-31")])
    body = await refused(client.post(f"/enterprises/{uscc}/facts", headers=as_operator(),
                                     json=fact("revenue", "a lot", "FY2025")), client, "request.invalid", 400)
    assert "revenue is an integer (fen), got 'a lot'" in body["detail"]
    body = await refused(client.post(f"/enterprises/{uscc}/facts", headers=as_operator(),
                                     json=fact("revenue", 1, "FY2025", corrects=patents)), client,
                         "listing.correction_mismatch")
    assert body["corrects"] == patents
    await refused(client.post(f"/enterprises/{uscc}/facts", headers=as_operator(),
                              json=fact("revenue", 1, "FY2025", corrects=2**63)), client, "request.invalid", 400)


# -- moves and four-eyes ------------------------------------------------------------------------


async def test_a_move_is_requested_by_the_enterprise_and_carried_out_by_a_second_operator(
        client: httpx.AsyncClient) -> None:
    uscc = await enterprise(client, 3)
    body = await refused(request_move(client, uscc, "incubation", headers=as_enterprise(uscc)), client,
                         "listing.move_not_allowed")
    assert body["allowed"] == ["applied"]

    requested = await ok(await request_move(client, uscc, "applied", headers=as_enterprise(uscc)), 201)
    assert requested["status"] == "pending" and requested["requested_by"] == uscc
    assert requested["evaluation"]["passed"] is True
    assert (await client.get(f"/enterprises/{uscc}/stage", headers=as_enterprise(uscc))).json()["stage"] is None
    outcome = (await ok(await approve(client, requested["approval_id"], by="op-1")))["outcome"]
    assert (outcome["from_stage"], outcome["to_stage"], outcome["on"]) == (None, "applied", TODAY.isoformat())

    await file_facts(client, uscc, INCUBATION)
    requested = await ok(await request_move(client, uscc, "incubation", headers=as_operator("op-1")), 201)
    stale = await ok(await request_move(client, uscc, "rejected", headers=as_operator("op-3")), 201)
    await refused(approve(client, requested["approval_id"], by="op-1"), client, "approval.self_approval", 403)
    outcome = (await ok(await approve(client, requested["approval_id"], by="op-2")))["outcome"]
    assert outcome["to_stage"] == "incubation" and outcome["security_code"] == "810001"
    assert outcome["evaluation"]["rulebooks_used"] == ["market_tiers v1"]
    assert outcome["evaluation"]["standards_met"] == ["market_tiers:sci_tech_attribute/patent"]
    await refused(approve(client, stale["approval_id"]), client, "listing.stage_changed", 409)

    stage = (await client.get(f"/enterprises/{uscc}/stage", headers=REGULATOR)).json()
    assert (stage["stage"], stage["stage_name"], stage["since"], stage["security_code"], stage["board"]) == (
        "incubation", "孵化层", TODAY.isoformat(), "810001", "incubation")
    assert [(m["from_stage"], m["to_stage"], m["requested_by"], m["approved_by"]) for m in stage["moves"]] == [
        (None, "applied", uscc, "op-1"), ("applied", "incubation", "op-1", "op-2")]
    assert stage["allowed_moves"] == ["standardisation", "exited", "suspended"]


async def test_a_failing_move_without_an_override_is_refused_naming_every_failed_criterion(
        client: httpx.AsyncClient) -> None:
    uscc = await applied(client, 4)
    body = await refused(request_move(client, uscc, "incubation"), client, "listing.override_required")
    assert body["failed"] == [
        "market_tiers:no_penalties", "market_tiers:sci_tech_attribute/patent/invention_patents",
        "market_tiers:sci_tech_attribute/specialised/specialised_level", "market_tiers:sci_tech_attribute/rd/rd_spend"]
    assert body["rulebooks"] == ["market_tiers v1"]


async def test_an_overridden_move_is_recorded_with_its_reason_for_the_regulator(client: httpx.AsyncClient) -> None:
    uscc = await applied(client, 5)
    reason = "专板评审委员会认定具有科技属性(会议纪要2026-11号)"
    outcome = await move(client, uscc, "incubation", override=reason)
    assert outcome["override_reason"] == reason and outcome["evaluation"]["passed"] is False
    feed = (await client.get("/events?type=listing.moved", headers=REGULATOR)).json()["items"]
    [overridden] = [e for e in feed if e["data"]["to_stage"] == "incubation"]
    assert overridden["data"]["override_reason"] == reason and overridden["data"]["overridden"] is True
    assert overridden["data"]["evaluation"]["failed"][0] == "market_tiers:no_penalties"
    assert overridden["data"]["approved_by"] == "op-2" and overridden["data"]["requested_by"] == "op-1"


async def test_a_disallowed_move_names_the_allowed_moves(client: httpx.AsyncClient) -> None:
    uscc = await applied(client, 6)
    body = await refused(request_move(client, uscc, "bse_listed", override="any"), client, "listing.move_not_allowed")
    assert body["allowed"] == ["incubation", "standardisation", "cultivation", "rejected", "withdrawn"]
    assert "allowed: incubation, standardisation, cultivation, rejected, withdrawn" in body["detail"]


# -- boards and security codes ------------------------------------------------------------------


async def test_a_board_change_issues_a_new_code_and_retires_the_old_one_for_good(client: httpx.AsyncClient) -> None:
    first = await applied(client, 7, INCUBATION + STANDARDISATION)
    assert (await move(client, first, "incubation"))["security_code"] == "810001"
    outcome = await move(client, first, "standardisation")
    assert (outcome["security_code"], outcome["security_code_retired"]) == ("820001", "810001")
    stage = (await client.get(f"/enterprises/{first}/stage", headers=as_enterprise(first))).json()
    assert stage["security_codes"] == [
        {"code": "810001", "board": "incubation", "issued_on": TODAY.isoformat(), "retired_on": TODAY.isoformat()},
        {"code": "820001", "board": "standardisation", "issued_on": TODAY.isoformat(), "retired_on": None}]
    second = await applied(client, 8, INCUBATION)
    assert (await move(client, second, "incubation"))["security_code"] == "810002"  # 810001 is never reissued


async def test_a_board_change_is_refused_while_a_holding_is_frozen(client: httpx.AsyncClient) -> None:
    await warrant_target(client)
    _, bank_acct = await investor(client, "天津银行")
    code = await register_series(client, [(bank_acct, 10_000)])
    await file_facts(client, TARGET, INCUBATION + STANDARDISATION)
    await move_through(client, TARGET, "applied", "incubation")
    pending = await ok(await request_move(client, TARGET, "standardisation"), 201)
    await ok(await client.post(f"/warrant-series/{code}/holdings/{bank_acct}/freezes", headers=as_operator(), json={
        "units": 100, "document_ref": "(2026)津0116执保1号", "reason": "财产保全"}))

    body = await refused(approve(client, pending["approval_id"]), client, "listing.board_change_frozen")
    assert (body["frozen_holdings"], body["frozen_warrant_series"]) == (1, 1)
    await refused(request_move(client, TARGET, "standardisation"), client, "listing.board_change_frozen")
    stage = (await client.get(f"/enterprises/{TARGET}/stage", headers=REGULATOR)).json()
    assert (stage["stage"], stage["security_code"]) == ("incubation", "810001")

    await ok(await client.post(f"/warrant-series/{code}/holdings/{bank_acct}/thaws", headers=as_operator(), json={
        "units": 100, "document_ref": "(2026)津0116执保1号之一", "reason": "解除保全"}))
    assert (await ok(await approve(client, pending["approval_id"])))["outcome"]["security_code"] == "820001"


# -- rulebooks ----------------------------------------------------------------------------------


def market_tiers_v2(effective_from: dt.date) -> str:
    """The shipped market_tiers v1, republished as v2 demanding three invention patents instead of one."""
    [v1] = [f for f in shipped_files() if str(f).endswith("market_tiers/v1.toml")]
    text = v1.read_text(encoding="utf-8")
    text = text.replace("version = 1", "version = 2").replace("effective_from = 2024-01-01",
                                                              f"effective_from = {effective_from.isoformat()}")
    stricter = text.replace('label = "发明专利不少于1项"\nfact = "invention_patents"\nop = ">="\nthreshold = 1',
                            'label = "发明专利不少于3项"\nfact = "invention_patents"\nop = ">="\nthreshold = 3')
    assert stricter.count("threshold = 3") == 1 and "version = 2" in stricter
    return stricter


async def test_rulebooks_are_listed_with_the_version_in_force(client: httpx.AsyncClient) -> None:
    books = (await client.get("/rulebooks", headers=auth("investor", "INV1"))).json()["items"]
    assert {b["id"]: b["in_force_version"] for b in books} == {
        "bse_listing": 2, "market_tiers": 1, "neeq_innovation": 1, "neeq_listing": 2}
    neeq = (await client.get("/rulebooks/neeq_listing?on=2020-01-01", headers=REGULATOR)).json()
    assert neeq["in_force_version"] == 1 and [v["source"] for v in neeq["versions"]] == ["shipped", "shipped"]
    assert neeq["versions"][1]["rulebook"]["moves"][0]["move"] == "listing_reserve->neeq_application"
    assert (await client.get("/rulebooks/no_such_book", headers=REGULATOR)).status_code == 404


async def test_a_new_rulebook_version_is_published_through_four_eyes_and_used_from_its_effective_date(
        client: httpx.AsyncClient) -> None:
    uscc = await applied(client, 9, INCUBATION)
    later = TODAY + dt.timedelta(days=10)
    proposal = {"text": market_tiers_v2(later), "reason": "专板评审委员会第5次会议: 孵化层专利门槛提高"}
    requested = await ok(await client.post("/rulebooks", headers=as_operator("op-1"), json=proposal), 201)
    assert (requested["rulebook_id"], requested["version"], requested["status"]) == ("market_tiers", 2, "pending")
    await refused(approve(client, requested["approval_id"], by="op-1"), client, "approval.self_approval", 403)
    outcome = (await ok(await approve(client, requested["approval_id"], by="op-2")))["outcome"]
    assert outcome == {"rulebook_id": "market_tiers", "version": 2, "effective_from": later.isoformat()}

    book = (await client.get("/rulebooks/market_tiers", headers=as_enterprise(uscc))).json()
    assert book["in_force_version"] == 1
    assert [(v["version"], v["source"], v["in_force"]) for v in book["versions"]] == [
        (1, "shipped", True), (2, "published", False)]

    today = (await client.get(f"/enterprises/{uscc}/evaluations?to=incubation&on={TODAY}",
                              headers=as_enterprise(uscc))).json()
    assert (today["rulebooks_used"], today["passed"]) == (["market_tiers v1"], True)
    then = (await client.get(f"/enterprises/{uscc}/evaluations?to=incubation&on={later}", headers=REGULATOR)).json()
    assert (then["rulebooks_used"], then["passed"]) == (["market_tiers v2"], False)
    [patents] = [c for g in then["rulebooks"][0]["any_of"] for s in g["standards"] for c in s["criteria"]
                 if c["id"] == "invention_patents"]
    assert (patents["figure"], patents["threshold"], patents["passed"]) == (2, 3, False)
    assert patents["period"] == "2025-12-31"
    assert patents["inputs"][0]["source_document_digest"] == "ab" * 32

    again = {**proposal, "text": market_tiers_v2(later + dt.timedelta(days=1))}
    await refused(client.post("/rulebooks", headers=as_operator(), json=again), client,
                  "listing.rulebook_version_conflict", 409)
    backdated = {**proposal, "text": market_tiers_v2(TODAY - dt.timedelta(days=1)).replace(
        "version = 2", "version = 3")}
    await refused(client.post("/rulebooks", headers=as_operator(), json=backdated), client,
                  "listing.rulebook_backdated")


# -- who may ask what -----------------------------------------------------------------------------


async def test_an_enterprise_cannot_act_or_look_for_another(client: httpx.AsyncClient) -> None:
    mine, other = await enterprise(client, 10), await enterprise(client, 11)
    me = as_enterprise(mine)
    await refused(client.post(f"/enterprises/{other}/facts", headers=me, json=fact("penalties", 0, "2025-12-31")),
                  client, "auth.forbidden", 403)
    await refused(client.post(f"/enterprises/{other}/moves", headers=me, json={"to_stage": "applied", "reason": "x"}),
                  client, "auth.forbidden", 403)
    for path in ("facts", "stage", "next-step", "evaluations?to=applied"):
        assert (await client.get(f"/enterprises/{other}/{path}", headers=me)).status_code == 403
    assert (await client.get("/listing/overview", headers=me)).status_code == 403


async def test_the_next_step_says_what_is_missing(client: httpx.AsyncClient) -> None:
    uscc = await applied(client, 12, INCUBATION)
    report = (await client.get(f"/enterprises/{uscc}/next-step", headers=as_enterprise(uscc))).json()
    assert report["stage"] == "applied"
    steps = {s["to_stage"]: s for s in report["steps"]}
    assert list(steps) == ["incubation", "standardisation", "cultivation"]
    assert steps["incubation"]["passed"] is True and steps["incubation"]["missing"] == []
    missing = [(g["criterion"]["id"], g["criterion"]["figure"]) for g in steps["standardisation"]["missing"]]
    assert missing == [("specialised_level", None), ("audited", None), ("governance", None)]


# -- the overview -------------------------------------------------------------------------------


async def test_the_overview_counts_stages_moves_and_days_and_lists_the_reserve(client: httpx.AsyncClient, db) -> None:
    small = await applied(client, 13, INCUBATION)
    await move(client, small, "incubation")
    ready = await applied(client, 14, READY_FOR_RESERVE)
    await move_through(client, ready, "standardisation", "cultivation", "listing_reserve")

    now = (await client.get("/listing/overview", headers=REGULATOR)).json()
    assert now["as_of"] == TODAY.isoformat()
    assert [(s["stage"], s["enterprises"]) for s in now["stages"]] == [("incubation", 1), ("listing_reserve", 1)]
    assert now["moves_per_month"] == [{"month": TODAY.strftime("%Y-%m"), "moves": 6}]
    [entry] = now["reserve"]
    assert entry["uscc"] == ready and [s["to_stage"] for s in entry["next_steps"]] == ["neeq_application"]
    assert not entry["next_steps"][0]["passed"]
    missing = {g["criterion"]["id"] for g in entry["next_steps"][0]["missing"]}
    assert missing >= {"share_capital", "net_assets_per_share"}

    travel(db, 10)
    later = (await client.get("/listing/overview", headers=as_operator())).json()
    days = {d["stage"]: (d["stints"], d["average_days"]) for d in later["days_per_stage"]}
    assert days == {"applied": (2, "0.00"), "incubation": (1, "10.00"), "standardisation": (1, "0.00"),
                    "cultivation": (1, "0.00"), "listing_reserve": (1, "10.00")}
    before = (await client.get(f"/listing/overview?as_of={TODAY - dt.timedelta(days=1)}", headers=REGULATOR)).json()
    assert (before["stages"], before["moves_per_month"], before["reserve"]) == ([], [], [])


async def test_nothing_is_evaluated_without_a_target_stage(client: httpx.AsyncClient) -> None:
    uscc = await enterprise(client, 15)
    r = await client.get(f"/enterprises/{uscc}/evaluations", headers=REGULATOR)
    assert r.status_code == 400 and r.json()["parameter"] == "to"


# -- the demo -----------------------------------------------------------------------------------


async def test_the_listing_demo_moves_enterprises_through_the_tiers_once(client: httpx.AsyncClient, db,
                                                                         settings) -> None:
    from registry.listing.service import load_listing_demo
    usccs = [await enterprise(client, 20 + i) for i in range(5)]
    first = await load_listing_demo(db, settings)
    assert first.endswith("0 already present, 0 refused"), first
    size = await log_size(client)
    again = await load_listing_demo(db, settings)
    assert again.startswith("listing demo: 0 commands applied") and await log_size(client) == size, again
    stages = [(await client.get(f"/enterprises/{u}/stage", headers=REGULATOR)).json() for u in usccs]
    assert [s["stage"] for s in stages] == ["standardisation", "listing_reserve", "incubation", "applied", "incubation"]
    assert stages[4]["moves"][-1]["override_reason"] and not stages[4]["moves"][-1]["passed"]
    pending = (await client.get("/approvals?status=pending&action=listing.move", headers=REGULATOR)).json()["items"]
    assert [p["payload"]["uscc"] for p in pending] == [usccs[3]]
