"""`registry demo`: a small, realistic market, loaded through the same commands users run.

Every command carries a fixed idempotency key, so running the demo again replays the original
answers and appends nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import msgspec

from registry.approvals import domain as approvals
from registry.approvals import service as approval_service
from registry.calendar.domain import CalendarEdit, TradingCalendar, weekdays_except
from registry.calendar.service import ensure_seeded, publish_weekdays_through
from registry.clock import business_date, market_moment
from registry.db.database import Database
from registry.eventlog.model import EventMeta
from registry.eventlog.writer import CommandResult, Handler, Idempotency
from registry.parties import domain as parties
from registry.parties import service as party_service
from registry.parties.qualification import QualificationCategory
from registry.parties.uscc import uscc_check_character
from registry.settings import Settings

SCOPE = "operator:demo-loader"


def _uscc(division: str, body: str) -> str:
    first17 = f"91{division}{body}"
    return first17 + uscc_check_character(first17)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


ENTERPRISES = [
    ("120116", "MA05ABC01", "天津海河智芯科技有限公司", "llc", 3_000_000_000, "集成电路设计", "little_giant"),
    ("120116", "MA05ABC02", "天津滨海生物医药股份有限公司", "joint_stock", 8_000_000_000, "生物医药", "provincial"),
    ("120104", "MA05ABC03", "天津南开数智软件有限公司", "llc", 500_000_000, "工业软件", "innovative_sme"),
    ("120116", "MA05ABC04", "天津津沽新能源材料股份有限公司", "joint_stock", 12_000_000_000, "新能源材料", "provincial"),
    ("120111", "MA05ABC05", "天津西青精密制造有限公司", "llc", 200_000_000, "高端装备", "none"),
]

INVESTORS = [
    ("institution", "天津银行股份有限公司", QualificationCategory.FINANCIAL_INSTITUTION),
    ("institution", "渤海产业投资基金管理有限公司", QualificationCategory.INSTITUTION_NET_ASSETS),
    ("natural_person", "张伟", QualificationCategory.NATURAL_PERSON),
    ("natural_person", "李娜", QualificationCategory.NATURAL_PERSON),
    ("natural_person", "王芳", None),  # registered, not (yet) qualified
    ("institution", "海河证券资管名义持有账户", QualificationCategory.FINANCIAL_INSTITUTION),
]


def _holiday_notice(year: int) -> CalendarEdit:
    """The year's trading days as a holiday notice would publish them: 2027's as announced, other
    years with the fixed-date holidays only (demo data, for an operator to review)."""
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    if year == 2027:
        closed = [dt.date(2027, 1, 1), *(dt.date(2027, 2, d) for d in range(8, 13)), dt.date(2027, 4, 5),
                  *(dt.date(2027, 5, d) for d in range(3, 6)), dt.date(2027, 6, 9), dt.date(2027, 9, 15),
                  dt.date(2027, 10, 1), *(dt.date(2027, 10, d) for d in range(4, 8))]
    else:
        closed = [first, *(dt.date(year, 5, d) for d in range(1, 6)), *(dt.date(year, 10, d) for d in range(1, 8))]
    return CalendarEdit(first_day=first, last_day=last, trading_days=weekdays_except(first, last, closed),
                        reason=f"{year}年休市安排（演示数据，待复核）")


class _Loader:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.replayed = 0
        self.applied = 0
        self.n = 0

    async def run(self, command: str, body: Any, handler: Handler, actor: str = "demo-loader") -> CommandResult:
        self.n += 1
        key = f"demo-{self.n:03d}-{command}"
        meta = EventMeta(actor=actor, role="operator", command=command, idempotency_key=key, reason="demo market")
        result = await self.db.writer.execute(
            handler, meta, idempotency=Idempotency.of(f"operator:{actor}", key, command,
                                                      msgspec.to_builtins(body, order="sorted")))
        if result.replayed:
            self.replayed += 1
        else:
            self.applied += 1
        return result


async def _load_warrants(loader: _Loader, calendar: TradingCalendar, today: dt.date,
                         accounts: list[str]) -> list[str]:
    """A bank-loan warrant series issued ten trading days ago: pledged, transferred, partly exercised."""
    from registry.warrants import service as warrant_service
    from registry.warrants.domain import BalanceChange, Exercise, Transfer, TransferMode

    target = _uscc(ENTERPRISES[1][0], ENTERPRISES[1][1])
    shares = warrant_service.RegisterShares(reason="挂牌时股东名册", holders=[
        warrant_service.ShareHolding(holder_id="founder-1", holder_name="创始人 赵明", amount=Decimal("60000000")),
        warrant_service.ShareHolding(holder_id="angel-1", holder_name="滨海天使投资合伙企业", amount=Decimal("20000000"))])
    await loader.run("RegisterShares", {"uscc": target, **msgspec.to_builtins(shares)},
                     warrant_service.register_shares(target, shares))
    issued_on = calendar.add_trading_days(today, -10)
    terms = {"target_uscc": target, "name": f"滨海生物{issued_on.year}年认股权（天津银行科创贷配套）",
             "underlying": "shares", "entitlement_per_unit": "1", "exercise_price_per_unit": "6.80", "valid_from": issued_on.isoformat(),
             "valid_until": (issued_on + dt.timedelta(days=3 * 365)).isoformat(),
             "exercise_method": "capital_increase", "transfer_modes": ["private_agreement", "disclosed_agreement"],
             "anti_dilution": "broad_based_weighted_average", "max_holders": 200,
             "documents": [{"name": "认股权协议", "sha256": _digest("认股权协议")},
                           {"name": "贷款合同", "sha256": _digest("贷款合同")}],
             "allocations": [{"account_id": accounts[0], "units": 800_000}, {"account_id": accounts[1], "units": 200_000}]}
    request = approvals.RequestApproval(action="warrant.register", payload=terms, reason="银行认股权贷款配套发行")
    with loader.db.writer.clock_at(market_moment(issued_on)):  # the series was issued ten trading days ago
        approval = (await loader.run("RequestApproval", request, approval_service.request_approval(request),
                                     actor="op-zhang")).response["approval_id"]
        decide = approvals.Decide(reason="材料齐备")
        code = (await loader.run("ApproveRequest", {"approval_id": approval}, approval_service.approve(
            approval, decide), actor="op-li")).response["outcome"]["code"]
    pledge = BalanceChange(units=300_000, document_ref=f"质押合同({issued_on.year})津银质字第18号", reason="科创贷质押")
    await loader.run("PledgeUnits", {"code": code, **msgspec.to_builtins(pledge)},
                     warrant_service.move_balance(code, "pledge", accounts[0], pledge))
    transfer = Transfer(from_account=accounts[1], to_account=accounts[2], units=50_000,
                        mode=TransferMode.private_agreement, price_per_unit=Decimal("1.20"), consideration_fen=6_000_000)
    await loader.run("TransferWarrants", {"code": code, **msgspec.to_builtins(transfer)},
                     warrant_service.transfer(code, transfer))
    exercise = Exercise(account_id=accounts[2], units=10_000)
    exercise_id = (await loader.run("ExerciseWarrants", {"code": code, **msgspec.to_builtins(exercise)},
                                    warrant_service.exercise(code, exercise))).response["exercise_id"]
    await loader.run("ConfirmExercise", {"code": code, "exercise_id": exercise_id},
                     warrant_service.confirm_exercise(code, exercise_id))
    return [code]


async def load_demo(settings: Settings, dsn: str, *, progress: bool = False) -> str:
    from tqdm import tqdm

    async with Database(dsn, settings) as db:
        await ensure_seeded(db.writer)  # type: ignore[arg-type]
        async with db.primary() as conn:
            done = await conn.fetchval("SELECT count(*) FROM idempotency_key WHERE key LIKE 'demo-%-ConfirmExercise'")
        if done:
            # Loaded on an earlier day: its dated commands would differ today, so nothing is sent again.
            return "demo market: already loaded, nothing changed"
        loader = _Loader(db)
        today = business_date(db.writer.clock())  # the market's clock: the demo stands on any date
        steps = tqdm(total=len(ENTERPRISES) + len(INVESTORS) + 4, desc="demo market", unit="step",
                     disable=not progress)
        for division, body, name, form, capital, industry, level in ENTERPRISES:
            cmd = parties.RegisterEnterprise(
                uscc=_uscc(division, body), name=name, legal_form=parties.LegalForm(form),
                registered_capital_fen=capital, industry=industry, specialised_level=parties.SpecialisedLevel(level))
            await loader.run("RegisterEnterprise", cmd, party_service.register_enterprise(
                cmd, province_prefix=settings.province_prefix))
            steps.update()

        accounts: list[str] = []
        investors: list[str] = []
        for kind, name, category in INVESTORS:
            cmd_i = parties.RegisterInvestor(kind=parties.InvestorKind(kind), name=name,
                                             identity_document_digest=_digest(f"证件:{name}"))
            investor_id = (await loader.run("RegisterInvestor", cmd_i,
                                            party_service.register_investor(cmd_i))).response["investor_id"]
            investors.append(investor_id)
            if category is not None:
                figures = {
                    QualificationCategory.NATURAL_PERSON: parties.QualificationFigures(
                        financial_assets_fen=120_000_000, investment_experience_years=5),
                    QualificationCategory.INSTITUTION_NET_ASSETS: parties.QualificationFigures(
                        net_assets_fen=50_000_000_000),
                }.get(category)
                grant = parties.GrantQualification(category=category, evidence_digest=_digest(f"资产证明:{name}"),
                                                   valid_from=dt.date(today.year - 1, 1, 1),
                                                   valid_until=dt.date(today.year + 1, 12, 31),
                                                   figures=figures)
                await loader.run("GrantQualification", grant, party_service.grant_qualification(
                    investor_id, grant, settings.qualification_thresholds))
            steps.update()

        for investor_id in investors[:5]:
            cmd_a = parties.OpenAccount()
            result = await loader.run("OpenAccount", {"investor_id": investor_id},
                                      party_service.open_account(investor_id, cmd_a))
            accounts.append(result.response["account_id"])
        nominee = parties.OpenAccount(kind=parties.AccountKind.nominee, beneficial_owners=investors[2:4])
        await loader.run("OpenAccount", {"investor_id": investors[5], "nominee": True},
                         party_service.open_account(investors[5], nominee))
        steps.update()

        freeze = parties.FreezeAccount(basis=parties.FreezeBasis.court_order, document_ref=f"({today.year})津0116执保88号",
                                       reason="财产保全")
        await loader.run("FreezeAccount", {"account_id": accounts[3], **msgspec.to_builtins(freeze)},
                         party_service.freeze_account(accounts[3], freeze))
        steps.update()

        # On a date the known calendar does not reach, the demo publishes weekdays (a real market
        # publishes the holiday notice); the year after the last known day is left in the queue.
        calendar = await publish_weekdays_through(
            db, today + dt.timedelta(days=30), reason="演示数据",
            requester=EventMeta(actor="op-zhang", role="operator", command="RequestApproval"),
            approver=EventMeta(actor="op-li", role="operator", command="ApproveRequest"))
        edit = _holiday_notice(calendar.last_day.year + 1)
        request = approvals.RequestApproval(action="calendar.publish", payload=msgspec.to_builtins(edit),
                                            reason=f"发布{edit.first_day.year}年交易日历")
        await loader.run("RequestApproval", request, approval_service.request_approval(request), actor="op-zhang")
        steps.update()

        series = await _load_warrants(loader, calendar, today, accounts)
        from registry.listing.service import load_listing_demo

        listing = await load_listing_demo(db, settings, usccs=[_uscc(d, b) for d, b, *_ in ENTERPRISES])
        steps.close()
    return (f"demo market: {loader.applied} commands applied, {loader.replayed} already present "
            f"({len(ENTERPRISES)} enterprises, {len(INVESTORS)} investors, {len(accounts) + 1} accounts, "
            f"1 calendar publication awaiting a second operator, warrant series {', '.join(series)}); "
            f"listing pipeline: {listing}")
