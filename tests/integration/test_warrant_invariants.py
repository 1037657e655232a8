"""Warrant invariants under random and concurrent command sequences, against real PostgreSQL.

Per series, at every step: issued = outstanding + exercised + cancelled + expired, no balance is
negative, holders never exceed the maximum, and the projections equal a replay of the log.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from registry.approvals import domain as approvals_domain
from registry.approvals import service as approvals
from registry.calendar.service import ensure_seeded
from registry.db.database import Database
from registry.errors import RegistryError
from registry.eventlog.model import EventMeta
from registry.eventlog.rebuild import rebuild
from registry.parties import domain as parties
from registry.parties import service as party_service
from registry.parties.qualification import QualificationCategory
from registry.warrants import domain, hot, service
from registry.warrants.domain import HolderCapBasis
from support import DIGEST, TEST_TODAY, pin_clock, tianjin_uscc

OPERATOR = EventMeta(actor="op-1", role="operator", command="test")
SECOND = EventMeta(actor="op-2", role="operator", command="test")
TARGET = tianjin_uscc(501)
HOLDERS = 5
_series = itertools.count()


async def run(db: Database, handler, meta: EventMeta = OPERATOR):
    return (await db.writer.execute(handler, meta)).response


@pytest.fixture
async def market(dsns, settings):
    """One target and five qualified investors with accounts; the holding interval off (tested elsewhere)."""
    relaxed = msgspec.structs.replace(settings, holding_interval_trading_days=0)
    async with Database(dsns.app, relaxed) as db:
        pin_clock(db)
        await ensure_seeded(db.writer)
        await run(db, party_service.register_enterprise(parties.RegisterEnterprise(
            uscc=TARGET, name="天津样本科技股份有限公司", legal_form=parties.LegalForm.joint_stock,
            registered_capital_fen=10**10, industry="软件"), province_prefix="12"))
        accounts = []
        for i in range(HOLDERS):
            investor_id = (await run(db, party_service.register_investor(parties.RegisterInvestor(
                kind=parties.InvestorKind.natural_person, name=f"投资者{i}", identity_document_digest=DIGEST))))[
                "investor_id"]
            await run(db, party_service.grant_qualification(investor_id, parties.GrantQualification(
                category=QualificationCategory.NATURAL_PERSON, evidence_digest=DIGEST, valid_from=dt.date(2020, 1, 1),
                figures=parties.QualificationFigures(financial_assets_fen=10**8, investment_experience_years=5)),
                relaxed.qualification_thresholds))
            accounts.append((await run(db, party_service.open_account(investor_id, parties.OpenAccount())))[
                "account_id"])
        yield db, accounts


async def new_series(db: Database, accounts: list[str], units: int, max_holders: int = 200) -> str:
    today = TEST_TODAY
    terms = {"target_uscc": TARGET, "name": f"样本认股权{next(_series)}", "underlying": "shares",
             "entitlement_per_unit": "1.5", "exercise_price_per_unit": "3.00",
             "valid_from": (today - dt.timedelta(days=1)).isoformat(),
             "valid_until": (today + dt.timedelta(days=400)).isoformat(), "exercise_method": "capital_increase",
             "transfer_modes": ["private_agreement"], "max_holders": max_holders,
             "allocations": [{"account_id": accounts[0], "units": units}]}
    request = approvals_domain.RequestApproval(action="warrant.register", payload=terms, reason="test")
    approval = (await run(db, approvals.request_approval(request)))["approval_id"]
    return (await run(db, approvals.approve(approval, approvals_domain.Decide(reason="ok")), SECOND))["outcome"]["code"]


async def check_projection_equals_replay(db: Database, code: str) -> None:
    async with db.connection() as conn:
        position = await conn.fetchval("SELECT max(position) FROM event")
        state = await service.series_state_at(conn, code, position)
        row = await conn.fetchrow("SELECT * FROM warrant_series WHERE code = $1", code)
        holdings = {r["account_id"]: domain.Balance(available=r["available"], pledged=r["pledged"],
                                                    frozen=r["frozen"])
                    for r in await conn.fetch("SELECT * FROM holding WHERE series_code = $1", code)}
        lots = {r["lot_id"]: r["units"] for r in await conn.fetch(
            "SELECT lot_id, units FROM warrant_lot WHERE series_code = $1 AND active", code)}
        max_holders = row["max_holders"]
    assert domain.check_invariants(state, max_holders, HolderCapBasis.cumulative) == []
    assert (row["units_issued"], row["units_outstanding"], row["units_exercised"], row["units_cancelled"],
            row["units_expired"]) == (state.units_issued, state.units_outstanding, state.units_exercised,
                                      state.units_cancelled, state.units_expired)
    assert row["status"] == state.status and Decimal(row["entitlement_per_unit"]) == state.entitlement_per_unit
    assert holdings == state.balances
    assert lots == {lot_id: lot.units for lot_id, lot in state.lots.items()}
    await check_memory_equals_tables(db, code)


async def check_memory_equals_tables(db: Database, code: str) -> None:
    """What the writer remembers of a series (transfers decide on it) is what the tables say."""
    remembered = db.writer.memo.get((hot.SERIES, code))
    if remembered is None:
        return
    async with db.connection() as conn:
        fresh = await hot._load_series(conn, code)
    assert remembered.facts == fresh.facts
    assert {a: b for a, b in remembered.balances.items() if b.total} == {
        a: b for a, b in fresh.balances.items() if b.total}
    assert remembered.holders_now() == fresh.holders_now()
    assert remembered.holders_ever == fresh.holders_ever
    assert {a: remembered.sender_lots(a) for a in remembered.lots} | {a: fresh.sender_lots(a) for a in fresh.lots} \
        == {a: fresh.sender_lots(a) for a in remembered.lots} | {a: fresh.sender_lots(a) for a in fresh.lots}
    assert {i: list(v) for i, v in remembered.intervals.items()} == {i: list(v) for i, v in fresh.intervals.items()}
    async with db.connection() as conn:
        for key, known in list(db.writer.memo._data.items()):
            if key[0] == hot.ACCOUNT:
                row = await conn.fetchrow("SELECT investor_id, status FROM account WHERE account_id = $1", key[1])
                assert (known.investor_id, known.status) == (row["investor_id"], row["status"])
            elif key[0] == hot.QUALIFICATIONS:
                assert known == await party_service.qualification_statuses(conn, key[1])


command = st.one_of(
    st.tuples(st.just("transfer"), st.integers(0, HOLDERS - 1), st.integers(0, HOLDERS - 1), st.integers(1, 150)),
    st.tuples(st.sampled_from(["freeze", "thaw", "pledge", "release"]), st.integers(0, HOLDERS - 1),
              st.integers(1, 100)),
    st.tuples(st.just("exercise"), st.integers(0, HOLDERS - 1), st.integers(1, 100)),
)


def handler_for(code: str, accounts: list[str], cmd: tuple):
    kind = cmd[0]
    if kind == "transfer":
        return service.transfer(code, domain.Transfer(
            from_account=accounts[cmd[1]], to_account=accounts[cmd[2]], units=cmd[3],
            mode=domain.TransferMode.private_agreement, price_per_unit=Decimal("1"), consideration_fen=cmd[3] * 100))
    if kind == "exercise":
        return service.exercise(code, domain.Exercise(account_id=accounts[cmd[1]], units=cmd[2]))
    return service.move_balance(code, kind, accounts[cmd[1]],
                                domain.BalanceChange(units=cmd[2], document_ref="doc", reason="test"))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.lists(command, min_size=1, max_size=6), min_size=1, max_size=8))
async def test_random_and_concurrent_commands_keep_every_invariant(market, steps) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 1_000, max_holders=4)
    for batch in steps:
        # each batch is sent at once: the writer decides them one after another in one transaction
        outcomes = await asyncio.gather(*(db.writer.execute(handler_for(code, accounts, c), OPERATOR)
                                          for c in batch), return_exceptions=True)
        unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, RegistryError)]
        assert unexpected == []
        assert not any(getattr(o, "code", "") == "internal.error" for o in outcomes)
        await check_projection_equals_replay(db, code)
    async with db.connection() as conn:  # every table, cost basis and interval dates included
        report = await rebuild(conn)
    assert report.differences == []


async def test_racing_transfers_that_together_overspend_a_holding_only_the_ones_that_fit_succeed(market) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 100)
    races = [service.transfer(code, domain.Transfer(
        from_account=accounts[0], to_account=accounts[1 + i % (HOLDERS - 1)], units=15,
        mode=domain.TransferMode.private_agreement, price_per_unit=Decimal("1"), consideration_fen=1500))
        for i in range(10)]
    outcomes = await asyncio.gather(*(db.writer.execute(h, OPERATOR) for h in races), return_exceptions=True)
    succeeded = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, domain.InsufficientAvailable)]
    assert (len(succeeded), len(refused)) == (6, 4)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT available FROM holding WHERE series_code = $1 AND account_id = $2",
                                   code, accounts[0]) == 10
    await check_projection_equals_replay(db, code)


def _transfer(code: str, sender: str, receiver: str, units: int):
    return service.transfer(code, domain.Transfer(
        from_account=sender, to_account=receiver, units=units, mode=domain.TransferMode.private_agreement,
        price_per_unit=Decimal("1"), consideration_fen=units * 100))


async def _investor_of(db: Database, account_id: str) -> str:
    async with db.connection() as conn:
        return await conn.fetchval("SELECT investor_id FROM account WHERE account_id = $1", account_id)


async def test_a_transfer_decided_from_memory_sees_an_account_frozen_since(market) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 100)
    await run(db, _transfer(code, accounts[0], accounts[1], 10))  # the writer now remembers both accounts
    await run(db, party_service.freeze_account(accounts[0], parties.FreezeAccount(
        basis=parties.FreezeBasis.court_order, document_ref="（2026）津01执保1号", reason="test")))
    with pytest.raises(domain.AccountFrozen):
        await run(db, _transfer(code, accounts[0], accounts[1], 10))
    await run(db, party_service.thaw_account(accounts[0], parties.ThawAccount(document_ref="解除", reason="test")))
    await run(db, _transfer(code, accounts[0], accounts[1], 10))
    await check_projection_equals_replay(db, code)


async def test_a_transfer_decided_from_memory_sees_a_qualification_revoked_since(market) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 100)
    await run(db, _transfer(code, accounts[0], accounts[2], 10))
    receiver = await _investor_of(db, accounts[2])
    await run(db, party_service.revoke_qualification(receiver, 1, parties.RevokeQualification(
        revoked_on=TEST_TODAY, reason="evidence withdrawn")))
    with pytest.raises(domain.NotQualified):
        await run(db, _transfer(code, accounts[0], accounts[2], 10))


async def test_a_transfer_decided_from_memory_sees_units_frozen_and_a_suspension_since(market) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 100)
    await run(db, _transfer(code, accounts[0], accounts[1], 10))
    await run(db, service.move_balance(code, "freeze", accounts[0], domain.BalanceChange(
        units=85, document_ref="doc", reason="test")))
    with pytest.raises(domain.InsufficientAvailable) as refused:
        await run(db, _transfer(code, accounts[0], accounts[1], 10))
    assert refused.value.figures["available"] == 5
    await run(db, service.ipo_filed(TARGET, service.IpoFiling(filed_on=TEST_TODAY, reason="IPO filing")))
    with pytest.raises((domain.SeriesSuspended, domain.SeriesNotLive)):
        await run(db, _transfer(code, accounts[0], accounts[1], 1))
    await check_projection_equals_replay(db, code)


async def test_a_read_in_the_same_batch_sees_the_transfers_queued_before_it(market) -> None:
    """Transfers' projections are applied together, but before any later command reads."""
    db, accounts = market
    code = await new_series(db, accounts, 100)
    outcomes = await asyncio.gather(
        db.writer.execute(_transfer(code, accounts[0], accounts[1], 60), OPERATOR),
        db.writer.execute(service.move_balance(code, "freeze", accounts[0], domain.BalanceChange(
            units=50, document_ref="doc", reason="test")), OPERATOR),
        db.writer.execute(service.move_balance(code, "freeze", accounts[0], domain.BalanceChange(
            units=40, document_ref="doc", reason="test")), OPERATOR),
        return_exceptions=True)
    assert not isinstance(outcomes[0], BaseException)
    assert isinstance(outcomes[1], domain.InsufficientUnits)  # only 40 were left after the transfer
    assert not isinstance(outcomes[2], BaseException)
    await check_projection_equals_replay(db, code)


