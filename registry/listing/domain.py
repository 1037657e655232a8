"""The listing pipeline, pure: stages and the allowed moves, filed facts, rulebooks and their evaluation,
security codes. No I/O here: the service loads state, calls these rules and appends what they decide.

Numbers are exact. Money is integer fen, counts are integers, ratios are Decimal (strings in JSON).
Evaluations compare with exact fractions and only round for display (6 decimal places, towards
minus infinity, so a displayed figure never looks better than the real one).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType
from typing import Annotated

import msgspec

from registry.errors import Conflict, RuleViolation
from registry.fields import MAX_FEN, RATIO_PLACES, Digest, Identifier, Position, Reference, is_canonical_decimal
from registry.parties.domain import SpecialisedLevel

# -- stages and moves -----------------------------------------------------------------------


class Stage(StrEnum):
    """Where an enterprise stands in the pipeline, from application to the BSE."""

    applied = "applied"
    incubation = "incubation"
    standardisation = "standardisation"
    cultivation = "cultivation"
    listing_reserve = "listing_reserve"
    neeq_application = "neeq_application"
    neeq_base = "neeq_base"
    neeq_innovation = "neeq_innovation"
    bse_application = "bse_application"
    bse_listed = "bse_listed"
    exited = "exited"
    rejected = "rejected"
    withdrawn = "withdrawn"
    suspended = "suspended"


STAGE_NAMES: Mapping[Stage, str] = MappingProxyType({
    Stage.applied: "挂牌申请",
    Stage.incubation: "孵化层",
    Stage.standardisation: "规范层",
    Stage.cultivation: "培育层",
    Stage.listing_reserve: "上市后备库",
    Stage.neeq_application: "新三板挂牌申请",
    Stage.neeq_base: "新三板基础层",
    Stage.neeq_innovation: "新三板创新层",
    Stage.bse_application: "北交所上市申请",
    Stage.bse_listed: "北交所上市",
    Stage.exited: "退板",
    Stage.rejected: "不予挂牌",
    Stage.withdrawn: "撤回申请",
    Stage.suspended: "暂停挂牌",
})

_S = Stage
# Stages in which an enterprise is (still) listed somewhere and can be suspended or exit.
_LISTED = (_S.incubation, _S.standardisation, _S.cultivation, _S.listing_reserve,
           _S.neeq_base, _S.neeq_innovation, _S.bse_listed)

ALLOWED_MOVES: dict[Stage, frozenset[Stage]] = {
    # Admission: straight into the tier the enterprise qualifies for, or refused / withdrawn.
    _S.applied: frozenset({_S.incubation, _S.standardisation, _S.cultivation, _S.rejected, _S.withdrawn}),
    # The market's own tiers: one step up, one step down (降层), suspension, exit.
    _S.incubation: frozenset({_S.standardisation, _S.suspended, _S.exited}),
    _S.standardisation: frozenset({_S.cultivation, _S.incubation, _S.suspended, _S.exited}),
    _S.cultivation: frozenset({_S.listing_reserve, _S.standardisation, _S.suspended, _S.exited}),
    _S.listing_reserve: frozenset({_S.neeq_application, _S.cultivation, _S.suspended, _S.exited}),
    # An enterprise stays in the market while NEEQ reviews it: a refused or withdrawn NEEQ
    # application returns it to the reserve; NEEQ may list it straight into the innovation tier.
    _S.neeq_application: frozenset({_S.neeq_base, _S.neeq_innovation, _S.listing_reserve}),
    _S.neeq_base: frozenset({_S.neeq_innovation, _S.suspended, _S.exited}),
    _S.neeq_innovation: frozenset({_S.bse_application, _S.neeq_base, _S.suspended, _S.exited}),
    # A refused or withdrawn BSE application leaves the company where it was: NEEQ innovation tier.
    _S.bse_application: frozenset({_S.bse_listed, _S.neeq_innovation}),
    _S.bse_listed: frozenset({_S.suspended, _S.exited}),
    # Out of the pipeline: a new application starts again.
    _S.exited: frozenset({_S.applied}),
    _S.rejected: frozenset({_S.applied}),
    _S.withdrawn: frozenset({_S.applied}),
    # Resumption returns to the stage held before suspension (see check_move), or the enterprise exits.
    _S.suspended: frozenset({*_LISTED, _S.exited}),
}

LADDER: tuple[Stage, ...] = (
    _S.applied, _S.incubation, _S.standardisation, _S.cultivation, _S.listing_reserve,
    _S.neeq_application, _S.neeq_base, _S.neeq_innovation, _S.bse_application, _S.bse_listed,
)
"""The pipeline in order; a forward move goes up this ladder."""


class MoveNotAllowed(RuleViolation):
    """The move is not in the table of allowed moves (or a suspension is not resumed where it was)."""

    code = "listing.move_not_allowed"
    title = "This stage change is not allowed"


class StageChangedSinceRequest(Conflict):
    """A move is approved against the stage it was requested from; if the enterprise moved since, it is stale."""

    code = "listing.stage_changed"
    title = "The enterprise's stage changed since the move was requested"


def check_stage_unchanged(uscc: str, requested_from: Stage | None, now: Stage | None) -> None:
    if now != requested_from:
        raise StageChangedSinceRequest(
            f"{uscc} was {requested_from or 'in no stage'} when the move was requested and is now "
            f"{now or 'in no stage'}; request the move again", uscc=uscc,
            requested_from=None if requested_from is None else str(requested_from),
            now=None if now is None else str(now))


class ReasonRequired(RuleViolation):
    code = "listing.reason_required"
    title = "A reason is required"


def require_reason(reason: str, ask: str) -> None:
    """Moves and rulebook versions are recorded with why they happen; `ask` says what to explain."""
    if not reason.strip():
        raise ReasonRequired(ask, field="reason")


def allowed_moves(from_stage: Stage, *, suspended_from: Stage | None = None) -> list[Stage]:
    """The stages reachable from `from_stage`, sorted; a suspended enterprise may only resume where it was."""
    allowed = ALLOWED_MOVES[Stage(from_stage)]
    if from_stage is Stage.suspended and suspended_from is not None:
        allowed = frozenset(allowed & {Stage(suspended_from), Stage.exited})
    return sorted(allowed, key=list(Stage).index)


def check_move(from_stage: Stage, to_stage: Stage, *, suspended_from: Stage | None = None) -> None:
    """移板/转层: only the moves in ALLOWED_MOVES; anything else is refused, naming the allowed moves.

    `suspended_from` is the stage held before a suspension (暂停挂牌): resumption goes back to it.
    """
    allowed = allowed_moves(from_stage, suspended_from=suspended_from)
    if Stage(to_stage) not in allowed:
        raise MoveNotAllowed(
            f"{from_stage} ({STAGE_NAMES[Stage(from_stage)]}) cannot move to {to_stage} "
            f"({STAGE_NAMES[Stage(to_stage)]}); allowed: {', '.join(allowed) or 'none'}",
            from_stage=str(from_stage), to_stage=str(to_stage), allowed=[str(s) for s in allowed],
        )


def forward_moves(stage: Stage) -> list[Stage]:
    """The allowed moves that go up the ladder: the enterprise's possible next steps."""
    if stage not in LADDER:
        return []
    rank = LADDER.index(stage)
    return [s for s in allowed_moves(stage) if s in LADDER and LADDER.index(s) > rank]


