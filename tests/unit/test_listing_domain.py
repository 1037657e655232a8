"""The listing pipeline's pure rules: moves, filed facts, evaluation against versioned rulebooks,
"what is missing", overrides and security codes."""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from registry.listing import domain
from registry.listing.domain import (
    ALLOWED_MOVES,
    LADDER,
    STAGE_NAMES,
    BoardChangeWhileFrozen,
    Criterion,
    Evaluation,
    Fact,
    FactName,
    FactSheet,
    FileFact,
    InvalidFact,
    Measure,
    Move,
    MoveNotAllowed,
    NoRulebookInForce,
    NotABoard,
    Operator,
    Owner,
    OverrideRequired,
    Rulebook,
    RulebookBackdated,
    RulebookVersionConflict,
    SecurityCodeReused,
    SecurityCodesExhausted,
    Stage,
    check_board_change,
    check_move,
    check_override,
    check_publishable,
    evaluate,
    evaluate_criterion,
    forward_moves,
    is_board_change,
    missing_for_next_step,
    new_security_code,
    next_security_code,
    parse_period,
)
from registry.listing.rulebooks import shipped_rulebooks

S = Stage
RMB = 100
M = 1_000_000 * RMB  # fen per RMB million
DIGEST = "a" * 64
CORRECTED = "b" * 64
FILED = dt.date(2025, 3, 31)
ON = dt.date(2025, 6, 30)
BOOKS = shipped_rulebooks()

# -- the move table -------------------------------------------------------------------------

# The ladder, written out independently of the implementation: every other pair is refused.
EXPECTED_MOVES: dict[Stage, set[Stage]] = {
    S.applied: {S.incubation, S.standardisation, S.cultivation, S.rejected, S.withdrawn},
    S.incubation: {S.standardisation, S.suspended, S.exited},
    S.standardisation: {S.cultivation, S.incubation, S.suspended, S.exited},
    S.cultivation: {S.listing_reserve, S.standardisation, S.suspended, S.exited},
    S.listing_reserve: {S.neeq_application, S.cultivation, S.suspended, S.exited},
    S.neeq_application: {S.neeq_base, S.neeq_innovation, S.listing_reserve},
    S.neeq_base: {S.neeq_innovation, S.suspended, S.exited},
    S.neeq_innovation: {S.bse_application, S.neeq_base, S.suspended, S.exited},
    S.bse_application: {S.bse_listed, S.neeq_innovation},
    S.bse_listed: {S.suspended, S.exited},
    S.exited: {S.applied},
    S.rejected: {S.applied},
    S.withdrawn: {S.applied},
    S.suspended: {S.incubation, S.standardisation, S.cultivation, S.listing_reserve, S.neeq_base,
                  S.neeq_innovation, S.bse_listed, S.exited},
}


@pytest.mark.parametrize(("from_stage", "to_stage"), list(itertools.product(Stage, Stage)))
def test_every_pair_of_stages_is_allowed_exactly_when_the_table_says(from_stage: Stage, to_stage: Stage) -> None:
    if to_stage in EXPECTED_MOVES[from_stage]:
        check_move(from_stage, to_stage)
        return
    with pytest.raises(MoveNotAllowed) as refused:
        check_move(from_stage, to_stage)
    assert refused.value.code == "listing.move_not_allowed"
    assert refused.value.figures["from_stage"] == from_stage
    assert refused.value.figures["to_stage"] == to_stage
    assert set(refused.value.figures["allowed"]) == {str(s) for s in EXPECTED_MOVES[from_stage]}


def test_the_table_covers_every_stage_and_names_each_in_chinese() -> None:
    assert set(ALLOWED_MOVES) == set(Stage) == set(STAGE_NAMES)
    assert {k: set(v) for k, v in ALLOWED_MOVES.items()} == EXPECTED_MOVES
    assert STAGE_NAMES[S.incubation] == "孵化层" and STAGE_NAMES[S.exited] == "退板"


def test_a_refusal_names_the_allowed_moves_in_its_message() -> None:
    with pytest.raises(MoveNotAllowed, match="allowed: standardisation, exited, suspended") as refused:
        check_move(S.incubation, S.bse_listed)
    assert refused.value.figures["allowed"] == ["standardisation", "exited", "suspended"]


def test_a_suspended_enterprise_resumes_only_where_it_was() -> None:
    check_move(S.suspended, S.cultivation, suspended_from=S.cultivation)
    check_move(S.suspended, S.exited, suspended_from=S.cultivation)
    with pytest.raises(MoveNotAllowed) as refused:
        check_move(S.suspended, S.listing_reserve, suspended_from=S.cultivation)
    assert refused.value.figures["allowed"] == ["cultivation", "exited"]


def test_the_next_steps_are_the_allowed_moves_up_the_ladder() -> None:
    assert forward_moves(S.applied) == [S.incubation, S.standardisation, S.cultivation]
    assert forward_moves(S.standardisation) == [S.cultivation]
    assert forward_moves(S.neeq_application) == [S.neeq_base, S.neeq_innovation]
    assert forward_moves(S.bse_listed) == []
    assert forward_moves(S.suspended) == forward_moves(S.rejected) == []
    for stage in LADDER[:-1]:
        assert forward_moves(stage), stage


