"""Building listing-pipeline state through the API, for the listing tests."""

from __future__ import annotations

import itertools

import httpx

from support import DIGEST, auth, tianjin_uscc
from warrant_fixtures import ok

_keys = itertools.count()
REGULATOR = auth("regulator", "csrc-1")

# Facts that satisfy the market's shipped tier criteria (market_tiers v1), step by step.
INCUBATION = [("penalties", 0, "2025-12-31"), ("invention_patents", 2, "2025-12-31")]
STANDARDISATION = [("specialised_level", "provincial", "2025-12-31"),
                   ("audit_opinion", "standard_unqualified", "FY2025"), ("governance_rules_adopted", True, "2025-12-31")]
CULTIVATION = [("joint_stock_converted", True, "2025-12-31"), ("sponsor_broker_engaged", True, "2025-12-31")]
RESERVE = [("operating_years", 6, "2025-12-31")]
READY_FOR_RESERVE = INCUBATION + STANDARDISATION + CULTIVATION + RESERVE


def as_operator(name: str = "op-1") -> dict[str, str]:
    return auth("operator", name, f"l-{next(_keys)}")


def as_enterprise(uscc: str) -> dict[str, str]:
    return auth("enterprise", uscc, f"l-{next(_keys)}")


async def enterprise(client: httpx.AsyncClient, n: int, name: str = "天津滨海测试科技股份公司") -> str:
    uscc = tianjin_uscc(n)
    await ok(await client.post("/enterprises", headers=as_operator(), json={
        "uscc": uscc, "name": name, "legal_form": "joint_stock", "registered_capital_fen": 5_000_000_000,
        "industry": "工业软件"}))
    return uscc


def fact(name: str, value: int | bool | str, period: str, **changes) -> dict:
    return {"name": name, "value": value, "fiscal_period": period, "source_document_digest": DIGEST, **changes}


async def file_facts(client: httpx.AsyncClient, uscc: str, facts: list[tuple]) -> list[int]:
    return [(await ok(await client.post(f"/enterprises/{uscc}/facts", headers=as_operator(),
                                        json=fact(*f))))["position"] for f in facts]


async def request_move(client: httpx.AsyncClient, uscc: str, to_stage: str, *, headers: dict | None = None,
                       override: str | None = None) -> httpx.Response:
    body: dict = {"to_stage": to_stage, "reason": f"申请进入 {to_stage}"}
    if override is not None:
        body["override_reason"] = override
    return await client.post(f"/enterprises/{uscc}/moves", headers=headers or as_operator(), json=body)


async def approve(client: httpx.AsyncClient, approval_id: str, by: str = "op-2") -> httpx.Response:
    return await client.post(f"/approvals/{approval_id}/approve", headers=as_operator(by), json={"reason": "同意"})


async def move(client: httpx.AsyncClient, uscc: str, to_stage: str, *, override: str | None = None) -> dict:
    """Requested by op-1, approved by op-2: the move's outcome."""
    requested = await ok(await request_move(client, uscc, to_stage, override=override))
    return (await ok(await approve(client, requested["approval_id"])))["outcome"]


async def move_through(client: httpx.AsyncClient, uscc: str, *stages: str) -> dict:
    outcome: dict = {}
    for stage in stages:
        outcome = await move(client, uscc, stage)
    return outcome
