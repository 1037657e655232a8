"""Parties and accounts through the API: every refusal is a 4xx naming its rule, and changes nothing."""

from __future__ import annotations

import datetime as dt
import itertools

import httpx
import pytest

from support import DIGEST, TEST_TODAY, auth, log_size, tianjin_uscc
from warrant_fixtures import travel

_keys = itertools.count()
RICH = {"financial_assets_fen": 60_000_000, "investment_experience_years": 3}


def op() -> dict[str, str]:
    return auth("operator", "op-1", f"k-{next(_keys)}")


def enterprise(n: int = 1, **changes) -> dict:
    return {"uscc": tianjin_uscc(n), "name": f"天津科创企业{n}号有限公司", "legal_form": "llc",
            "registered_capital_fen": 500_000_000, "industry": "集成电路", **changes}


async def new_investor(client: httpx.AsyncClient, name: str = "张三", kind: str = "natural_person") -> str:
    r = await client.post("/investors", json={"kind": kind, "name": name, "identity_document_digest": DIGEST},
                          headers=op())
    assert r.status_code == 201, r.text
    return r.json()["investor_id"]


async def new_account(client: httpx.AsyncClient, investor_id: str, **body) -> dict:
    r = await client.post(f"/investors/{investor_id}/accounts", json=body, headers=op())
    assert r.status_code == 201, r.text
    return r.json()



async def test_an_enterprise_is_registered_and_listed(client: httpx.AsyncClient) -> None:
    r = await client.post("/enterprises", json=enterprise(1, specialised_level="little_giant"), headers=op())
    assert r.status_code == 201
    assert r.json()["status"] == "registered" and r.json()["specialised_level"] == "little_giant"
    listed = (await client.get("/enterprises?specialised_level=little_giant", headers=auth("regulator", "r"))).json()
    assert [e["uscc"] for e in listed["items"]] == [tianjin_uscc(1)]


@pytest.mark.parametrize("uscc, code, figures", [
    ("91120116MA0000001", "uscc.length", {"length": 17}),
    ("91120116MA000000IX", "uscc.alphabet", {"position": 17, "character": "I"}),
    (tianjin_uscc(1)[:17] + ("0" if tianjin_uscc(1)[17] != "0" else "1"), "uscc.check_character", {}),
])
async def test_a_malformed_uscc_is_422_naming_the_problem(client: httpx.AsyncClient, uscc, code, figures) -> None:
    r = await client.post("/enterprises", json=enterprise(uscc=uscc), headers=op())
    assert r.status_code == 422 and r.json()["code"] == code
    assert figures.items() <= r.json().items()
    assert await log_size(client) == 1


async def test_an_enterprise_from_another_province_is_refused_with_the_reason(client: httpx.AsyncClient) -> None:
    from registry.parties.uscc import uscc_check_character
    beijing = "91110108MA0000001"
    r = await client.post("/enterprises", json=enterprise(uscc=beijing + uscc_check_character(beijing)), headers=op())
    assert r.status_code == 422
    assert r.json()["code"] == "uscc.province"
    assert r.json()["division_code"] == "110108" and r.json()["province_prefix"] == "12"


async def test_registering_an_enterprise_twice_is_a_conflict(client: httpx.AsyncClient) -> None:
    await client.post("/enterprises", json=enterprise(1), headers=op())
    again = await client.post("/enterprises", json=enterprise(1), headers=op())
    assert again.status_code == 409 and again.json()["code"] == "enterprise.already_registered"
    assert await log_size(client) == 2


async def test_an_enterprise_sees_its_own_record_and_nobody_elses(client: httpx.AsyncClient) -> None:
    await client.post("/enterprises", json=enterprise(1), headers=op())
    await client.post("/enterprises", json=enterprise(2), headers=op())
    mine = await client.get(f"/enterprises/{tianjin_uscc(1)}", headers=auth("enterprise", tianjin_uscc(1)))
    theirs = await client.get(f"/enterprises/{tianjin_uscc(2)}", headers=auth("enterprise", tianjin_uscc(1)))
    missing = await client.get(f"/enterprises/{tianjin_uscc(3)}", headers=auth("enterprise", tianjin_uscc(1)))
    assert mine.status_code == 200 and mine.json()["name"] == "天津科创企业1号有限公司"
    assert theirs.status_code == missing.status_code == 403
    assert theirs.json()["detail"] == missing.json()["detail"]  # existence is not revealed


async def test_a_nominee_account_lists_its_beneficial_owners(client: httpx.AsyncClient) -> None:
    nominee_holder = await new_investor(client, "渤海证券资管计划", "institution")
    owners = [await new_investor(client, "李四"), await new_investor(client, "王五")]
    refused = await client.post(f"/investors/{nominee_holder}/accounts", json={"kind": "nominee"}, headers=op())
    assert refused.status_code == 422 and refused.json()["code"] == "account.nominee_without_beneficial_owners"
    unknown = await client.post(f"/investors/{nominee_holder}/accounts",
                                json={"kind": "nominee", "beneficial_owners": ["INV99999999"]}, headers=op())
    assert unknown.status_code == 404 and unknown.json()["unknown_investors"] == ["INV99999999"]
    account = await new_account(client, nominee_holder, kind="nominee", beneficial_owners=owners)
    assert account["beneficial_owners"] == sorted(owners) and account["status"] == "open"