def test_moves_are_written_from_arrow_to() -> None:
    move = Move.parse("neeq_innovation->bse_application")
    assert move == Move(from_stage=S.neeq_innovation, to_stage=S.bse_application)
    assert move.key == "neeq_innovation->bse_application"
    with pytest.raises(ValueError):
        Move.parse("neeq_innovation bse_application")


# -- facts ----------------------------------------------------------------------------------

_positions = itertools.count(1)


def fact(name: str, value: int | bool | str, period: str, *, digest: str = DIGEST,
         filed_on: dt.date = FILED) -> Fact:
    return Fact(name=FactName(name), value=value, fiscal_period=period, source_document_digest=digest,
                position=next(_positions), filed_on=filed_on)


def test_a_correction_supersedes_the_filing_it_corrects() -> None:
    first = fact("revenue", 90 * M, "FY2024")
    correction = fact("revenue", 95 * M, "FY2024", digest=CORRECTED)
    sheet = FactSheet(facts=(correction, first))
    assert sheet.latest(FactName.revenue, "FY2024") == correction
    assert sheet.history(FactName.revenue, "FY2024") == (first, correction)


def test_latest_without_a_period_is_the_most_recent_period_not_the_most_recent_filing() -> None:
    fy2024 = fact("net_assets", 60 * M, "FY2024")
    fy2023_corrected_later = fact("net_assets", 55 * M, "FY2023")
    sheet = FactSheet(facts=(fy2024, fy2023_corrected_later))
    assert sheet.latest(FactName.net_assets) == fy2024
    assert sheet.latest(FactName.net_assets, "FY2023") == fy2023_corrected_later
    assert sheet.latest(FactName.revenue) is None


def test_only_filings_made_by_a_date_are_known_on_it() -> None:
    early = fact("revenue", 90 * M, "FY2024", filed_on=dt.date(2025, 3, 1))
    late = fact("revenue", 95 * M, "FY2024", filed_on=dt.date(2025, 7, 1))
    sheet = FactSheet(facts=(early, late))
    assert sheet.filed_by(dt.date(2025, 6, 30)).latest(FactName.revenue) == early
    assert sheet.filed_by(dt.date(2025, 7, 1)).latest(FactName.revenue) == late


@pytest.mark.parametrize(("name", "value", "problem"), [
    ("revenue", "90000000", "integer"),
    ("revenue", 90.5, "integer"),
    ("revenue", True, "integer"),
    ("revenue", -1, "negative"),
    ("weighted_roe", 8, "decimal string"),
    ("weighted_roe", "eight", "decimal string"),
    ("weighted_roe", "NaN", "finite"),
    ("joint_stock_converted", 1, "true or false"),
    ("audit_opinion", "clean", "one of"),
    ("specialised_level", "national", "one of"),
    ("penalties", -1, "negative"),
])
def test_a_fact_must_have_the_type_of_its_name(name: str, value: object, problem: str) -> None:
    with pytest.raises(InvalidFact, match=problem) as refused:
        fact(name, value, "FY2024")  # type: ignore[arg-type]
    assert refused.value.code == "listing.fact_invalid"


def test_net_profit_and_cash_flow_may_be_negative() -> None:
    assert fact("net_profit", -5 * M, "FY2024").value == -5 * M
    assert fact("operating_cash_flow", -1, "FY2024").value == -1
    assert fact("weighted_roe", "-0.03", "FY2024").value == "-0.03"


@pytest.mark.parametrize("period", ["FY2024", "2025-01-01..2025-06-30", "2025-06-30"])
def test_a_period_is_a_fiscal_year_a_date_range_or_a_date(period: str) -> None:
    assert fact("revenue", 1, period).period.text == period


def test_a_fiscal_year_is_the_calendar_year() -> None:
    fy = parse_period("FY2024")
    assert (fy.start, fy.end, fy.fiscal_year) == (dt.date(2024, 1, 1), dt.date(2024, 12, 31), 2024)


@pytest.mark.parametrize("period", ["2024", "FY24", "2025-06-30..2025-01-01", "2025-02-30", "H1 2025"])
def test_a_malformed_period_is_refused(period: str) -> None:
    with pytest.raises(InvalidFact, match="period"):
        fact("revenue", 1, period)


@pytest.mark.parametrize("digest", ["", "a" * 63, "A" * 64, "g" * 64])
def test_the_source_document_digest_is_a_lowercase_sha256(digest: str) -> None:
    with pytest.raises(InvalidFact, match="SHA-256"):
        fact("revenue", 1, "FY2024", digest=digest)


def test_a_correction_must_name_a_filing_of_the_same_fact_and_period() -> None:
    filing = FileFact(name=FactName.revenue, value=2, fiscal_period="FY2024", source_document_digest=DIGEST,
                      corrects=7)
    domain.check_correction("U", filing, ("revenue", "2024-01-01..2024-12-31"))  # the same period, spelt otherwise
    for corrected in (None, ("net_profit", "FY2024"), ("revenue", "FY2023")):
        with pytest.raises(domain.CorrectionMismatch):
            domain.check_correction("U", filing, corrected)


