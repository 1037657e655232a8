"""Building a small warrant market through the API, for the warrant tests."""

from __future__ import annotations

import datetime as dt
import itertools

import httpx

from support import DIGEST, TEST_TODAY, auth, log_size, tianjin_uscc

_keys = itertools.count()
TODAY = TEST_TODAY
TARGET = tianjin_uscc(77)
REGULATOR = auth("regulator", "csrc-1")


def op(name: str = "op-1") -> dict[str, str]:
    return auth("operator", name, f"w-{next(_keys)}")


def key(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": f"w-{next(_keys)}"}


async def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code in (status, 201), response.text
    return response.json()



async def investor(client: httpx.AsyncClient, name: str, *, qualified: bool = True,
                   nominee_for: list[str] | None = None) -> tuple[str, str]:
    kind = "institution" if nominee_for else "natural_person"
    inv = (await ok(await client.post("/investors", headers=op(), json={
        "kind": kind, "name": name, "identity_document_digest": DIGEST})))["investor_id"]
    if qualified:
        body = {"category": "financial_institution" if nominee_for else "natural_person", "evidence_digest": DIGEST,
                "valid_from": "2020-01-01"}
        if not nominee_for:
            body["figures"] = {"financial_assets_fen": 100_000_000, "investment_experience_years": 3}
        await ok(await client.post(f"/investors/{inv}/qualifications", headers=op(), json=body))
    account_body = {"kind": "nominee", "beneficial_owners": nominee_for} if nominee_for else {}
    account = (await ok(await client.post(f"/investors/{inv}/accounts", headers=op(), json=account_body)))["account_id"]
    return inv, account


async def enterprise(client: httpx.AsyncClient, legal_form: str = "joint_stock") -> str:
    await ok(await client.post("/enterprises", headers=op(), json={
        "uscc": TARGET, "name": "天津海河智芯科技股份有限公司", "legal_form": legal_form,
        "registered_capital_fen": 10_000_000_000, "industry": "集成电路"}))
    return TARGET


def terms(allocations: list[tuple[str, int]], **changes) -> dict:
    return {"target_uscc": TARGET, "name": "海河智芯2026年第一期认股权", "underlying": "shares",
            "entitlement_per_unit": "1", "exercise_price_per_unit": "8.50",
            "valid_from": (TODAY - dt.timedelta(days=30)).isoformat(),
            "valid_until": (TODAY + dt.timedelta(days=365)).isoformat(),
            "exercise_method": "capital_increase", "transfer_modes": ["private_agreement", "disclosed_agreement"],
            "documents": [{"name": "认股权协议", "sha256": DIGEST}],
            "allocations": [{"account_id": a, "units": u} for a, u in allocations], **changes}


async def register_series(client: httpx.AsyncClient, allocations: list[tuple[str, int]], **changes) -> str:
    proposal = await ok(await client.post("/warrant-series", headers=auth("enterprise", TARGET, f"w-{next(_keys)}"),
                                          json={"terms": terms(allocations, **changes), "reason": "银行认股权贷款"}))
    approved = await ok(await client.post(f"/approvals/{proposal['approval_id']}/approve", headers=op("op-2"),
                                          json={"reason": "材料齐备"}))
    return approved["outcome"]["code"]


async def bank_and_fund(client: httpx.AsyncClient, db, units: int) -> dict:
    """A registered series whose `units` the bank holds, the fund ready to receive, six trading days on."""
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, units)])
    travel(db, trading_days=6)
    return {"code": code, "bank": bank, "bank_acct": bank_acct, "fund": fund, "fund_acct": fund_acct}


def travel(db, days: int = 0, *, trading_days: int | None = None) -> dt.date:
    """Move the registry's business date forward (calendar days, or trading days on the seeded calendar)."""
    from registry.calendar.seed import load_seed
    target = TODAY + dt.timedelta(days=days)
    if trading_days is not None:
        target = load_seed().add_trading_days(TODAY, trading_days)
    moment = dt.datetime.combine(target, dt.time(10, 0), dt.timezone(dt.timedelta(hours=8)))
    db.writer.clock = lambda: moment.astimezone(dt.timezone.utc)
    return target
