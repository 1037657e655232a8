"""A stored valuation recomputes byte for byte after a restart, from the log alone, and the CLI says so."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from decimal import Decimal

import msgspec
import pytest

from registry.approvals import domain as approvals_domain
from registry.approvals import service as approvals
from registry.calendar.service import ensure_seeded
from registry.db.database import Database
from registry.eventlog.model import EventMeta
from registry.parties import domain as parties
from registry.parties import service as party_service
from registry.parties.qualification import QualificationCategory
from registry.valuation import cli, service
from registry.valuation.models import InputSources, UnderlyingBasis
from support import DIGEST, TEST_TODAY, pin_clock, tianjin_uscc

OPERATOR = EventMeta(actor="op-1", role="operator", command="test")
SECOND = EventMeta(actor="op-2", role="operator", command="test")
TARGET = tianjin_uscc(601)
TODAY = TEST_TODAY


async def run(db: Database, handler, meta: EventMeta = OPERATOR):
    return (await db.writer.execute(handler, meta)).response


async def registered_series(db: Database) -> str:
    await ensure_seeded(db.writer)
    await run(db, party_service.register_enterprise(parties.RegisterEnterprise(
        uscc=TARGET, name="天津样本科技股份有限公司", legal_form=parties.LegalForm.joint_stock,
        registered_capital_fen=10**10, industry="软件"), province_prefix="12"))
    investor_id = (await run(db, party_service.register_investor(parties.RegisterInvestor(
        kind=parties.InvestorKind.natural_person, name="投资者", identity_document_digest=DIGEST))))["investor_id"]
    await run(db, party_service.grant_qualification(investor_id, parties.GrantQualification(
        category=QualificationCategory.NATURAL_PERSON, evidence_digest=DIGEST, valid_from=dt.date(2020, 1, 1),
        figures=parties.QualificationFigures(financial_assets_fen=10**8, investment_experience_years=5)),
        db.settings.qualification_thresholds))
    account = (await run(db, party_service.open_account(investor_id, parties.OpenAccount())))["account_id"]
    terms = {"target_uscc": TARGET, "name": "样本认股权", "underlying": "shares", "entitlement_per_unit": "1.5",
             "exercise_price_per_unit": "3.00", "valid_from": (TODAY + dt.timedelta(days=30)).isoformat(),
             "valid_until": (TODAY + dt.timedelta(days=1000)).isoformat(), "exercise_method": "capital_increase",
             "transfer_modes": ["private_agreement"], "allocations": [{"account_id": account, "units": 30_000}]}
    request = approvals_domain.RequestApproval(action="warrant.register", payload=terms, reason="test")
    approval = (await run(db, approvals.request_approval(request)))["approval_id"]
    return (await run(db, approvals.approve(approval, approvals_domain.Decide(reason="ok")), SECOND))["outcome"]["code"]


def value_series(style: str, dlom: str | None) -> service.ValueSeries:
    return service.ValueSeries(
        valuation_date=TODAY, underlying_price=Decimal("2.87"), volatility=Decimal("0.5123"),
        risk_free_rate=Decimal("0.014389"), dividend_yield=Decimal("0.004"), shares_outstanding=80_000_000,
        style=style, lattice_steps=737, dlom_method=dlom,
        sources=InputSources(underlying_basis=UnderlyingBasis.INDEPENDENT_REPORT, underlying_basis_date=TODAY,
                             underlying_document_digest=DIGEST, volatility_peers=("430047.BJ",),
                             volatility_method="3-year daily", risk_free_source="CGB 3y"))


@pytest.fixture
async def recorded(dsns, settings, request):
    """Record one valuation, then close the Database: what follows starts from a cold process state."""
    style, dlom = request.param
    async with Database(dsns.app, settings) as db:
        pin_clock(db)
        code = await registered_series(db)
        response = await run(db, service.record_valuation(code, value_series(style, dlom)))
    return response


CASES = [("european", None), ("european", "finnerty_2012"), ("american", "chaffe_1993"), ("american", "finnerty_2012")]


@pytest.mark.parametrize("recorded", CASES, indirect=True)
async def test_a_valuation_recomputes_byte_for_byte_after_a_restart(dsns, settings, recorded) -> None:
    valuation_id = recorded["valuation_id"]
    async with Database(dsns.app, settings) as db:
        pin_clock(db)
        async with db.connection() as conn:
            raw = bytes(await conn.fetchval("SELECT canonical FROM event WHERE position = $1",
                                            int(valuation_id[1:])))
            again = service.recompute(await service.load_recorded(conn, valuation_id))
    stored = json.loads(raw)["data"]["result"]
    assert msgspec.json.encode(stored, order="sorted") == service.canonical_bytes(again.recomputed)
    assert again.identical and again.differences == []


@pytest.mark.parametrize("recorded", [("american", "finnerty_2012")], indirect=True)
async def test_the_cli_prints_both_results_and_exits_zero_when_identical(dsns, recorded, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", dsns.app)
    args = argparse.Namespace(valuation_id=recorded["valuation_id"], data_dir=None)
    assert await asyncio.to_thread(cli.main, args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["identical"] is True and printed["stored"] == printed["recomputed"] == recorded["result"]


@pytest.mark.parametrize("recorded", [("european", None)], indirect=True)
async def test_the_cli_exits_non_zero_when_the_figures_differ(dsns, recorded, monkeypatch, capsys) -> None:
    real_price = service.price

    def drifted(inputs):
        result = real_price(inputs)
        return msgspec.structs.replace(result, value_per_unit=result.value_per_unit + Decimal("0.000001"))

    monkeypatch.setenv("DATABASE_URL", dsns.app)
    monkeypatch.setattr(service, "price", drifted)
    args = argparse.Namespace(valuation_id=recorded["valuation_id"], data_dir=None)
    assert await asyncio.to_thread(cli.main, args) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["differences"] == ["value_per_unit"] and "DIFFERENT" in captured.err


@pytest.mark.parametrize("recorded", [("european", None)], indirect=True)
async def test_the_cli_names_an_unknown_valuation(dsns, recorded, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", dsns.app)
    assert await asyncio.to_thread(cli.main, argparse.Namespace(valuation_id="V00000001", data_dir=None)) == 2
    assert "valuation.not_found" in capsys.readouterr().err