def test_a_move_approved_after_the_enterprise_moved_is_stale() -> None:
    domain.check_stage_unchanged("U", None, None)
    with pytest.raises(domain.StageChangedSinceRequest) as refused:
        domain.check_stage_unchanged("U", Stage.incubation, Stage.standardisation)
    assert refused.value.figures == {"uscc": "U", "requested_from": "incubation", "now": "standardisation"}


def test_a_filing_decodes_from_json_and_becomes_a_recorded_fact() -> None:
    filing = msgspec.json.decode(
        b'{"name": "weighted_roe", "value": "0.081", "fiscal_period": "FY2024", '
        b'"source_document_digest": "' + DIGEST.encode() + b'", "corrects": 7}', type=FileFact)
    recorded = Fact.recorded(filing, position=8, filed_on=FILED)
    assert (recorded.value, recorded.corrects, recorded.position) == ("0.081", 7, 8)
    with pytest.raises(msgspec.ValidationError, match="decimal string"):
        msgspec.json.decode(b'{"name": "weighted_roe", "value": 8, "fiscal_period": "FY2024", '
                            b'"source_document_digest": "' + DIGEST.encode() + b'"}', type=FileFact)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"name": "revenue", "value": 1, "fiscal_period": "FY2024", "colour": 1, '
                            b'"source_document_digest": "' + DIGEST.encode() + b'"}', type=FileFact)


# -- BSE: the four standards ----------------------------------------------------------------

TO_BSE = Move(from_stage=S.neeq_innovation, to_stage=S.bse_application)


def bse_common(**overrides: int) -> list[Fact]:
    """What every BSE applicant in these tests has: 12 months on NEEQ, RMB 50m net assets, no penalties."""
    figures = {"months_listed_on_neeq": 12, "net_assets": 50 * M, "penalties": 0} | overrides
    return [fact("months_listed_on_neeq", figures["months_listed_on_neeq"], "2025-03-31"),
            fact("net_assets", figures["net_assets"], "FY2024"),
            fact("penalties", figures["penalties"], "2025-03-31")]


def yearly(name: str, fy2023: int | str, fy2024: int | str) -> list[Fact]:
    return [fact(name, fy2023, "FY2023"), fact(name, fy2024, "FY2024")]


def company(market_value: int, *, net_profit: tuple[int, int] = (1 * M, 1 * M),
            roe: tuple[str, str] = ("0.01", "0.01"), revenue: tuple[int, int] = (10 * M, 10 * M),
            rd: tuple[int, int] = (0, 0), cash_flow: int = -1) -> list[Fact]:
    """An applicant that meets no standard until the figures given say so."""
    return [
        *bse_common(),
        fact("expected_market_value", market_value, "2025-03-31"),
        *yearly("net_profit", *net_profit),
        *yearly("weighted_roe", *roe),
        *yearly("revenue", *revenue),
        *yearly("rd_spend", *rd),
        fact("operating_cash_flow", cash_flow, "FY2024"),
    ]


BSE_ALONE = {
    # 1: market value ≥ 200m, net profit ≥ 15m in each of 2 years, average ROE ≥ 8%
    "1a": company(200 * M, net_profit=(15 * M, 15 * M), roe=("0.08", "0.08")),
    # 1: market value ≥ 200m, last-year net profit ≥ 25m, ROE ≥ 8%
    "1b": company(200 * M, net_profit=(-1 * M, 25 * M), roe=("0.00", "0.08")),
    # 2: market value ≥ 400m, 2-year average revenue ≥ 100m, growth ≥ 30%, positive operating cash flow
    "2": company(400 * M, revenue=(87 * M, 113_100_000 * RMB), cash_flow=1),
    # 3: market value ≥ 800m, last-year revenue ≥ 200m, 2-year R&D / revenue ≥ 8%
    "3": company(800 * M, revenue=(200 * M, 200 * M), rd=(16 * M, 16 * M)),
    # 4: market value ≥ 1.5bn, 2-year R&D ≥ 50m
    "4": company(1_500 * M, revenue=(100 * M, 100 * M), rd=(25 * M, 25 * M)),
}


@pytest.mark.parametrize("standard", list(BSE_ALONE))
def test_each_bse_standard_met_alone_is_enough(standard: str) -> None:
    ev = evaluate(BOOKS, TO_BSE, BSE_ALONE[standard], ON)
    (result,) = ev.rulebooks
    (group,) = result.any_of
    assert (result.rulebook_id, result.version) == ("bse_listing", 2)
    assert group.met == (standard,)
    assert ev.passed and ev.gaps() == ()


@pytest.mark.parametrize("standard", list(BSE_ALONE))
def test_each_bse_standard_fails_with_its_market_value_a_fen_short(standard: str) -> None:
    facts = [f for f in BSE_ALONE[standard] if f.name is not FactName.expected_market_value]
    value = next(f.value for f in BSE_ALONE[standard] if f.name is FactName.expected_market_value)
    assert isinstance(value, int)
    ev = evaluate(BOOKS, TO_BSE, [*facts, fact("expected_market_value", value - 1, "2025-03-31")], ON)
    assert not ev.passed
    assert ev.rulebooks[0].any_of[0].met == ()