async def test_freeze_thaw_and_close_follow_the_account_lifecycle(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    account = (await new_account(client, investor))["account_id"]
    thaw_open = await client.post(f"/accounts/{account}/thaws", json={"document_ref": "x", "reason": "r"},
                                  headers=op())
    assert thaw_open.status_code == 422 and thaw_open.json()["allowed_statuses"] == ["frozen"]
    frozen = await client.post(f"/accounts/{account}/freezes", headers=op(), json={
        "basis": "court_order", "document_ref": "(2026)津0116执保123号", "reason": "财产保全"})
    assert frozen.status_code == 200 and frozen.json()["status"] == "frozen"
    assert frozen.json()["freeze_document_ref"] == "(2026)津0116执保123号"
    close_frozen = await client.post(f"/accounts/{account}/closures", json={"reason": "r"}, headers=op())
    assert close_frozen.status_code == 422 and close_frozen.json()["code"] == "account.state_refuses_action"
    thawed = await client.post(f"/accounts/{account}/thaws", headers=op(), json={
        "document_ref": "(2026)津0116执保123号之一", "reason": "解除保全"})
    assert thawed.json()["status"] == "open"
    closed = await client.post(f"/accounts/{account}/closures", json={"reason": "投资者申请销户"}, headers=op())
    assert closed.json()["status"] == "closed"
    events = (await client.get(f"/events?stream=account-{account}", headers=auth("regulator", "r"))).json()["items"]
    assert [e["type"] for e in events] == ["account.opened", "account.frozen", "account.thawed", "account.closed"]
    assert events[1]["meta"]["reason"] == "财产保全"


async def test_an_investor_sees_only_its_own_accounts(client: httpx.AsyncClient) -> None:
    alice, bob = await new_investor(client, "Alice"), await new_investor(client, "Bob")
    alice_account = (await new_account(client, alice))["account_id"]
    assert (await client.get(f"/accounts/{alice_account}", headers=auth("investor", alice))).status_code == 200
    assert (await client.get(f"/accounts/{alice_account}", headers=auth("investor", bob))).status_code == 403
    assert (await client.get("/accounts/ACC99999999", headers=auth("investor", bob))).status_code == 403
    own_list = await client.get(f"/investors/{alice}/accounts", headers=auth("investor", alice))
    assert [a["account_id"] for a in own_list.json()["items"]] == [alice_account]
    assert (await client.get(f"/investors/{alice}/accounts", headers=auth("investor", bob))).status_code == 403


async def test_qualified_status_holds_inside_its_window_until_revoked(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    granted = await client.post(f"/investors/{investor}/qualifications", headers=op(), json={
        "category": "natural_person", "evidence_digest": DIGEST, "valid_from": "2026-01-01",
        "valid_until": "2026-12-31", "figures": RICH})
    assert granted.status_code == 201 and granted.json()["sequence"] == 1

    async def qualified(day: str) -> bool:
        r = await client.get(f"/investors/{investor}/qualifications?as_of={day}", headers=auth("investor", investor))
        return r.json()["qualified"]

    assert [await qualified(d) for d in ("2025-12-31", "2026-01-01", "2026-12-31", "2027-01-01")] == \
        [False, True, True, False]
    revoked = await client.post(f"/investors/{investor}/qualifications/1/revocations", headers=op(),
                                json={"revoked_on": "2026-06-01", "reason": "资产证明失效"})
    assert revoked.json()["revoked_on"] == "2026-06-01"
    assert [await qualified(d) for d in ("2026-05-31", "2026-06-01")] == [True, False]
    twice = await client.post(f"/investors/{investor}/qualifications/1/revocations", headers=op(),
                              json={"revoked_on": "2026-07-01", "reason": "again"})
    assert twice.status_code == 422 and twice.json()["code"] == "qualification.already_revoked"


async def test_without_a_date_qualification_is_judged_on_the_markets_business_date(
        client: httpx.AsyncClient, db) -> None:
    investor = await new_investor(client)
    await client.post(f"/investors/{investor}/qualifications", headers=op(), json={
        "category": "natural_person", "evidence_digest": DIGEST, "valid_from": "2026-01-01",
        "valid_until": "2026-12-31", "figures": RICH})
    today = await client.get(f"/investors/{investor}/qualifications", headers=op())
    assert (today.json()["as_of"], today.json()["qualified"]) == (TEST_TODAY.isoformat(), True)
    travel(db, days=60)  # the business date moves past the status' last day
    later = await client.get(f"/investors/{investor}/qualifications", headers=op())
    assert (later.json()["as_of"], later.json()["qualified"]) == (
        (TEST_TODAY + dt.timedelta(days=60)).isoformat(), False)


async def test_a_qualification_with_a_bad_digest_or_window_is_refused(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    bad_digest = await client.post(f"/investors/{investor}/qualifications", headers=op(), json={
        "category": "natural_person", "evidence_digest": "ABC", "valid_from": "2026-01-01", "figures": RICH})
    assert bad_digest.status_code == 422 and bad_digest.json()["code"] == "qualification.evidence_digest"
    backwards = await client.post(f"/investors/{investor}/qualifications", headers=op(), json={
        "category": "natural_person", "evidence_digest": DIGEST, "valid_from": "2026-02-01",
        "valid_until": "2026-01-01", "figures": RICH})
    assert backwards.status_code == 422 and backwards.json()["code"] == "qualification.validity_window"


async def test_lists_paginate_with_a_cursor(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await client.post("/enterprises", json=enterprise(n), headers=op())
    seen, after = [], ""
    while True:
        r = (await client.get(f"/enterprises?limit=2&after={after}", headers=auth("operator", "op-2"))).json()
        seen += [e["uscc"] for e in r["items"]]
        if r["next"] is None:
            break
        after = r["next"]
    assert seen == sorted(tianjin_uscc(n) for n in range(5))


async def test_a_natural_person_below_the_thresholds_is_refused_with_every_criterion(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    body = {"category": "natural_person", "evidence_digest": DIGEST, "valid_from": "2026-01-01",
            "figures": {"financial_assets_fen": 49_999_999, "investment_experience_years": 2}}
    r = await client.post(f"/investors/{investor}/qualifications", headers=op(), json=body)
    assert r.status_code == 422 and r.json()["code"] == "qualification.thresholds_not_met"
    criteria = {c["name"]: (c["figure"], c["threshold"], c["passed"]) for c in r.json()["criteria"]}
    assert criteria["financial_assets"] == (49_999_999, 50_000_000, False)
    assert criteria["investment_experience"] == (2, 2, True)
    no_figures = await client.post(f"/investors/{investor}/qualifications", headers=op(), json={
        "category": "institution_net_assets", "evidence_digest": DIGEST, "valid_from": "2026-01-01"})
    assert no_figures.status_code == 422 and no_figures.json()["code"] == "qualification.figures_required"
    thresholds = (await client.get("/qualification-thresholds", headers=auth("investor", investor))).json()
    assert thresholds["natural_person_min_financial_assets_fen"] == 50_000_000


async def test_an_account_carries_its_version_and_a_write_on_a_stale_one_is_409(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    account = (await new_account(client, investor))["account_id"]
    seen = await client.get(f"/accounts/{account}", headers=auth("operator", "op-1"))
    assert seen.headers["etag"] == '"0"'
    freeze = {"basis": "regulator", "document_ref": "监管函", "reason": "冻结"}
    first = await client.post(f"/accounts/{account}/freezes", json=freeze,
                              headers={**op(), "If-Match": seen.headers["etag"]})
    assert first.status_code == 200
    stale = await client.post(f"/accounts/{account}/thaws", json={"document_ref": "x", "reason": "y"},
                              headers={**op(), "If-Match": seen.headers["etag"]})
    assert stale.status_code == 409 and stale.json()["code"] == "eventlog.stream_version_conflict"
    assert (await client.get(f"/accounts/{account}", headers=auth("operator", "op-1"))).json()["status"] == "frozen"
    unsupported = await client.post("/investors", headers={**op(), "If-Match": '"0"'},
                                    json={"kind": "natural_person", "name": "x", "identity_document_digest": DIGEST})
    assert unsupported.status_code == 400 and unsupported.json()["header"] == "If-Match"


@pytest.mark.parametrize("path, parameter", [
    ("/enterprises?status=listed", "status"),
    ("/enterprises?specialised_level=giant", "specialised_level"),
    ("/investors?kind=person", "kind"),
    ("/approvals?status=waiting", "status"),
    ("/approvals?action=listing.teleport", "action"),
    ("/warrant-series?status=alive", "status"),
])
async def test_a_list_filter_outside_its_vocabulary_is_400_naming_the_parameter(client: httpx.AsyncClient,
                                                                               path: str, parameter: str) -> None:
    """A mistyped filter value is a malformed request, not an empty page that looks like "none found"."""
    r = await client.get(path, headers=auth("regulator", "r"))
    assert r.status_code == 400 and r.json()["code"] == "request.invalid", r.text
    assert parameter in r.json()["detail"]
    allowed = r.json()["allowed"] if parameter == "action" else r.json()["errors"][0]["allowed"]
    assert allowed and all(isinstance(value, str) for value in allowed)


async def test_an_accounts_status_filter_outside_its_vocabulary_is_400(client: httpx.AsyncClient) -> None:
    investor = await new_investor(client)
    await new_account(client, investor)
    ok = await client.get(f"/investors/{investor}/accounts?status=open", headers=auth("regulator", "r"))
    assert ok.status_code == 200 and len(ok.json()["items"]) == 1
    r = await client.get(f"/investors/{investor}/accounts?status=opened", headers=auth("regulator", "r"))
    assert r.status_code == 400 and "status" in r.json()["detail"]
    assert r.json()["errors"][0]["allowed"] == ["open", "frozen", "closed"]