class Move(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    from_stage: Stage
    to_stage: Stage

    @property
    def key(self) -> str:
        """How rulebooks name the move: `from->to`."""
        return f"{self.from_stage}->{self.to_stage}"

    @classmethod
    def parse(cls, key: str) -> Move:
        """`incubation->standardisation` → Move; ValueError if either side is not a stage."""
        left, sep, right = key.partition("->")
        if not sep:
            raise ValueError(f"a move is written from->to, got {key!r}")
        return cls(from_stage=Stage(left.strip()), to_stage=Stage(right.strip()))


# -- facts ----------------------------------------------------------------------------------


class FactName(StrEnum):
    """What an enterprise or operator files. Yearly facts are filed per fiscal year (FY2024)."""

    # money, fen, per fiscal year
    revenue = "revenue"
    net_profit = "net_profit"
    operating_cash_flow = "operating_cash_flow"
    rd_spend = "rd_spend"
    net_assets = "net_assets"
    # money, fen, as of a date
    share_capital = "share_capital"
    expected_market_value = "expected_market_value"
    average_market_value = "average_market_value"
    placement_market_value = "placement_market_value"
    equity_financing = "equity_financing"
    # ratios (Decimal)
    weighted_roe = "weighted_roe"
    public_float_ratio = "public_float_ratio"
    # counts
    invention_patents = "invention_patents"
    shareholder_count = "shareholder_count"
    qualified_investor_count = "qualified_investor_count"
    months_listed_on_neeq = "months_listed_on_neeq"
    months_in_neeq_innovation_tier = "months_in_neeq_innovation_tier"
    operating_years = "operating_years"
    market_maker_count = "market_maker_count"
    call_auction_matched_shares = "call_auction_matched_shares"
    public_offering_shares = "public_offering_shares"
    offering_subscriber_count = "offering_subscriber_count"
    penalties = "penalties"
    # yes / no
    joint_stock_converted = "joint_stock_converted"
    sponsor_broker_engaged = "sponsor_broker_engaged"
    governance_rules_adopted = "governance_rules_adopted"
    # words from a vocabulary
    audit_opinion = "audit_opinion"
    specialised_level = "specialised_level"


class FactKind(StrEnum):
    money = "money"  # integer fen
    ratio = "ratio"  # Decimal, 0.08 = 8%
    count = "count"  # integer ≥ 0
    flag = "flag"    # bool
    text = "text"    # one word of the fact's vocabulary


class AuditOpinion(StrEnum):
    standard_unqualified = "standard_unqualified"            # 标准无保留意见
    unqualified_with_emphasis = "unqualified_with_emphasis"  # 带强调事项段的无保留意见
    qualified = "qualified"                                  # 保留意见
    adverse = "adverse"                                      # 否定意见
    disclaimer = "disclaimer"                                # 无法表示意见


class FactSpec(msgspec.Struct, kw_only=True, frozen=True):
    kind: FactKind
    label: str
    yearly: bool = False
    signed: bool = False
    vocabulary: tuple[str, ...] = ()


def _spec(kind: FactKind, label: str, *, yearly: bool = False, signed: bool = False,
          vocabulary: tuple[str, ...] = ()) -> FactSpec:
    return FactSpec(kind=kind, label=label, yearly=yearly, signed=signed, vocabulary=vocabulary)


_K = FactKind
FACTS: Mapping[FactName, FactSpec] = MappingProxyType({
    FactName.revenue: _spec(_K.money, "营业收入", yearly=True),
    FactName.net_profit: _spec(_K.money, "净利润(扣非前后孰低)", yearly=True, signed=True),
    FactName.operating_cash_flow: _spec(_K.money, "经营活动产生的现金流量净额", yearly=True, signed=True),
    FactName.rd_spend: _spec(_K.money, "研发投入", yearly=True),
    FactName.net_assets: _spec(_K.money, "净资产", yearly=True, signed=True),
    FactName.share_capital: _spec(_K.money, "股本总额"),
    FactName.expected_market_value: _spec(_K.money, "预计市值"),
    FactName.average_market_value: _spec(_K.money, "最近有成交的60个交易日平均市值"),
    FactName.placement_market_value: _spec(_K.money, "按定向发行价格计算的市值(窗口内最低一次)"),
    FactName.equity_financing: _spec(_K.money, "最近24个月股权融资总额"),
    FactName.weighted_roe: _spec(_K.ratio, "加权平均净资产收益率", yearly=True, signed=True),
    FactName.public_float_ratio: _spec(_K.ratio, "公众股东持股比例"),
    FactName.invention_patents: _spec(_K.count, "发明专利数"),
    FactName.shareholder_count: _spec(_K.count, "股东人数"),
    FactName.qualified_investor_count: _spec(_K.count, "合格投资者人数"),
    FactName.months_listed_on_neeq: _spec(_K.count, "在新三板累计挂牌月数"),
    FactName.months_in_neeq_innovation_tier: _spec(_K.count, "在新三板创新层连续挂牌月数"),
    FactName.operating_years: _spec(_K.count, "持续经营完整会计年度数"),
    FactName.market_maker_count: _spec(_K.count, "做市商家数"),
    FactName.call_auction_matched_shares: _spec(_K.count, "集合竞价成交股数"),
    FactName.public_offering_shares: _spec(_K.count, "公开发行股数"),
    FactName.offering_subscriber_count: _spec(_K.count, "发行对象人数"),
    FactName.penalties: _spec(_K.count, "重大违法违规及处罚次数"),
    FactName.joint_stock_converted: _spec(_K.flag, "已完成股份制改造(股改)"),
    FactName.sponsor_broker_engaged: _spec(_K.flag, "已聘请主办券商/保荐机构"),
    FactName.governance_rules_adopted: _spec(_K.flag, "公司治理制度健全"),
    FactName.audit_opinion: _spec(_K.text, "审计意见", vocabulary=tuple(AuditOpinion)),
    FactName.specialised_level: _spec(_K.text, "专精特新等级", vocabulary=tuple(SpecialisedLevel)),
})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_FY = re.compile(r"FY(\d{4})")
_DAY = r"\d{4}-\d{2}-\d{2}"
_RANGE = re.compile(rf"({_DAY})\.\.({_DAY})")


class InvalidFact(RuleViolation, ValueError):
    """A filed fact that breaks its shape: wrong type for the fact, bad period or digest.

    A ValueError too, so that msgspec reports it as a ValidationError when decoding.
    """

    code = "listing.fact_invalid"
    title = "The filed fact is not valid"


class FiscalPeriod(msgspec.Struct, kw_only=True, frozen=True):
    """`FY2025` (the calendar year: China's fiscal year), `2025-01-01..2025-06-30`, or an as-of date."""

    text: str
    start: dt.date
    end: dt.date
    fiscal_year: int | None = None


def parse_period(text: str) -> FiscalPeriod:
    if m := _FY.fullmatch(text):
        year = int(m.group(1))
        return FiscalPeriod(text=text, start=dt.date(year, 1, 1), end=dt.date(year, 12, 31), fiscal_year=year)
    try:
        if m := _RANGE.fullmatch(text):
            start, end = dt.date.fromisoformat(m.group(1)), dt.date.fromisoformat(m.group(2))
            if start > end:
                raise InvalidFact(f"period {text!r} ends before it starts", fiscal_period=text)
            return FiscalPeriod(text=text, start=start, end=end)
        if re.fullmatch(_DAY, text):
            day = dt.date.fromisoformat(text)
            return FiscalPeriod(text=text, start=day, end=day)
    except ValueError as e:
        if isinstance(e, InvalidFact):
            raise
        raise InvalidFact(f"period {text!r} is not a real date", fiscal_period=text) from None
    raise InvalidFact(f"period {text!r} is not FY2025, 2025-01-01..2025-06-30 or 2025-06-30",
                      fiscal_period=text)


def fiscal_year_period(year: int) -> str:
    return f"FY{year}"


def _value_problems(name: FactName, value: object) -> list[str]:
    spec = FACTS[name]
    if spec.kind in (FactKind.money, FactKind.count):
        if type(value) is not int:
            return [f"{name} is an integer ({'fen' if spec.kind is FactKind.money else 'count'}), got {value!r}"]
        if value < 0 and not spec.signed:
            return [f"{name} cannot be negative, got {value}"]
    elif spec.kind is FactKind.ratio:
        if not isinstance(value, str):
            return [f"{name} is a decimal string such as \"0.08\", got {value!r}"]
        try:
            number = Decimal(value)
        except InvalidOperation:
            return [f"{name} is a decimal string such as \"0.08\", got {value!r}"]
        if not number.is_finite():
            return [f"{name} must be finite, got {value!r}"]
        if number < 0 and not spec.signed:
            return [f"{name} cannot be negative, got {value}"]
    elif spec.kind is FactKind.flag:
        if type(value) is not bool:
            return [f"{name} is true or false, got {value!r}"]
    elif value not in spec.vocabulary:
        return [f"{name} is one of {', '.join(spec.vocabulary)}, got {value!r}"]
    return []


def _fact_problems(name: FactName, value: object, fiscal_period: str, digest: str) -> list[str]:
    problems = _value_problems(name, value)
    try:
        parse_period(fiscal_period)
    except InvalidFact as e:
        problems.append(e.detail)
    if not _SHA256_HEX.fullmatch(digest):
        problems.append("source_document_digest is a SHA-256 in 64 lowercase hex digits")
    return problems


class FileFact(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """File one fact about an enterprise. A correction is a new filing for the same fact and period."""

    name: FactName
    value: Annotated[int, msgspec.Meta(ge=-MAX_FEN, le=MAX_FEN)] | bool | Reference
    """Money in fen and counts as integers (at most 10^18 either way); ratios as canonical decimal strings
    ("0.08", at most 8 places); flags as booleans; words from the fact's vocabulary."""
    fiscal_period: Identifier
    source_document_digest: Digest
    corrects: Position | None = None
    """The position of the filing this one corrects, if any (for the record: the latest filing wins anyway).
    A log position, so a PostgreSQL bigint: a larger number is a malformed request."""

    def __post_init__(self) -> None:
        problems = _fact_problems(self.name, self.value, self.fiscal_period, self.source_document_digest)
        if (FACTS[self.name].kind is FactKind.ratio and isinstance(self.value, str) and not problems
                and not is_canonical_decimal(self.value, RATIO_PLACES)):
            problems.append(f"{self.name} is written as ASCII digits with at most {RATIO_PLACES} places, "
                            f"e.g. \"0.08\", got {self.value!r}")
        if problems:
            raise InvalidFact("; ".join(problems), fact=str(self.name), problems=problems)


class Fact(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A filed fact as recorded: never edited; a later filing for the same fact and period supersedes it."""

    name: FactName
    value: int | bool | str
    fiscal_period: str
    source_document_digest: str
    position: int
    """Where the filing sits in the event log: the order of filings."""
    filed_on: dt.date
    corrects: int | None = None

    def __post_init__(self) -> None:
        if problems := _fact_problems(self.name, self.value, self.fiscal_period, self.source_document_digest):
            raise InvalidFact("; ".join(problems), fact=str(self.name), problems=problems)

    @classmethod
    def recorded(cls, filing: FileFact, *, position: int, filed_on: dt.date) -> Fact:
        return cls(name=filing.name, value=filing.value, fiscal_period=filing.fiscal_period,
                   source_document_digest=filing.source_document_digest, position=position,
                   filed_on=filed_on, corrects=filing.corrects)

    @property
    def period(self) -> FiscalPeriod:
        return parse_period(self.fiscal_period)


class FactSheet(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Every filing about one enterprise, corrections included."""

    facts: tuple[Fact, ...] = ()

    def filed_by(self, day: dt.date) -> FactSheet:
        """What was known on `day`: filings made on or before it."""
        return FactSheet(facts=tuple(f for f in self.facts if f.filed_on <= day))

    def history(self, name: FactName, period: str | None = None) -> tuple[Fact, ...]:
        """Every filing of a fact (for one period, if given), in filing order."""
        wanted = period_key(period)
        return tuple(sorted((f for f in self.facts if f.name == name
                             and (wanted is None or period_key(f.fiscal_period) == wanted)),
                            key=lambda f: f.position))

    def latest(self, name: FactName, period: str | None = None) -> Fact | None:
        """The filing in force: for the given period, or for the most recent period filed; the
        latest filing wins, so a correction supersedes what it corrects."""
        filings = self.history(name, period)
        if not filings:
            return None
        return max(filings, key=lambda f: (f.period.end, f.position))

    def latest_fiscal_year(self, on_date: dt.date) -> int | None:
        """The most recent full fiscal year filed for any yearly fact, and finished before `on_date`."""
        years = {f.period.fiscal_year for f in self.facts if FACTS[f.name].yearly}
        return max((y for y in years if y is not None and dt.date(y, 12, 31) < on_date), default=None)


def period_key(period: str | None) -> tuple[dt.date, dt.date] | None:
    """The dates a period covers: `FY2025` and `2025-01-01..2025-12-31` are the same period."""
    if period is None:
        return None
    p = parse_period(period)
    return (p.start, p.end)


class CorrectionMismatch(RuleViolation):
    """A correction (更正) names the filing it corrects: one of this enterprise's, for the same fact and period."""

    code = "listing.correction_mismatch"
    title = "The corrected filing is not this enterprise's filing of the same fact and period"


def check_correction(uscc: str, filing: FileFact, corrected: tuple[str, str] | None) -> None:
    """`corrected` is the (fact name, fiscal period) of the filing at `filing.corrects` by this enterprise,
    None when the enterprise has no filing there."""
    if corrected is None or corrected[0] != filing.name or \
            period_key(corrected[1]) != period_key(filing.fiscal_period):
        raise CorrectionMismatch(
            f"position {filing.corrects} is not a filing of {filing.name} for {filing.fiscal_period} by {uscc}",
            corrects=filing.corrects, fact=str(filing.name), fiscal_period=filing.fiscal_period)


# -- rulebooks ------------------------------------------------------------------------------


class Confidence(StrEnum):
    """How sure the figure is (domain brief §0)."""

    S = "S"    # a primary or official text, read
    S2 = "S2"  # a secondary source: news, law-firm summary, template, test code
    M = "M"    # recollection, not confirmed in any source found
    I = "I"    # noqa: E741 - inference or design suggestion; no source states it


class Owner(StrEnum):
    regulation = "regulation"  # set by NEEQ, the BSE or the CSRC: copied, not chosen
    operator = "operator"      # the market operator's own choice, to set and change


class Operator(StrEnum):
    at_least = ">="
    more_than = ">"
    at_most = "<="
    less_than = "<"
    equals = "=="
    is_true = "is_true"
    is_false = "is_false"
    one_of = "in"


class Measure(StrEnum):
    """How the figure is taken from the filings; N is the fiscal year of the evaluation."""

    latest = "latest"                # the most recent period filed
    fiscal_year = "fiscal_year"      # FY N
    each_year = "each_year"          # each of FY N-years+1 .. N must pass (最近两年均)
    sum = "sum"                      # their sum (累计)
    average = "average"              # their mean (平均)
    growth = "growth"                # (FY N − FY N-1) / FY N-1 (增长率)
    cagr = "cagr"                    # (FY N / FY N-years)^(1/years) − 1 (年均复合增长率)
    increasing = "increasing"        # FY N-years < … < FY N (持续增长)
    ratio_of_sums = "ratio_of_sums"  # Σ fact / Σ per over the years (e.g. R&D / revenue)
    ratio_latest = "ratio_latest"    # latest fact / latest per (e.g. net assets per share at par RMB 1)


_YEARLY_MEASURES = frozenset({Measure.fiscal_year, Measure.each_year, Measure.sum, Measure.average,
                              Measure.growth, Measure.cagr, Measure.increasing, Measure.ratio_of_sums})
_RATIO_MEASURES = frozenset({Measure.growth, Measure.cagr, Measure.ratio_of_sums, Measure.ratio_latest})
_NUMERIC_OPS = frozenset({Operator.at_least, Operator.more_than, Operator.at_most, Operator.less_than,
                          Operator.equals})
_BOOL_OPS = frozenset({Operator.is_true, Operator.is_false})

Threshold = int | bool | Decimal | tuple[str, ...] | None


class Criterion(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One condition: the figure `measure`d from `fact` compared by `op` with `threshold`."""

    id: str
    label: str
    fact: FactName
    op: Operator
    threshold: Threshold = None
    """Money in fen (integer), counts as integers, ratios as decimal strings; a list of words for `in`."""
    measure: Measure = Measure.latest
    years: int = 2
    per: FactName | None = None
    """The denominator of ratio_of_sums / ratio_latest."""
    confidence: Confidence
    sources: tuple[str, ...] = ()
    owner: Owner | None = None
    """Who sets the threshold; the rulebook's owner unless stated."""
    note: str = ""


class Standard(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One alternative standard: met when all its criteria pass."""

    id: str
    label: str
    criteria: tuple[Criterion, ...]
    note: str = ""


class StandardGroup(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Alternative standards: met when any one of them is (符合其一)."""

    id: str
    label: str
    standards: tuple[Standard, ...]
    note: str = ""


class Requirement(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """What a move needs: every `all_of` criterion, and one standard of each `any_of` group."""

    move: str
    label: str = ""
    extends: str | None = None
    """Another move of the same rulebook whose criteria and groups also apply."""
    all_of: tuple[Criterion, ...] = ()
    any_of: tuple[StandardGroup, ...] = ()
    note: str = ""


class Provenance(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    ref: str
    """The source id (src-13 as in the domain brief), or `operator` for the operator's own decisions."""
    description: str
    confidence: Confidence
    url: str = ""


class RulebookInvalid(RuleViolation, ValueError):
    """A rulebook that cannot be evaluated: every problem is listed, not just the first."""

    code = "listing.rulebook_invalid"
    title = "The rulebook is not valid"


class Rulebook(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Versioned criteria for moves. The version in force on a date is the latest one effective by then."""

    id: str
    version: int
    effective_from: dt.date
    title: str
    owner: Owner
    provenance: tuple[Provenance, ...]
    notes: tuple[str, ...] = ()
    """What the sources leave unsure; read before relying on a figure."""
    moves: tuple[Requirement, ...]

    def __post_init__(self) -> None:
        if problems := rulebook_problems(self):
            raise RulebookInvalid(f"rulebook {self.id} v{self.version}: " + "; ".join(problems),
                                  rulebook_id=self.id, version=self.version, problems=problems)

    def requirement(self, move: Move) -> Requirement | None:
        return next((r for r in self.moves if r.move == move.key), None)

    def resolved(self, move: Move) -> tuple[tuple[Criterion, ...], tuple[StandardGroup, ...]] | None:
        """The move's criteria and groups, with those of the moves it extends."""
        req = self.requirement(move)
        if req is None:
            return None
        all_of: list[Criterion] = []
        any_of: list[StandardGroup] = []
        chain: list[Requirement] = []
        while req is not None and req not in chain:
            chain.append(req)
            req = self.requirement(Move.parse(req.extends)) if req.extends else None
        for r in reversed(chain):
            all_of.extend(r.all_of)
            any_of.extend(r.any_of)
        return tuple(all_of), tuple(any_of)


_ID = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def rulebook_problems(rb: Rulebook) -> list[str]:
    """Everything wrong with a rulebook: moves that are not allowed, thresholds of the wrong type,
    unknown sources, duplicate ids. Empty when the rulebook is sound."""
    problems: list[str] = []
    if not _ID.fullmatch(rb.id):
        problems.append(f"id {rb.id!r} must be lowercase letters, digits, _ . -")
    if rb.version < 1:
        problems.append(f"version must be ≥ 1, got {rb.version}")
    if not rb.provenance:
        problems.append("provenance must name at least one source")
    refs = [p.ref for p in rb.provenance]
    problems += [f"provenance {r!r} is listed twice" for r in sorted({r for r in refs if refs.count(r) > 1})]
    if not rb.moves:
        problems.append("a rulebook governs at least one move")
    keys = [r.move for r in rb.moves]
    problems += [f"move {k!r} is listed twice" for k in sorted({k for k in keys if keys.count(k) > 1})]
    for req in rb.moves:
        where = f"move {req.move}"
        try:
            move = Move.parse(req.move)
        except ValueError:
            problems.append(f"{where}: not a move between known stages")
        else:
            if move.to_stage not in ALLOWED_MOVES[move.from_stage]:
                problems.append(f"{where}: not an allowed move")
        if req.extends is not None:
            if req.extends not in keys:
                problems.append(f"{where}: extends {req.extends!r}, which this rulebook does not govern")
            elif _extends_cycle(rb, req):
                problems.append(f"{where}: extends itself through {req.extends!r}")
        if not req.all_of and not req.any_of and req.extends is None:
            problems.append(f"{where}: has no criteria")
        problems += _duplicates(where, "criterion", [c.id for c in req.all_of])
        problems += _duplicates(where, "group", [g.id for g in req.any_of])
        for c in req.all_of:
            problems += [f"{where}, {c.id}: {p}" for p in criterion_problems(c, refs)]
        for g in req.any_of:
            if not g.standards:
                problems.append(f"{where}, group {g.id}: has no standards")
            problems += _duplicates(f"{where}, group {g.id}", "standard", [s.id for s in g.standards])
            for s in g.standards:
                w = f"{where}, standard {g.id}/{s.id}"
                if not s.criteria:
                    problems.append(f"{w}: has no criteria")
                problems += _duplicates(w, "criterion", [c.id for c in s.criteria])
                for c in s.criteria:
                    problems += [f"{w}, {c.id}: {p}" for p in criterion_problems(c, refs)]
    return problems


def _duplicates(where: str, what: str, ids: list[str]) -> list[str]:
    return [f"{where}: {what} id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]


def _extends_cycle(rb: Rulebook, req: Requirement) -> bool:
    by_move = {r.move: r for r in rb.moves}
    seen = {req.move}
    nxt = req.extends
    while nxt is not None and nxt in by_move:
        if nxt in seen:
            return True
        seen.add(nxt)
        nxt = by_move[nxt].extends
    return False


def criterion_problems(c: Criterion, source_refs: Collection[str] = ()) -> list[str]:
    """A criterion's threshold must have the type its figure has: money and counts integers,
    ratios Decimal, no threshold for yes/no tests, words of the fact's vocabulary for `in`."""
    problems: list[str] = []
    spec = FACTS[c.fact]
    t = c.threshold
    if not _ID.fullmatch(c.id):
        problems.append(f"id {c.id!r} must be lowercase letters, digits, _ . -")
    if not c.label.strip():
        problems.append("needs a label")
    if unknown := [s for s in c.sources if s not in source_refs]:
        problems.append(f"sources {unknown} are not in the rulebook's provenance")
    if c.measure in _YEARLY_MEASURES and not spec.yearly:
        problems.append(f"measure {c.measure} needs a yearly fact; {c.fact} is not filed per fiscal year")
    if not 1 <= c.years <= 5:
        problems.append(f"years must be 1..5, got {c.years}")
    if c.measure in (Measure.ratio_of_sums, Measure.ratio_latest):
        if c.per is None:
            problems.append(f"measure {c.measure} needs `per` (the denominator)")
        elif FACTS[c.per].kind is not FactKind.money or (c.measure is Measure.ratio_of_sums and not FACTS[c.per].yearly):
            problems.append(f"`per` {c.per} must be a money fact{' filed per fiscal year' if c.measure is Measure.ratio_of_sums else ''}")
        if spec.kind is not FactKind.money:
            problems.append(f"measure {c.measure} divides money; {c.fact} is {spec.kind}")
    elif c.per is not None:
        problems.append(f"`per` only goes with ratio_of_sums or ratio_latest, not {c.measure}")
    if c.measure in (Measure.growth, Measure.cagr, Measure.increasing) and spec.kind is not FactKind.money:
        problems.append(f"measure {c.measure} compares money across years; {c.fact} is {spec.kind}")
    if c.measure is Measure.cagr and isinstance(t, Decimal) and t.is_finite() and t <= -1:
        problems.append(f"a compound growth threshold must be above -1, got {t}")

    if c.measure is Measure.increasing or spec.kind is FactKind.flag:
        if c.op not in _BOOL_OPS:
            problems.append(f"a yes/no figure takes is_true or is_false, not {c.op}")
        if t is not None:
            problems.append("is_true / is_false take no threshold")
    elif spec.kind is FactKind.text:
        if c.op is not Operator.one_of:
            problems.append(f"{c.fact} is a word: use `in` with a list, not {c.op}")
        if not isinstance(t, tuple) or not t:
            problems.append("`in` needs a non-empty list of words")
        elif bad := [w for w in t if w not in spec.vocabulary]:
            problems.append(f"{bad} are not in {c.fact}'s vocabulary ({', '.join(spec.vocabulary)})")
    else:
        if c.op not in _NUMERIC_OPS:
            problems.append(f"a number takes >=, >, <=, < or ==, not {c.op}")
        wants_decimal = spec.kind is FactKind.ratio or c.measure in _RATIO_MEASURES
        if wants_decimal and not isinstance(t, Decimal):
            problems.append(f"the threshold is a ratio: write it as a decimal string, got {t!r}")
        elif not wants_decimal and (type(t) is not int):
            unit = "fen" if spec.kind is FactKind.money else "a count"
            problems.append(f"the threshold is {unit}: write it as an integer, got {t!r}")
        elif isinstance(t, Decimal) and not t.is_finite():
            problems.append(f"the threshold must be finite, got {t}")
    return problems


def rulebook_set_problems(rulebooks: Iterable[Rulebook]) -> list[str]:
    """Across rulebooks: each (id, version) once, and later versions take effect later."""
    problems: list[str] = []
    by_id: dict[str, list[Rulebook]] = {}
    for rb in rulebooks:
        by_id.setdefault(rb.id, []).append(rb)
    for rid, books in sorted(by_id.items()):
        versions = [b.version for b in books]
        problems += [f"{rid} v{v} is given twice" for v in sorted({v for v in versions if versions.count(v) > 1})]
        ordered = sorted(books, key=lambda b: b.version)
        for earlier, later in zip(ordered, ordered[1:]):
            if later.version != earlier.version and later.effective_from <= earlier.effective_from:
                problems.append(f"{rid} v{later.version} takes effect {later.effective_from}, "
                                f"not after v{earlier.version} ({earlier.effective_from})")
    return problems


class NoRulebookInForce(RuleViolation):
    code = "listing.no_rulebook_in_force"
    title = "No version of the rulebook is in force on that date"


class RulebookVersionConflict(Conflict):
    code = "listing.rulebook_version_conflict"
    title = "That rulebook version already exists or skips a version"


class RulebookBackdated(RuleViolation):
    code = "listing.rulebook_backdated"
    title = "A new rulebook version cannot take effect in the past"


def in_force(rulebooks: Iterable[Rulebook], rulebook_id: str, on_date: dt.date) -> Rulebook:
    """The version of `rulebook_id` in force on `on_date`: the latest effective on or before it."""
    versions = [rb for rb in rulebooks if rb.id == rulebook_id]
    current = [rb for rb in versions if rb.effective_from <= on_date]
    if not current:
        raise NoRulebookInForce(
            f"no version of {rulebook_id} is in force on {on_date}", rulebook_id=rulebook_id,
            on_date=on_date.isoformat(),
            earliest=min((rb.effective_from for rb in versions), default=None).isoformat() if versions else None,
        )
    return max(current, key=lambda rb: (rb.effective_from, rb.version))


def check_publishable(existing: Iterable[Rulebook], candidate: Rulebook, today: dt.date) -> None:
    """An operator publishes a new version: the next number, effective no earlier than today and
    after the version it replaces, so evaluations already made stay reproducible."""
    same = [rb for rb in existing if rb.id == candidate.id]
    expected = max((rb.version for rb in same), default=0) + 1
    if candidate.version != expected:
        raise RulebookVersionConflict(
            f"{candidate.id}: the next version is v{expected}, not v{candidate.version}",
            rulebook_id=candidate.id, version=candidate.version, expected=expected)
    latest = max((rb.effective_from for rb in same), default=None)
    if candidate.effective_from < today or (latest is not None and candidate.effective_from <= latest):
        raise RulebookBackdated(
            f"{candidate.id} v{candidate.version} would take effect {candidate.effective_from}; "
            f"it must be on or after {today} and after {latest or 'nothing'}",
            rulebook_id=candidate.id, effective_from=candidate.effective_from.isoformat(),
            today=today.isoformat(), current_effective_from=latest.isoformat() if latest else None)


# -- evaluation -----------------------------------------------------------------------------


class FigureUsed(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One filing an evaluation relied on."""

    fact: FactName
    fiscal_period: str
    value: int | bool | str
    source_document_digest: str
    position: int
    filed_on: dt.date


class CriterionResult(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A criterion tested: the figure used (None when missing), where it came from, and the threshold.

    `figure` is an integer for money (fen) and counts, a decimal string for ratios and averages,
    true/false for yes/no tests, a word for vocabulary facts.
    """

    id: str
    label: str
    fact: FactName
    measure: Measure
    years: int
    per: FactName | None
    op: Operator
    threshold: Threshold
    unit: str
    owner: Owner
    confidence: Confidence
    sources: tuple[str, ...]
    passed: bool
    figure: int | bool | str | None
    period: str | None
    inputs: tuple[FigureUsed, ...]
    missing: tuple[str, ...] = ()
    note: str = ""


class StandardResult(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str
    label: str
    passed: bool
    criteria: tuple[CriterionResult, ...]


class GroupResult(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str
    label: str
    passed: bool
    met: tuple[str, ...]
    """The ids of the standards met."""
    standards: tuple[StandardResult, ...]


class RulebookResult(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One rulebook's verdict, naming the version used."""

    rulebook_id: str
    version: int
    effective_from: dt.date
    title: str
    passed: bool
    all_of: tuple[CriterionResult, ...]
    any_of: tuple[GroupResult, ...]


class Gap(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A failed criterion, and where it sits: an all_of criterion (group None) or one of a standard's."""

    rulebook_id: str
    version: int
    group: str | None
    standard: str | None
    criterion: CriterionResult


class Evaluation(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A move tested against the rulebooks in force on `on_date`: every criterion, passed or not."""

    from_stage: Stage
    to_stage: Stage
    on_date: dt.date
    fiscal_year: int
    """FY N: the latest fiscal year the yearly measures look back from."""
    passed: bool
    rulebooks: tuple[RulebookResult, ...]

    def gaps(self) -> tuple[Gap, ...]:
        """What fails: failed all_of criteria, and for each unmet group every standard's failures."""
        found: list[Gap] = []
        for rb in self.rulebooks:
            found += [Gap(rulebook_id=rb.rulebook_id, version=rb.version, group=None, standard=None, criterion=c)
                      for c in rb.all_of if not c.passed]
            for g in rb.any_of:
                if g.passed:
                    continue
                for s in g.standards:
                    found += [Gap(rulebook_id=rb.rulebook_id, version=rb.version, group=g.id, standard=s.id,
                                  criterion=c) for c in s.criteria if not c.passed]
        return tuple(found)


class NextStep(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    to_stage: Stage
    to_stage_name: str
    passed: bool
    gaps: tuple[Gap, ...]
    evaluation: Evaluation


_SCALE = Decimal("0.000001")


def _decimal_text(x: Fraction) -> str:
    """Exact when it fits in 6 decimal places, else floored to 6: never shown better than it is."""
    with localcontext() as ctx:
        ctx.prec = 60
        d = (Decimal(x.numerator) / Decimal(x.denominator)).quantize(_SCALE, rounding=ROUND_FLOOR)
        text = format(d.normalize(), "f")
    return "0" if text == "-0" else text


def _number(f: Fact) -> Fraction:
    return Fraction(Decimal(f.value)) if isinstance(f.value, str) else Fraction(int(f.value))


def _used(f: Fact) -> FigureUsed:
    return FigureUsed(fact=f.name, fiscal_period=f.fiscal_period, value=f.value,
                      source_document_digest=f.source_document_digest, position=f.position, filed_on=f.filed_on)


def _compare(op: Operator, figure: Fraction | bool | str, threshold: Threshold | Fraction) -> bool:
    if op is Operator.is_true:
        return figure is True
    if op is Operator.is_false:
        return figure is False
    if op is Operator.one_of:
        return isinstance(threshold, tuple) and figure in threshold
    assert isinstance(figure, Fraction) and isinstance(threshold, (int, Decimal, Fraction))
    t = Fraction(threshold)
    return {Operator.at_least: figure >= t, Operator.more_than: figure > t, Operator.at_most: figure <= t,
            Operator.less_than: figure < t, Operator.equals: figure == t}[op]


def _unit(c: Criterion) -> str:
    if c.measure is Measure.increasing:
        return "flag"
    if c.measure in _RATIO_MEASURES:
        return "ratio"
    return {FactKind.money: "fen", FactKind.ratio: "ratio", FactKind.count: "count",
            FactKind.flag: "flag", FactKind.text: "text"}[FACTS[c.fact].kind]


def evaluate_criterion(c: Criterion, facts: FactSheet, fiscal_year: int, *, owner: Owner) -> CriterionResult:
    """Test one criterion against the filings; a missing filing fails it with figure None."""
    n = fiscal_year
    used: list[Fact] = []
    missing: list[str] = []
    note = ""

    def year(fact: FactName, y: int) -> Fact | None:
        found = facts.latest(fact, fiscal_year_period(y))
        if found is None:
            missing.append(f"{fact} FY{y}")
        else:
            used.append(found)
        return found

    def latest(fact: FactName) -> Fact | None:
        found = facts.latest(fact)
        if found is None:
            missing.append(f"{fact} (no filing)")
        else:
            used.append(found)
        return found

    figure: Fraction | bool | str | None = None
    passed = False
    m = c.measure
    if m is Measure.latest or m is Measure.fiscal_year:
        f = latest(c.fact) if m is Measure.latest else year(c.fact, n)
        if f is not None:
            figure = f.value if FACTS[c.fact].kind in (FactKind.flag, FactKind.text) else _number(f)
            passed = _compare(c.op, figure, c.threshold)
    elif m in (Measure.each_year, Measure.sum, Measure.average):
        got = [year(c.fact, y) for y in range(n - c.years + 1, n + 1)]
        if not missing:
            values = [_number(f) for f in got if f is not None]
            if m is Measure.each_year:
                verdicts = [_compare(c.op, v, c.threshold) for v in values]
                passed = all(verdicts)
                worst = min if c.op in (Operator.at_least, Operator.more_than) else max
                failing = [v for v, ok in zip(values, verdicts) if not ok]
                figure = failing[0] if failing and c.op is Operator.equals else worst(values)
            else:
                figure = sum(values, Fraction(0)) / (len(values) if m is Measure.average else 1)
                passed = _compare(c.op, figure, c.threshold)
    elif m in (Measure.growth, Measure.cagr, Measure.increasing):
        span = 1 if m is Measure.growth else c.years
        got = [year(c.fact, y) for y in range(n - span, n + 1)]
        if not missing:
            values = [_number(f) for f in got if f is not None]
            base, last = values[0], values[-1]
            if m is Measure.increasing:
                figure = all(a < b for a, b in zip(values, values[1:]))
                passed = _compare(c.op, figure, c.threshold)
            elif base <= 0:
                note = f"growth is undefined: {c.fact} FY{n - span} is not positive"
            elif m is Measure.growth:
                figure = (last - base) / base
                passed = _compare(c.op, figure, c.threshold)
            elif last < 0:
                note = f"compound growth is undefined: {c.fact} FY{n} is negative"
            else:
                assert isinstance(c.threshold, Decimal)
                ratio, target = last / base, (1 + Fraction(c.threshold)) ** span
                # Exactly: ratio^(1/years) − 1 ≥ t  ⇔  ratio ≥ (1+t)^years (both sides positive).
                passed = _compare(c.op, ratio, target)
                figure = Fraction(c.threshold) if ratio == target else _root(ratio, span) - 1
    elif m is Measure.ratio_of_sums:
        assert c.per is not None
        tops = [year(c.fact, y) for y in range(n - c.years + 1, n + 1)]
        bottoms = [year(c.per, y) for y in range(n - c.years + 1, n + 1)]
        if not missing:
            top = sum((_number(f) for f in tops if f is not None), Fraction(0))
            bottom = sum((_number(f) for f in bottoms if f is not None), Fraction(0))
            if bottom <= 0:
                note = f"the ratio is undefined: {c.per} over the years is not positive"
            else:
                figure = top / bottom
                passed = _compare(c.op, figure, c.threshold)
    elif m is Measure.ratio_latest:
        assert c.per is not None
        top_f, bottom_f = latest(c.fact), latest(c.per)
        if top_f is not None and bottom_f is not None:
            bottom = _number(bottom_f)
            if bottom <= 0:
                note = f"the ratio is undefined: {c.per} is not positive"
            else:
                figure = _number(top_f) / bottom
                passed = _compare(c.op, figure, c.threshold)

    if missing:
        note = "missing: " + ", ".join(missing)
        figure, passed = None, False
    unit = _unit(c)
    shown: int | bool | str | None
    if figure is None or isinstance(figure, (bool, str)):
        shown = figure
    elif unit in ("fen", "count") and m is not Measure.average and figure.denominator == 1:
        shown = int(figure)
    else:
        shown = _decimal_text(figure)
    periods = sorted({f.fiscal_period for f in used}, key=lambda p: parse_period(p).end)
    return CriterionResult(
        id=c.id, label=c.label, fact=c.fact, measure=c.measure, years=c.years, per=c.per, op=c.op,
        threshold=c.threshold, unit=unit, owner=c.owner or owner, confidence=c.confidence, sources=c.sources,
        passed=passed, figure=shown, period=", ".join(periods) or None,
        inputs=tuple(_used(f) for f in sorted(used, key=lambda f: (f.name, f.period.end))),
        missing=tuple(missing), note=note,
    )


def _root(x: Fraction, years: int) -> Fraction:
    """x^(1/years), to 40 digits: only ever displayed, never compared."""
    with localcontext() as ctx:
        ctx.prec = 40
        return Fraction((Decimal(x.numerator) / Decimal(x.denominator)) ** (Decimal(1) / years))


def evaluate(rulebooks: Iterable[Rulebook], move: Move, facts: FactSheet | Iterable[Fact], on_date: dt.date,
             *, fiscal_year: int | None = None, suspended_from: Stage | None = None) -> Evaluation:
    """Test a move against every rulebook governing it, each in the version in force on `on_date`,
    using only filings made by then. Every criterion is reported; a move no rulebook governs passes.

    FY N is `fiscal_year` if given, else the latest full fiscal year filed before `on_date`.
    """
    check_move(move.from_stage, move.to_stage, suspended_from=suspended_from)
    books = tuple(rulebooks)
    sheet = (facts if isinstance(facts, FactSheet) else FactSheet(facts=tuple(facts))).filed_by(on_date)
    n = fiscal_year or sheet.latest_fiscal_year(on_date) or on_date.year - 1
    governing = sorted({rb.id for rb in books if rb.requirement(move) is not None})
    results: list[RulebookResult] = []
    for rid in governing:
        rb = in_force(books, rid, on_date)
        resolved = rb.resolved(move)
        if resolved is None:
            continue  # the version in force no longer governs this move
        all_of, any_of = resolved
        checked = tuple(evaluate_criterion(c, sheet, n, owner=rb.owner) for c in all_of)
        groups: list[GroupResult] = []
        for g in any_of:
            standards = []
            for s in g.standards:
                cs = tuple(evaluate_criterion(c, sheet, n, owner=rb.owner) for c in s.criteria)
                standards.append(StandardResult(id=s.id, label=s.label, passed=all(c.passed for c in cs), criteria=cs))
            met = tuple(s.id for s in standards if s.passed)
            groups.append(GroupResult(id=g.id, label=g.label, passed=bool(met), met=met, standards=tuple(standards)))
        results.append(RulebookResult(
            rulebook_id=rb.id, version=rb.version, effective_from=rb.effective_from, title=rb.title,
            passed=all(c.passed for c in checked) and all(g.passed for g in groups),
            all_of=checked, any_of=tuple(groups)))
    return Evaluation(from_stage=move.from_stage, to_stage=move.to_stage, on_date=on_date, fiscal_year=n,
                      passed=all(r.passed for r in results), rulebooks=tuple(results))


def missing_for_next_step(rulebooks: Iterable[Rulebook], stage: Stage, facts: FactSheet | Iterable[Fact],
                          on_date: dt.date, *, fiscal_year: int | None = None) -> tuple[NextStep, ...]:
    """"What is missing for my next step?": each forward move from `stage`, evaluated, with its gaps."""
    books = tuple(rulebooks)
    sheet = facts if isinstance(facts, FactSheet) else FactSheet(facts=tuple(facts))
    steps = []
    for to in forward_moves(stage):
        ev = evaluate(books, Move(from_stage=stage, to_stage=to), sheet, on_date, fiscal_year=fiscal_year)
        steps.append(NextStep(to_stage=to, to_stage_name=STAGE_NAMES[to], passed=ev.passed, gaps=ev.gaps(),
                              evaluation=ev))
    return tuple(steps)


class OverrideRequired(RuleViolation):
    """A move whose evaluation fails is recorded only with an explicit override and its reason."""

    code = "listing.override_required"
    title = "The move fails its criteria: an override with a reason is required"


def check_override(evaluation: Evaluation, override_reason: str | None) -> None:
    if evaluation.passed:
        return
    if override_reason is None or not override_reason.strip():
        gaps = evaluation.gaps()
        raise OverrideRequired(
            f"{evaluation.from_stage} → {evaluation.to_stage} fails {len(gaps)} criteria; "
            "approve it only with an override and a reason",
            from_stage=str(evaluation.from_stage), to_stage=str(evaluation.to_stage),
            failed=[f"{g.rulebook_id}:{g.group + '/' + g.standard + '/' if g.group else ''}{g.criterion.id}"
                    for g in gaps],
            rulebooks=[f"{r.rulebook_id} v{r.version}" for r in evaluation.rulebooks])


# -- boards and security codes --------------------------------------------------------------

DEFAULT_BOARD_PREFIXES: Mapping[Stage, str] = MappingProxyType({
    Stage.incubation: "81",
    Stage.standardisation: "82",
    Stage.cultivation: "83",
})
"""The market's boards and the code prefix of each: the operator's choice [I], not from any source."""

_SEQUENCE_DIGITS = 4


class NotABoard(RuleViolation):
    code = "listing.not_a_board"
    title = "That stage is not a board of the market"


class SecurityCodeReused(Conflict):
    """A retired code is never issued again (场内转板 re-keys the security; the old code stays retired)."""

    code = "listing.security_code_reused"
    title = "That security code has been issued before"


class SecurityCodesExhausted(RuleViolation):
    code = "listing.security_codes_exhausted"
    title = "The board has no security codes left"


class BoardChangeWhileFrozen(RuleViolation):
    """场内转板 is refused while any holding or warrant series of the enterprise is frozen (冻结)."""

    code = "listing.board_change_frozen"
    title = "The board change is refused while holdings or warrants are frozen"


def is_board_change(from_stage: Stage, to_stage: Stage,
                    prefixes: Mapping[Stage, str] = DEFAULT_BOARD_PREFIXES) -> bool:
    """A move between two boards: the security gets a new code."""
    return from_stage in prefixes and to_stage in prefixes and prefixes[from_stage] != prefixes[to_stage]


def new_security_code(board: Stage, sequence: int, *, used_codes: Collection[str] = (),
                      prefixes: Mapping[Stage, str] = DEFAULT_BOARD_PREFIXES) -> str:
    """The code `sequence` on `board` (e.g. 820007); refused if it was ever issued before."""
    if board not in prefixes:
        raise NotABoard(f"{board} is not a board with security codes", board=str(board),
                        boards=[str(b) for b in prefixes])
    limit = 10 ** _SEQUENCE_DIGITS - 1
    if not 1 <= sequence <= limit:
        raise SecurityCodesExhausted(f"sequence {sequence} is outside 1..{limit} on {board}",
                                     board=str(board), sequence=sequence, limit=limit)
    code = f"{prefixes[board]}{sequence:0{_SEQUENCE_DIGITS}d}"
    if code in used_codes:
        raise SecurityCodeReused(f"security code {code} was issued before and is never reused",
                                 code=code, board=str(board))
    return code


def next_security_code(board: Stage, used_codes: Collection[str], *,
                       prefixes: Mapping[Stage, str] = DEFAULT_BOARD_PREFIXES) -> str:
    """One past the highest code ever issued on `board`: gaps left by retired codes are not refilled."""
    if board not in prefixes:
        raise NotABoard(f"{board} is not a board with security codes", board=str(board),
                        boards=[str(b) for b in prefixes])
    prefix = prefixes[board]
    sequences = [int(code[len(prefix):]) for code in used_codes
                 if code.startswith(prefix) and len(code) == len(prefix) + _SEQUENCE_DIGITS
                 and code[len(prefix):].isdigit()]
    return new_security_code(board, max(sequences, default=0) + 1, used_codes=used_codes, prefixes=prefixes)


def check_board_change(from_stage: Stage, to_stage: Stage, *, frozen_holdings: int,
                       frozen_warrant_series: int) -> None:
    """场内转板 needs every holding and warrant series unfrozen: a frozen position must not change code."""
    if frozen_holdings or frozen_warrant_series:
        raise BoardChangeWhileFrozen(
            f"{from_stage} → {to_stage} is refused: {frozen_holdings} frozen holdings and "
            f"{frozen_warrant_series} frozen warrant series", from_stage=str(from_stage), to_stage=str(to_stage),
            frozen_holdings=frozen_holdings, frozen_warrant_series=frozen_warrant_series)