def test_with_no_bse_standard_met_every_standards_failures_are_listed() -> None:
    strong = company(199_999_999 * RMB + 99, net_profit=(30 * M, 30 * M), roe=("0.20", "0.20"),
                     revenue=(300 * M, 400 * M), rd=(60 * M, 60 * M), cash_flow=10 * M)
    ev = evaluate(BOOKS, TO_BSE, strong, ON)
    (group,) = ev.rulebooks[0].any_of
    assert not ev.passed and not group.passed and group.met == ()
    gaps = ev.gaps()
    assert {(g.standard, g.criterion.id) for g in gaps} == {(s, "market_value") for s in ("1a", "1b", "2", "3", "4")}
    assert all(g.criterion.figure == 199_999_999 * RMB + 99 for g in gaps)


def test_an_evaluation_reports_every_criterion_with_figure_period_source_and_threshold() -> None:
    ev = evaluate(BOOKS, TO_BSE, BSE_ALONE["2"], ON)
    result = ev.rulebooks[0]
    assert [c.id for c in result.all_of] == ["months_on_neeq", "net_assets", "no_penalties"]
    assert [len(s.criteria) for s in result.any_of[0].standards] == [3, 3, 4, 3, 2]
    growth = next(c for c in result.any_of[0].standards[2].criteria if c.id == "revenue_growth")
    assert growth.passed and growth.figure == "0.3" and growth.threshold == Decimal("0.30")
    assert growth.period == "FY2023, FY2024" and growth.unit == "ratio"
    assert [(u.fiscal_period, u.value, u.source_document_digest) for u in growth.inputs] == [
        ("FY2023", 87 * M, DIGEST), ("FY2024", 113_100_000 * RMB, DIGEST)]
    average = next(c for c in result.any_of[0].standards[2].criteria if c.id == "revenue_average_2y")
    assert average.figure == "10005000000" and average.passed
    assert (growth.confidence, growth.owner, growth.sources) == ("S2", Owner.regulation, ("src-13", "src-13b"))


def test_an_evaluation_survives_a_json_round_trip() -> None:
    ev = evaluate(BOOKS, TO_BSE, BSE_ALONE["3"], ON)
    assert msgspec.json.decode(msgspec.json.encode(ev), type=Evaluation) == ev


def test_a_missing_fact_fails_its_criterion_with_no_figure_and_says_missing() -> None:
    facts = [f for f in BSE_ALONE["1a"] if not (f.name is FactName.net_profit and f.fiscal_period == "FY2023")]
    ev = evaluate(BOOKS, TO_BSE, facts, ON)
    each = next(c for c in ev.rulebooks[0].any_of[0].standards[0].criteria if c.id == "net_profit_each_2y")
    assert not each.passed and each.figure is None
    assert each.missing == ("net_profit FY2023",) and each.note == "missing: net_profit FY2023"
    assert not ev.passed


def test_a_correction_changes_the_verdict_and_the_evaluation_cites_the_correction() -> None:
    facts = [*BSE_ALONE["1a"], fact("net_profit", 14_999_999 * RMB, "FY2024", digest=CORRECTED)]
    ev = evaluate(BOOKS, TO_BSE, facts, ON)
    each = ev.rulebooks[0].any_of[0].standards[0].criteria[1]
    assert not each.passed and each.figure == 14_999_999 * RMB
    assert CORRECTED in {u.source_document_digest for u in each.inputs}


def test_a_filing_made_after_the_evaluation_date_is_not_used() -> None:
    late = fact("expected_market_value", 2_000 * M, "2025-07-31", filed_on=dt.date(2025, 8, 1))
    ev = evaluate(BOOKS, TO_BSE, [*BSE_ALONE["1a"], late], ON)
    assert ev.rulebooks[0].any_of[0].standards[0].criteria[0].figure == 200 * M


def test_the_fiscal_year_is_the_latest_full_year_filed_unless_given() -> None:
    assert evaluate(BOOKS, TO_BSE, BSE_ALONE["1a"], ON).fiscal_year == 2024
    assert evaluate(BOOKS, TO_BSE, BSE_ALONE["1a"], ON, fiscal_year=2025).fiscal_year == 2025
    # FY2025 is not over on 2025-06-30: a figure filed for it does not move FY N.
    early = [*BSE_ALONE["1a"], fact("revenue", 1, "FY2025")]
    assert evaluate(BOOKS, TO_BSE, early, ON).fiscal_year == 2024


def test_evaluating_a_move_that_is_not_allowed_is_refused() -> None:
    with pytest.raises(MoveNotAllowed):
        evaluate(BOOKS, Move(from_stage=S.neeq_base, to_stage=S.bse_application), BSE_ALONE["1a"], ON)


def test_a_move_no_rulebook_governs_passes_with_no_criteria() -> None:
    ev = evaluate(BOOKS, Move(from_stage=S.cultivation, to_stage=S.exited), [], ON)
    assert ev.passed and ev.rulebooks == ()


def test_listing_straight_into_the_innovation_tier_is_judged_by_both_neeq_rulebooks() -> None:
    ev = evaluate(BOOKS, Move(from_stage=S.neeq_application, to_stage=S.neeq_innovation), [], ON)
    assert [(r.rulebook_id, r.version) for r in ev.rulebooks] == [("neeq_innovation", 1), ("neeq_listing", 2)]