async def test_another_writer_on_the_same_database_is_caught_up_through_its_events(market, dsns, settings) -> None:
    db, accounts = market
    code = await new_series(db, accounts, 100)
    await run(db, _transfer(code, accounts[0], accounts[1], 10))
    relaxed = msgspec.structs.replace(settings, holding_interval_trading_days=0)
    async with Database(dsns.app, relaxed) as other:
        pin_clock(other)
        await run(other, _transfer(code, accounts[0], accounts[1], 85))
    caught_up = db.writer.caught_up
    with pytest.raises(domain.InsufficientAvailable) as refused:
        await run(db, _transfer(code, accounts[0], accounts[1], 10))
    assert refused.value.figures["available"] == 5
    # the other writer's transfer was read and applied to the memory, not a reason to forget it
    assert db.writer.caught_up > caught_up and db.writer.memo.get((hot.SERIES, code)) is not None
    await run(db, _transfer(code, accounts[0], accounts[1], 5))
    await check_projection_equals_replay(db, code)


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.booleans(), st.lists(command, min_size=1, max_size=4)), min_size=1, max_size=8))
async def test_two_writers_taking_turns_on_one_database_remember_what_the_tables_say(market, dsns, settings,
                                                                                       steps) -> None:
    """Two service instances share a database: each brings its memory forward through the other's
    events, and after every turn both memories equal a fresh load from the tables."""
    db, accounts = market
    code = await new_series(db, accounts, 1_000, max_holders=4)
    relaxed = msgspec.structs.replace(settings, holding_interval_trading_days=0)
    async with Database(dsns.app, relaxed) as other:
        pin_clock(other)
        for use_other, batch in steps:
            writer = other if use_other else db
            outcomes = await asyncio.gather(*(writer.writer.execute(handler_for(code, accounts, c), OPERATOR)
                                              for c in batch), return_exceptions=True)
            assert [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, RegistryError)] == []
            for each in (db, other):
                await each.writer.execute(_noop, OPERATOR)  # a batch: it catches up with the other's events
                await check_memory_equals_tables(each, code)
    await check_projection_equals_replay(db, code)


