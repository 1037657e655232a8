"""`registry demo`: a small, realistic market, loaded through the same commands users run.

Every command carries a fixed idempotency key, so running the demo again replays the original
answers and appends nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import msgspec

from registry.approvals import domain as approvals
from registry.approvals import service as approval_service
from registry.calendar.domain import CalendarEdit, weekdays_except
from registry.calendar.service import ensure_seeded
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


async def load_demo(settings: Settings, dsn: str, *, progress: bool = False) -> str:
    from tqdm import tqdm

    async with Database(dsn, settings) as db:
        await ensure_seeded(db.writer)  # type: ignore[arg-type]
        loader = _Loader(db)
        steps = tqdm(total=len(ENTERPRISES) + len(INVESTORS) + 3, desc="demo market", unit="step",
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
                                                   valid_from=dt.date(2026, 1, 1), valid_until=dt.date(2027, 12, 31),
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

        freeze = parties.FreezeAccount(basis=parties.FreezeBasis.court_order, document_ref="(2026)津0116执保88号",
                                       reason="财产保全")
        await loader.run("FreezeAccount", {"account_id": accounts[3], **msgspec.to_builtins(freeze)},
                         party_service.freeze_account(accounts[3], freeze))
        steps.update()

        days = weekdays_except(dt.date(2027, 1, 1), dt.date(2027, 12, 31), [
            dt.date(2027, 1, 1), *(dt.date(2027, 2, d) for d in range(8, 13)), dt.date(2027, 4, 5),
            *(dt.date(2027, 5, d) for d in range(3, 6)), dt.date(2027, 6, 9), dt.date(2027, 9, 15),
            dt.date(2027, 10, 1), *(dt.date(2027, 10, d) for d in range(4, 8))])
        edit = CalendarEdit(first_day=dt.date(2027, 1, 1), last_day=dt.date(2027, 12, 31), trading_days=days,
                            reason="2027年休市安排（演示数据，待复核）")
        request = approvals.RequestApproval(action="calendar.publish", payload=msgspec.to_builtins(edit),
                                            reason="发布2027年交易日历")
        await loader.run("RequestApproval", request, approval_service.request_approval(request), actor="op-zhang")
        steps.update()
        steps.close()
    return (f"demo market: {loader.applied} commands applied, {loader.replayed} already present "
            f"({len(ENTERPRISES)} enterprises, {len(INVESTORS)} investors, {len(accounts) + 1} accounts, "
            "1 calendar publication awaiting a second operator)")