def test_a_listing_after_the_offering_adds_the_offering_conditions() -> None:
    offering = [fact("public_offering_shares", 1_000_000, "2025-05-31"),
                fact("offering_subscriber_count", 100, "2025-05-31"),
                fact("share_capital", 30 * M, "2025-05-31"),
                fact("shareholder_count", 200, "2025-05-31"),
                fact("public_float_ratio", "0.25", "2025-05-31")]
    listed = Move(from_stage=S.bse_application, to_stage=S.bse_listed)
    assert evaluate(BOOKS, listed, [*BSE_ALONE["4"], *offering], ON).passed
    thin = [*BSE_ALONE["4"], *offering, fact("public_float_ratio", "0.2499", "2025-05-31")]
    ev = evaluate(BOOKS, listed, thin, ON)
    assert not ev.passed
    assert {g.group for g in ev.gaps()} == {"public_float"}


def test_a_float_of_ten_percent_is_enough_above_rmb_400m_share_capital() -> None:
    offering = [fact("public_offering_shares", 5_000_000, "2025-05-31"),
                fact("offering_subscriber_count", 300, "2025-05-31"),
                fact("share_capital", 400 * M + 1, "2025-05-31"),
                fact("shareholder_count", 2_000, "2025-05-31"),
                fact("public_float_ratio", "0.10", "2025-05-31")]
    ev = evaluate(BOOKS, Move(from_stage=S.bse_application, to_stage=S.bse_listed), [*BSE_ALONE["4"], *offering], ON)
    assert ev.passed and ev.rulebooks[0].any_of[1].met == ("10pct_large",)


# -- NEEQ listing: the five 2023 standards --------------------------------------------------

TO_NEEQ = Move(from_stage=S.listing_reserve, to_stage=S.neeq_application)


def neeq_applicant(*extra: Fact) -> list[Fact]:
    """Meets the common conditions and no financial standard, until `extra` says otherwise."""
    return [fact("operating_years", 2, "2025-03-31"), fact("joint_stock_converted", True, "2025-03-31"),
            fact("sponsor_broker_engaged", True, "2025-03-31"), fact("share_capital", 5 * M, "2025-03-31"),
            fact("net_assets", 5 * M, "2025-03-31"), fact("penalties", 0, "2025-03-31"),
            *yearly("net_profit", -1, -1), *yearly("revenue", 1 * M, 1 * M), *yearly("rd_spend", 0, 0),
            *yearly("operating_cash_flow", -1, -1),
            # filed after the baseline, so they supersede it
            *(msgspec.structs.replace(f, position=next(_positions)) for f in extra)]


NEEQ_ALONE = {
    # 1: net profit positive in both years and ≥ 8m in total (but < 6m last year) …
    "1a": [*yearly("net_profit", 3 * M, 5 * M)],
    # … or ≥ 6m last year
    "1b": [*yearly("net_profit", -1, 6 * M)],
    # 2: average revenue ≥ 30m and last-year growth ≥ 20% …
    "2a": [*yearly("revenue", 25 * M, 35 * M)],
    # … or average revenue ≥ 50m and positive operating cash flow in both years
    "2b": [*yearly("revenue", 50 * M, 50 * M), *yearly("operating_cash_flow", 1, 1)],
    # 3: last-year revenue ≥ 30m and 2-year R&D / 2-year revenue ≥ 5%
    "3": [*yearly("revenue", 10 * M, 30 * M), *yearly("rd_spend", 1 * M, 1 * M)],
    # 4: 2-year R&D ≥ 10m and equity financing ≥ 20m
    "4": [*yearly("rd_spend", 5 * M, 5 * M), fact("equity_financing", 20 * M, "2025-03-31")],
    # 5: ≥ 4 market makers and a placement valuing the company at ≥ 100m
    "5": [fact("market_maker_count", 4, "2025-03-31"), fact("placement_market_value", 100 * M, "2025-03-31")],
}


@pytest.mark.parametrize("standard", list(NEEQ_ALONE))
def test_each_neeq_2023_standard_met_alone_is_enough(standard: str) -> None:
    ev = evaluate(BOOKS, TO_NEEQ, neeq_applicant(*NEEQ_ALONE[standard]), ON)
    (result,) = ev.rulebooks
    assert (result.rulebook_id, result.version) == ("neeq_listing", 2)
    assert result.any_of[0].met == (standard,)
    assert ev.passed


def test_with_no_neeq_standard_met_the_application_fails_but_the_common_conditions_pass() -> None:
    ev = evaluate(BOOKS, TO_NEEQ, neeq_applicant(), ON)
    assert not ev.passed and ev.rulebooks[0].any_of[0].met == ()
    assert all(c.passed for c in ev.rulebooks[0].all_of)


def test_net_assets_per_share_is_net_assets_over_share_capital() -> None:
    ev = evaluate(BOOKS, TO_NEEQ, neeq_applicant(fact("net_assets", 5 * M - 1, "2025-04-30"),
                                                 *NEEQ_ALONE["5"]), ON)
    per_share = next(c for c in ev.rulebooks[0].all_of if c.id == "net_assets_per_share")
    assert not per_share.passed and per_share.figure == "0.999999"  # 0.9999998 shown floored, never rounded up
    assert not ev.passed