async def _noop(ctx) -> dict:
    return {}


@pytest.mark.parametrize("together", [False, True], ids=["one by one", "in one batch"])
async def test_cost_basis_moves_by_proportion_out_and_by_consideration_in(market, together) -> None:
    """持仓成本: a sale takes its share of the sender's cost; a purchase adds what the buyer paid."""
    db, accounts = market
    terms = {"target_uscc": TARGET, "name": f"成本认股权{next(_series)}", "underlying": "shares",
             "entitlement_per_unit": "1", "exercise_price_per_unit": "3.00",
             "valid_from": (TEST_TODAY - dt.timedelta(days=1)).isoformat(),
             "valid_until": (TEST_TODAY + dt.timedelta(days=400)).isoformat(), "exercise_method": "capital_increase",
             "transfer_modes": ["private_agreement"],
             "allocations": [{"account_id": accounts[0], "units": 1000, "subscription_price_per_unit": "2.00"}]}
    approval = (await run(db, approvals.request_approval(approvals_domain.RequestApproval(
        action="warrant.register", payload=terms, reason="test"))))["approval_id"]
    code = (await run(db, approvals.approve(approval, approvals_domain.Decide(reason="ok")), SECOND))["outcome"]["code"]
    moves = [(0, 1, 100, "1", 10_000), (1, 2, 40, "1.25", 5_000), (1, 3, 7, "0", 0), (0, 3, 900, "0.00001111", 1)]
    handlers = [service.transfer(code, domain.Transfer(
        from_account=accounts[a], to_account=accounts[b], units=units, mode=domain.TransferMode.private_agreement,
        price_per_unit=Decimal(price), consideration_fen=paid)) for a, b, units, price, paid in moves]
    if together:
        await asyncio.gather(*(db.writer.execute(h, OPERATOR, savepoint=False) for h in handlers))
    else:
        for h in handlers:
            await db.writer.execute(h, OPERATOR, savepoint=False)
    async with db.connection() as conn:
        costs = {r["account_id"]: (r["available"], r["cost_fen"]) for r in await conn.fetch(
            "SELECT account_id, available, cost_fen FROM holding WHERE series_code = $1", code)}
    assert costs == {
        accounts[0]: (0, 0),                    # 200,000 − 20,000 (100 of 1,000) − 180,000 (900 of 900)
        accounts[1]: (53, 5_300),               # 10,000 − 4,000 (40 of 100) − 700 (7 of 60)
        accounts[2]: (40, 5_000),
        accounts[3]: (907, 1),
    }
    async with db.connection() as conn:
        assert (await rebuild(conn)).differences == []