# -- versioning ------------------------------------------------------------------------------


def known_in_2023(facts: list[Fact]) -> list[Fact]:
    """The same company two years earlier: FY2021/FY2022 figures filed on 2023-07-01."""
    shift = {"FY2023": "FY2021", "FY2024": "FY2022", "2025-03-31": "2023-06-30"}
    return [msgspec.structs.replace(f, fiscal_period=shift[f.fiscal_period], filed_on=dt.date(2023, 7, 1))
            for f in facts]


def test_an_evaluation_dated_before_a_new_version_uses_the_old_one_and_says_so() -> None:
    # 12 months on NEEQ in total, but only 6 of them in the innovation tier.
    facts = known_in_2023([*BSE_ALONE["1a"], fact("months_in_neeq_innovation_tier", 6, "2025-03-31")])
    before = evaluate(BOOKS, TO_BSE, facts, dt.date(2023, 8, 31))
    after = evaluate(BOOKS, TO_BSE, facts, dt.date(2023, 9, 1))
    assert before.fiscal_year == after.fiscal_year == 2022
    assert (before.rulebooks[0].version, before.rulebooks[0].effective_from) == (1, dt.date(2021, 11, 15))
    assert (after.rulebooks[0].version, after.rulebooks[0].effective_from) == (2, dt.date(2023, 9, 1))
    (gap,) = before.gaps()
    assert (gap.criterion.id, gap.criterion.figure, gap.criterion.threshold) == ("months_in_innovation_tier", 6, 12)
    assert after.passed


def published(rb: Rulebook, *, version: int, effective_from: dt.date, threshold: int) -> Rulebook:
    """`rb` re-published with a new months-on-NEEQ threshold."""
    req = rb.moves[0]
    months = msgspec.structs.replace(req.all_of[0], threshold=threshold)
    moves = (msgspec.structs.replace(req, all_of=(months, *req.all_of[1:])), *rb.moves[1:])
    return msgspec.structs.replace(rb, version=version, effective_from=effective_from, moves=moves)


def test_an_operator_published_version_applies_from_its_effective_date_only() -> None:
    v2 = next(rb for rb in BOOKS if rb.id == "bse_listing" and rb.version == 2)
    v3 = published(v2, version=3, effective_from=dt.date(2026, 1, 1), threshold=18)
    check_publishable(BOOKS, v3, today=dt.date(2025, 12, 1))
    books = (*BOOKS, v3)
    facts = [f if f.name is not FactName.months_listed_on_neeq else fact("months_listed_on_neeq", 12, "2025-12-31")
             for f in BSE_ALONE["1a"]]
    old = evaluate(books, TO_BSE, facts, dt.date(2025, 12, 31), fiscal_year=2024)
    new = evaluate(books, TO_BSE, facts, dt.date(2026, 1, 1), fiscal_year=2024)
    assert old.passed and old.rulebooks[0].version == 2
    assert not new.passed and new.rulebooks[0].version == 3
    (gap,) = new.gaps()
    assert (gap.criterion.id, gap.criterion.figure, gap.criterion.threshold) == ("months_on_neeq", 12, 18)


def test_a_new_version_must_be_the_next_number() -> None:
    v2 = next(rb for rb in BOOKS if rb.id == "bse_listing" and rb.version == 2)
    for version in (2, 4):
        with pytest.raises(RulebookVersionConflict) as refused:
            check_publishable(BOOKS, published(v2, version=version, effective_from=dt.date(2026, 1, 1), threshold=12),
                              today=dt.date(2025, 12, 1))
        assert refused.value.figures["expected"] == 3


def test_a_new_version_cannot_take_effect_in_the_past() -> None:
    v2 = next(rb for rb in BOOKS if rb.id == "bse_listing" and rb.version == 2)
    with pytest.raises(RulebookBackdated):
        check_publishable(BOOKS, published(v2, version=3, effective_from=dt.date(2025, 11, 30), threshold=12),
                          today=dt.date(2025, 12, 1))
    with pytest.raises(RulebookBackdated):
        check_publishable(BOOKS, published(v2, version=3, effective_from=dt.date(2023, 9, 1), threshold=12),
                          today=dt.date(2023, 1, 1))


def test_a_brand_new_rulebook_starts_at_version_one() -> None:
    v2 = next(rb for rb in BOOKS if rb.id == "bse_listing" and rb.version == 2)
    fresh = msgspec.structs.replace(published(v2, version=1, effective_from=dt.date(2026, 1, 1), threshold=12),
                                    id="bse_listing_pilot")
    check_publishable(BOOKS, fresh, today=dt.date(2025, 12, 1))


def test_before_any_version_takes_effect_the_rulebook_is_not_in_force() -> None:
    with pytest.raises(NoRulebookInForce) as refused:
        evaluate(BOOKS, TO_BSE, BSE_ALONE["1a"], dt.date(2021, 11, 14))
    assert refused.value.figures == {"rulebook_id": "bse_listing", "on_date": "2021-11-14", "earliest": "2021-11-15"}


# -- measures -------------------------------------------------------------------------------


def criterion(**fields: object) -> Criterion:
    return msgspec.convert({"id": "c", "label": "测试", "confidence": "I", **fields}, Criterion)


def measured(c: Criterion, *facts: Fact) -> domain.CriterionResult:
    return evaluate_criterion(c, FactSheet(facts=facts), 2024, owner=Owner.operator)


def test_growth_from_a_loss_or_zero_is_undefined_and_fails() -> None:
    c = criterion(fact="revenue", measure="growth", op=">=", threshold="0.30")
    result = measured(c, *yearly("revenue", 0, 10 * M))
    assert not result.passed and result.figure is None and "undefined" in result.note


def test_compound_growth_compares_exactly_at_the_threshold() -> None:
    c = criterion(fact="revenue", measure="cagr", years=2, op=">=", threshold="0.30")
    at = measured(c, fact("revenue", 100 * M, "FY2022"), *yearly("revenue", 130 * M, 169 * M))
    below = measured(c, fact("revenue", 100 * M, "FY2022"), *yearly("revenue", 130 * M, 169 * M - 1))
    assert at.passed and at.figure == "0.3"
    assert not below.passed and Decimal(str(below.figure)) < Decimal("0.3")


def test_each_year_reports_the_weakest_year() -> None:
    c = criterion(fact="net_profit", measure="each_year", years=2, op=">=", threshold=15 * M)
    result = measured(c, *yearly("net_profit", 14 * M, 40 * M))
    assert not result.passed and result.figure == 14 * M and result.period == "FY2023, FY2024"


def test_a_ratio_of_sums_with_no_revenue_is_undefined() -> None:
    c = criterion(fact="rd_spend", measure="ratio_of_sums", per="revenue", op=">=", threshold="0.08")
    result = measured(c, *yearly("rd_spend", 1, 1), *yearly("revenue", 0, 0))
    assert not result.passed and "undefined" in result.note


def test_an_average_of_ratios_is_exact() -> None:
    c = criterion(fact="weighted_roe", measure="average", op=">=", threshold="0.08")
    assert measured(c, *yearly("weighted_roe", "0.07", "0.09")).figure == "0.08"
    assert not measured(c, *yearly("weighted_roe", "0.07", "0.0899")).passed


def test_a_vocabulary_criterion_reports_the_word_filed() -> None:
    c = criterion(fact="audit_opinion", op="in", threshold=["standard_unqualified"])
    result = measured(c, fact("audit_opinion", "qualified", "FY2024"))
    assert not result.passed and result.figure == "qualified" and result.unit == "text"


def test_criterion_operators_cover_the_comparisons() -> None:
    for op, expected in ((">=", True), (">", False), ("<=", True), ("<", False), ("==", True)):
        c = criterion(fact="invention_patents", op=op, threshold=3)
        assert measured(c, fact("invention_patents", 3, "2025-03-31")).passed is expected, op
    flag = criterion(fact="joint_stock_converted", op="is_false")
    assert measured(flag, fact("joint_stock_converted", False, "2025-03-31")).passed
    assert Operator("in") is Operator.one_of and Measure("ratio_latest") is Measure.ratio_latest


# -- what is missing for the next step ------------------------------------------------------


def test_what_is_missing_lists_each_next_step_with_its_failed_criteria() -> None:
    facts = [fact("joint_stock_converted", True, "2025-03-31"), fact("operating_years", 1, "2025-03-31"),
             fact("audit_opinion", "standard_unqualified", "FY2024"), fact("penalties", 0, "2025-03-31")]
    (step,) = missing_for_next_step(BOOKS, S.cultivation, facts, ON)
    assert (step.to_stage, step.to_stage_name, step.passed) == (S.listing_reserve, "上市后备库", False)
    assert [(g.criterion.id, g.criterion.figure) for g in step.gaps] == [("track_record", 1), ("sponsor_broker", None)]
    assert step.gaps[1].criterion.missing == ("sponsor_broker_engaged (no filing)",)
    assert step.evaluation.rulebooks[0].rulebook_id == "market_tiers"


def test_what_is_missing_for_an_applicant_covers_all_three_tiers() -> None:
    steps = missing_for_next_step(BOOKS, S.applied, [fact("invention_patents", 2, "2025-03-31"),
                                                    fact("penalties", 0, "2025-03-31")], ON)
    assert [(s.to_stage, s.passed) for s in steps] == [
        (S.incubation, True), (S.standardisation, False), (S.cultivation, False)]


def test_a_suspended_enterprise_has_no_next_step() -> None:
    assert missing_for_next_step(BOOKS, S.suspended, [], ON) == ()


def test_what_is_missing_for_the_bse_names_the_short_standards() -> None:
    facts = [*bse_common(), fact("expected_market_value", 100 * M, "2025-03-31")]
    (step,) = missing_for_next_step(BOOKS, S.neeq_innovation, facts, ON)
    assert (step.to_stage, step.passed) == (S.bse_application, False)
    assert {g.standard for g in step.gaps} == {"1a", "1b", "2", "3", "4"}
    assert all(g.group == "market_value_standard" for g in step.gaps)
    assert ("2", "revenue_growth", ("revenue FY2023", "revenue FY2024")) in {
        (g.standard, g.criterion.id, g.criterion.missing) for g in step.gaps}


# -- overrides --------------------------------------------------------------------------------


def test_a_failed_evaluation_needs_an_override_with_a_reason() -> None:
    ev = evaluate(BOOKS, TO_BSE, bse_common(months_listed_on_neeq=11), ON)
    for reason in (None, "", "   "):
        with pytest.raises(OverrideRequired) as refused:
            check_override(ev, reason)
    assert "bse_listing:months_on_neeq" in refused.value.figures["failed"]
    assert "bse_listing:market_value_standard/1a/market_value" in refused.value.figures["failed"]
    assert refused.value.figures["rulebooks"] == ["bse_listing v2"]
    check_override(ev, "CSRC exemption letter 2025-17")


def test_a_passed_evaluation_needs_no_override() -> None:
    check_override(evaluate(BOOKS, TO_BSE, BSE_ALONE["4"], ON), None)


# -- boards and security codes --------------------------------------------------------------


def test_a_security_code_is_the_board_prefix_and_a_sequence() -> None:
    assert new_security_code(S.standardisation, 7) == "820007"
    assert new_security_code(S.incubation, 9999) == "819999"


def test_a_retired_code_is_never_issued_again() -> None:
    with pytest.raises(SecurityCodeReused) as refused:
        new_security_code(S.cultivation, 3, used_codes={"830003"})
    assert refused.value.figures["code"] == "830003"


def test_the_next_code_follows_the_highest_ever_issued_leaving_retired_gaps_empty() -> None:
    used = {"820001", "820005", "810002"}  # 820002-820004 were issued and retired by board changes
    assert next_security_code(S.standardisation, used) == "820006"
    assert next_security_code(S.cultivation, used) == "830001"


def test_codes_run_out_at_the_end_of_the_sequence() -> None:
    with pytest.raises(SecurityCodesExhausted):
        next_security_code(S.incubation, {"819999"})
    with pytest.raises(SecurityCodesExhausted):
        new_security_code(S.incubation, 0)


def test_only_boards_have_codes() -> None:
    with pytest.raises(NotABoard):
        new_security_code(S.listing_reserve, 1)


def test_a_board_change_is_a_move_between_two_boards() -> None:
    assert is_board_change(S.incubation, S.standardisation)
    assert is_board_change(S.cultivation, S.standardisation)
    assert not is_board_change(S.cultivation, S.listing_reserve)
    assert not is_board_change(S.applied, S.incubation)


@pytest.mark.parametrize(("holdings", "warrants"), [(1, 0), (0, 1), (3, 2)])
def test_a_board_change_is_refused_while_anything_is_frozen(holdings: int, warrants: int) -> None:
    with pytest.raises(BoardChangeWhileFrozen) as refused:
        check_board_change(S.standardisation, S.cultivation, frozen_holdings=holdings, frozen_warrant_series=warrants)
    assert refused.value.figures["frozen_holdings"] == holdings
    assert refused.value.figures["frozen_warrant_series"] == warrants
    assert refused.value.code == "listing.board_change_frozen"


def test_a_board_change_with_nothing_frozen_goes_ahead() -> None:
    check_board_change(S.standardisation, S.cultivation, frozen_holdings=0, frozen_warrant_series=0)


# -- purity -----------------------------------------------------------------------------------


def test_the_listing_domain_imports_only_the_standard_library_msgspec_and_pure_registry_modules() -> None:
    allowed_registry = {"registry.errors", "registry.fields", "registry.parties.domain", "registry.listing.domain"}
    for module in (domain, sys.modules["registry.listing.rulebooks"]):
        tree = ast.parse(Path(str(module.__file__)).read_text(encoding="utf-8"))
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
        assert outside <= {"msgspec"} | allowed_registry, module.__name__
    assert not any(isinstance(n, ast.AsyncFunctionDef) for n in ast.walk(ast.parse(
        Path(str(domain.__file__)).read_text(encoding="utf-8"))))


def test_importing_the_listing_domain_loads_no_web_or_database_library() -> None:
    code = ("import sys, registry.listing.domain, registry.listing.rulebooks; "
            "print(sorted(m for m in ('litestar', 'piccolo', 'asyncpg') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_database_checks_the_same_stage_board_and_party_vocabularies_as_the_code() -> None:
    import re

    from registry.parties.domain import SpecialisedLevel
    from registry.parties.qualification import QualificationCategory

    sql = (Path(__file__).parents[2] / "migrations" / "registry_2026_11_26t14_30_00_000000.sql").read_text()

    def checked(constraint: str) -> set[str]:
        listed = re.search(rf"{constraint} CHECK \(\w+ IN \(([^)]*)\)", sql)
        assert listed is not None, constraint
        return set(re.findall(r"'(\w+)'", listed.group(1)))

    stages = {str(s) for s in Stage}
    for column in ("listing_stage_stage", "listing_move_from_stage", "listing_move_to_stage"):
        assert checked(f"{column}_known") == stages
    assert checked("listing_stage_suspended_from_known") == {str(s) for s in domain._LISTED}
    boards = {str(b) for b in domain.DEFAULT_BOARD_PREFIXES}
    assert checked("listing_stage_board_known") == checked("security_code_board_known") == boards
    assert checked("qualification_category_known") == {c.value for c in QualificationCategory}
    assert checked("enterprise_specialised_level_known") == {str(s) for s in SpecialisedLevel}
