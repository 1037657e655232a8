"""The shipped rulebooks: every file loads and is sound, carries the brief's figures with their
confidence, and every threshold holds just above and fails just below."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest

from registry.listing.domain import (
    FACTS,
    Confidence,
    Criterion,
    Fact,
    FactKind,
    FactName,
    FactSheet,
    Measure,
    Move,
    Operator,
    Owner,
    Rulebook,
    RulebookInvalid,
    Stage,
    evaluate_criterion,
    in_force,
    rulebook_set_problems,
)
from registry.listing.rulebooks import parse_rulebook, shipped_files, shipped_rulebooks

RMB = 100  # fen per yuan
M = 1_000_000 * RMB  # fen per RMB million
DIGEST = "c" * 64
FY = 2024
FILED = dt.date(2025, 3, 31)
BOOKS = shipped_rulebooks()


def book(rulebook_id: str, version: int) -> Rulebook:
    (found,) = [rb for rb in BOOKS if rb.id == rulebook_id and rb.version == version]
    return found


def every_criterion() -> Iterator[tuple[Rulebook, str, str, Criterion]]:
    """(rulebook, move, where, criterion) for every criterion as written in the files."""
    for rb in BOOKS:
        for req in rb.moves:
            for c in req.all_of:
                yield rb, req.move, "all_of", c
            for g in req.any_of:
                for s in g.standards:
                    for c in s.criteria:
                        yield rb, req.move, f"{g.id}/{s.id}", c


CRITERIA = list(every_criterion())


def criterion_id(case: tuple[Rulebook, str, str, Criterion]) -> str:
    rb, move, where, c = case
    return f"{rb.id}-v{rb.version}-{move}-{where}-{c.id}"


# -- files ----------------------------------------------------------------------------------


def test_the_four_rulebooks_ship_in_six_versions() -> None:
    assert [(rb.id, rb.version, rb.effective_from) for rb in BOOKS] == [
        ("bse_listing", 1, dt.date(2021, 11, 15)),
        ("bse_listing", 2, dt.date(2023, 9, 1)),
        ("market_tiers", 1, dt.date(2024, 1, 1)),
        ("neeq_innovation", 1, dt.date(2021, 11, 15)),
        ("neeq_listing", 1, dt.date(2017, 9, 9)),
        ("neeq_listing", 2, dt.date(2023, 2, 17)),
    ]


def test_every_shipped_file_loads_and_is_named_after_its_id_and_version() -> None:
    files = shipped_files()
    assert len(files) == len(BOOKS)
    for f in files:
        rb = parse_rulebook(f.read_text(encoding="utf-8"), name=f.name)
        assert f.name == f"v{rb.version}.toml"


def test_ids_and_versions_are_unique_and_later_versions_take_effect_later() -> None:
    keys = [(rb.id, rb.version) for rb in BOOKS]
    assert len(keys) == len(set(keys))
    assert rulebook_set_problems(BOOKS) == []


@pytest.mark.parametrize("case", CRITERIA, ids=criterion_id)
def test_every_threshold_is_typed_as_its_figure(case: tuple[Rulebook, str, str, Criterion]) -> None:
    _, _, _, c = case
    kind = FACTS[c.fact].kind
    if c.measure is Measure.increasing or kind is FactKind.flag:
        assert c.op in (Operator.is_true, Operator.is_false) and c.threshold is None
    elif kind is FactKind.text:
        assert isinstance(c.threshold, tuple) and all(isinstance(w, str) for w in c.threshold)
    elif kind is FactKind.ratio or c.measure in (Measure.growth, Measure.cagr, Measure.ratio_of_sums,
                                                 Measure.ratio_latest):
        assert isinstance(c.threshold, Decimal)
    else:
        assert type(c.threshold) is int


def test_every_rulebook_carries_provenance_notes_and_a_confidence_on_every_criterion() -> None:
    for rb in BOOKS:
        assert rb.provenance and rb.notes
        refs = {p.ref for p in rb.provenance}
        for r, _, _, c in CRITERIA:
            if r is rb:
                assert isinstance(c.confidence, Confidence)
                assert c.sources and set(c.sources) <= refs


def test_the_market_tiers_are_all_the_operators_to_set_and_none_claims_a_source_text() -> None:
    rb = book("market_tiers", 1)
    assert rb.owner is Owner.operator
    for r, _, _, c in CRITERIA:
        if r is rb:
            assert c.owner in (None, Owner.operator)
            assert c.confidence in (Confidence.M, Confidence.I)
    assert any("NOT FOUND" in note for note in rb.notes)


def test_the_unverified_2023_neeq_figures_say_so() -> None:
    for rb in (book("neeq_listing", 2), book("neeq_innovation", 1)):
        financial = [c for r, _, where, c in CRITERIA if r is rb and where != "all_of"]
        assert financial and all(c.confidence is Confidence.M for c in financial)
        assert any("recollection" in note for note in rb.notes)


def test_the_bse_standards_are_secondary_sources_and_the_unsure_dates_are_flagged() -> None:
    v2 = book("bse_listing", 2)
    standards = [c for r, _, where, c in CRITERIA if r is v2 and where.startswith("market_value_standard")]
    assert standards and all(c.confidence is Confidence.S2 for c in standards)
    assert any("effective_from 2023-09-01 is an assumption" in n for n in v2.notes)


# The brief's figures (§2.4, §2.6), one row per threshold: a typo in a file fails here.
FIGURES = [
    # rulebook, version, move, where, criterion, threshold
    ("bse_listing", 2, "neeq_innovation->bse_application", "all_of", "months_on_neeq", 12),
    ("bse_listing", 1, "neeq_innovation->bse_application", "all_of", "months_in_innovation_tier", 12),
    ("bse_listing", 2, "neeq_innovation->bse_application", "all_of", "net_assets", 50 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/1a", "market_value", 200 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/1a", "net_profit_each_2y", 15 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/1a", "roe_average_2y", Decimal("0.08")),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/1b", "net_profit_last_year", 25 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/1b", "roe_last_year", Decimal("0.08")),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/2", "market_value", 400 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/2", "revenue_average_2y", 100 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/2", "revenue_growth", Decimal("0.30")),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/2", "operating_cash_flow_positive", 0),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/3", "market_value", 800 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/3", "revenue_last_year", 200 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/3", "rd_intensity_2y", Decimal("0.08")),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/4", "market_value", 1_500 * M),
    ("bse_listing", 2, "neeq_innovation->bse_application", "market_value_standard/4", "rd_sum_2y", 50 * M),
    ("bse_listing", 2, "bse_application->bse_listed", "all_of", "offering_shares", 1_000_000),
    ("bse_listing", 2, "bse_application->bse_listed", "all_of", "offering_subscribers", 100),
    ("bse_listing", 2, "bse_application->bse_listed", "all_of", "share_capital_after_offering", 30 * M),
    ("bse_listing", 2, "bse_application->bse_listed", "all_of", "holders_after_offering", 200),
    ("bse_listing", 2, "bse_application->bse_listed", "public_float/25pct", "public_float", Decimal("0.25")),
    ("bse_listing", 2, "bse_application->bse_listed", "public_float/10pct_large", "share_capital_over_400m", 400 * M),
    ("bse_listing", 2, "bse_application->bse_listed", "public_float/10pct_large", "public_float", Decimal("0.10")),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "all_of", "operating_years", 2),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "all_of", "share_capital", 5 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "all_of", "net_assets_per_share", Decimal("1")),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/1a", "net_profit_each_positive", 0),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/1a", "net_profit_sum_2y", 8 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/1b", "net_profit_last_year", 6 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/2a", "revenue_average_2y", 30 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/2a", "revenue_growth", Decimal("0.20")),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/2b", "revenue_average_2y", 50 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/2b", "operating_cash_flow_each_positive", 0),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/3", "revenue_last_year", 30 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/3", "rd_intensity_2y", Decimal("0.05")),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/4", "rd_sum_2y", 10 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/4", "equity_financing", 20 * M),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/5", "market_makers", 4),
    ("neeq_listing", 2, "listing_reserve->neeq_application", "financial_standard/5", "placement_market_value", 100 * M),
    ("neeq_listing", 1, "listing_reserve->neeq_application", "operating_record/revenue", "revenue_sum_2y", 10 * M),
    ("neeq_listing", 1, "listing_reserve->neeq_application", "operating_record/long_rd_cycle", "net_assets", 30 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "all_of", "net_assets_not_negative", 0),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "all_of", "qualified_investors", 50),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/1", "net_profit_each_2y", 10 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/1", "roe_average_2y", Decimal("0.06")),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/1", "share_capital", 20 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/2", "revenue_average_2y", 80 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/2", "revenue_cagr_2y", Decimal("0.30")),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/3", "rd_sum_2y", 25 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/3", "equity_financing", 40 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/3", "placement_market_value", 300 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/4a", "average_market_value", 300 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/4a", "market_makers", 4),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/4a", "share_capital", 50 * M),
    ("neeq_innovation", 1, "neeq_base->neeq_innovation", "innovation_standard/4b", "call_auction_shares", 1_000_000),
]


@pytest.mark.parametrize(("rulebook_id", "version", "move", "where", "criterion", "threshold"), FIGURES)
def test_the_files_carry_the_briefs_figures(rulebook_id: str, version: int, move: str, where: str,
                                            criterion: str, threshold: object) -> None:
    (found,) = [c for rb, mv, w, c in CRITERIA
                if (rb.id, rb.version, mv, w, c.id) == (rulebook_id, version, move, where, criterion)]
    assert found.threshold == threshold
    assert type(found.threshold) is type(threshold)


def test_every_shipped_standard_group_offers_the_briefs_number_of_alternatives() -> None:
    def standards(rulebook_id: str, version: int, move: str) -> list[str]:
        rb = book(rulebook_id, version)
        req = rb.requirement(Move.parse(move))
        assert req is not None
        return [s.id for g in req.any_of for s in g.standards]

    assert standards("bse_listing", 2, "neeq_innovation->bse_application") == ["1a", "1b", "2", "3", "4"]
    assert standards("neeq_listing", 2, "listing_reserve->neeq_application") == ["1a", "1b", "2a", "2b", "3", "4", "5"]
    assert standards("neeq_innovation", 1, "neeq_base->neeq_innovation") == ["1", "2", "3", "4a", "4b"]


# -- just above and just below every threshold ----------------------------------------------

BASE = 10 ** 10  # fen: a round base for growth and ratio figures


def fact(name: FactName, value: Fraction | bool | str, period: str, position: int) -> Fact:
    kind = FACTS[name].kind
    if isinstance(value, Fraction):
        if kind is FactKind.ratio:
            stored: int | bool | str = str(Decimal(value.numerator) / Decimal(value.denominator))
        else:
            assert value.denominator == 1, f"{name} needs a whole number, got {value}"
            stored = int(value)
    else:
        stored = value
    return Fact(name=name, value=stored, fiscal_period=period, source_document_digest=DIGEST, position=position,
                filed_on=FILED)


def filings(c: Criterion, figure: Fraction) -> list[Fact]:
    """Filings whose measured figure for `c` is exactly `figure`."""
    years = list(range(FY - c.years + 1, FY + 1))
    as_of = "2025-03-31"
    one = FY if FACTS[c.fact].yearly else None
    match c.measure:
        case Measure.latest:
            return [fact(c.fact, figure, f"FY{one}" if one else as_of, 1)]
        case Measure.fiscal_year:
            return [fact(c.fact, figure, f"FY{FY}", 1)]
        case Measure.each_year | Measure.average:
            return [fact(c.fact, figure, f"FY{y}", i) for i, y in enumerate(years)]
        case Measure.sum:
            return [fact(c.fact, Fraction(0), f"FY{y}", i) for i, y in enumerate(years[:-1])] + [
                fact(c.fact, figure, f"FY{FY}", 99)]
        case Measure.growth:
            return [fact(c.fact, Fraction(BASE), f"FY{FY - 1}", 1), fact(c.fact, BASE * (1 + figure), f"FY{FY}", 2)]
        case Measure.cagr:
            return [fact(c.fact, BASE * (1 + figure) ** k, f"FY{FY - c.years + k}", k) for k in range(c.years + 1)]
        case Measure.ratio_of_sums:
            assert c.per is not None
            total = figure * BASE * c.years
            return [fact(c.per, Fraction(BASE), f"FY{y}", i) for i, y in enumerate(years)] + [
                fact(c.fact, Fraction(0), f"FY{y}", 10 + i) for i, y in enumerate(years[:-1])] + [
                fact(c.fact, total, f"FY{FY}", 99)]
        case Measure.ratio_latest:
            assert c.per is not None
            return [fact(c.per, Fraction(BASE), as_of, 1), fact(c.fact, figure * BASE, as_of, 2)]
    raise AssertionError(f"no builder for {c.measure}")


def boundary_cases(c: Criterion) -> list[tuple[str, list[Fact], bool]]:
    """(label, filings, should pass): just below, at and just above the threshold, or the yes/no pair."""
    kind = FACTS[c.fact].kind
    if c.measure is Measure.increasing:
        up = [fact(c.fact, Fraction(BASE * (k + 1)), f"FY{FY - c.years + k}", k) for k in range(c.years + 1)]
        flat = [fact(c.fact, Fraction(BASE), f"FY{FY - c.years + k}", k) for k in range(c.years + 1)]
        return [("increasing", up, c.op is Operator.is_true), ("flat", flat, c.op is Operator.is_false)]
    if kind is FactKind.flag:
        return [(str(v), [fact(c.fact, v, "2025-03-31", 1)], (c.op is Operator.is_true) == v) for v in (True, False)]
    if kind is FactKind.text:
        assert isinstance(c.threshold, tuple)
        outside = [w for w in FACTS[c.fact].vocabulary if w not in c.threshold]
        assert outside, "a test that nobody fails tests nothing"
        return [(w, [fact(c.fact, w, "2025-03-31", 1)], w in c.threshold) for w in (*c.threshold, *outside)]
    assert isinstance(c.threshold, (int, Decimal)) and not isinstance(c.threshold, bool)
    t = Fraction(c.threshold)
    eps = Fraction(1) if isinstance(c.threshold, int) else Fraction(1, 10_000)
    cases = []
    for label, figure in (("just below", t - eps), ("at", t), ("just above", t + eps)):
        if figure < 0 and not FACTS[c.fact].signed and c.measure not in (Measure.growth, Measure.cagr):
            continue  # e.g. "≤ 0 penalties": nothing below zero to file
        expected = {Operator.at_least: figure >= t, Operator.more_than: figure > t, Operator.at_most: figure <= t,
                    Operator.less_than: figure < t, Operator.equals: figure == t}[c.op]
        cases.append((f"{label} ({figure})", filings(c, figure), expected))
    return cases


@pytest.mark.parametrize("case", CRITERIA, ids=criterion_id)
def test_each_threshold_holds_just_above_and_fails_just_below(case: tuple[Rulebook, str, str, Criterion]) -> None:
    rb, _, _, c = case
    cases = boundary_cases(c)
    assert {expected for _, _, expected in cases} == {True, False}
    for label, facts, expected in cases:
        result = evaluate_criterion(c, FactSheet(facts=tuple(facts)), FY, owner=rb.owner)
        assert result.passed is expected, f"{c.id} {label}: figure {result.figure}, threshold {c.threshold}"
        assert result.figure is not None and not result.missing
        assert {u.source_document_digest for u in result.inputs} == {DIGEST}


@pytest.mark.parametrize("case", CRITERIA, ids=criterion_id)
def test_each_criterion_fails_with_nothing_filed_and_says_what_is_missing(
        case: tuple[Rulebook, str, str, Criterion]) -> None:
    rb, _, _, c = case
    result = evaluate_criterion(c, FactSheet(), FY, owner=rb.owner)
    assert result.passed is False
    assert result.figure is None and result.inputs == ()
    assert result.missing and result.note.startswith("missing: ")


def test_a_requirement_that_extends_another_adds_to_its_criteria() -> None:
    v2 = book("bse_listing", 2)
    listed = v2.resolved(Move(from_stage=Stage.bse_application, to_stage=Stage.bse_listed))
    applying = v2.resolved(Move(from_stage=Stage.neeq_innovation, to_stage=Stage.bse_application))
    assert listed is not None and applying is not None
    assert [c.id for c in listed[0]][:3] == [c.id for c in applying[0]]
    assert [g.id for g in listed[1]] == ["market_value_standard", "public_float"]


def test_the_version_in_force_is_picked_by_date_for_each_shipped_rulebook() -> None:
    assert in_force(BOOKS, "neeq_listing", dt.date(2023, 2, 16)).version == 1
    assert in_force(BOOKS, "neeq_listing", dt.date(2023, 2, 17)).version == 2
    assert in_force(BOOKS, "bse_listing", dt.date(2023, 8, 31)).version == 1
    assert in_force(BOOKS, "bse_listing", dt.date(2023, 9, 1)).version == 2


# -- invalid rulebooks ----------------------------------------------------------------------

VALID = """
id = "sample"
version = 1
effective_from = 2026-01-01
title = "sample"
owner = "operator"

[[provenance]]
ref = "operator"
description = "the operator"
confidence = "I"

[[moves]]
move = "incubation->standardisation"

[[moves.all_of]]
id = "revenue"
label = "营业收入"
fact = "revenue"
measure = "fiscal_year"
op = ">="
threshold = 1_000
confidence = "I"
sources = ["operator"]
"""


def test_a_valid_sample_parses() -> None:
    rb = parse_rulebook(VALID)
    assert rb.moves[0].all_of[0].threshold == 1_000


@pytest.mark.parametrize(("change", "problem"), [
    (('threshold = 1_000', 'threshold = 0.5'), "is a float"),
    (('threshold = 1_000', 'threshold = "0.5"'), "write it as an integer"),
    (('fact = "revenue"', 'fact = "weighted_roe"'), "write it as a decimal string"),
    (('fact = "revenue"', 'fact = "turnover"'), "turnover"),
    (('sources = ["operator"]', 'sources = ["src-99"]'), "not in the rulebook's provenance"),
    (('move = "incubation->standardisation"', 'move = "incubation->bse_listed"'), "not an allowed move"),
    (('move = "incubation->standardisation"', 'move = "incubation->nowhere"'), "not a move between known stages"),
    (('op = ">="', 'op = "in"'), "a number takes"),
    (('measure = "fiscal_year"', 'measure = "ratio_of_sums"'), "needs `per`"),
    (('fact = "revenue"\nmeasure = "fiscal_year"', 'fact = "share_capital"\nmeasure = "sum"'), "needs a yearly fact"),
    (('version = 1', 'version = 0'), "version must be"),
    (('confidence = "I"\nsources', 'confidence = "certain"\nsources'), "certain"),
    (('title = "sample"', 'title = "sample"\ncolour = "red"'), "colour"),
])
def test_a_broken_rulebook_is_refused_naming_the_problem(change: tuple[str, str], problem: str) -> None:
    old, new = change
    assert old in VALID
    with pytest.raises(RulebookInvalid) as refused:
        parse_rulebook(VALID.replace(old, new, 1), name="sample.toml")
    assert problem in refused.value.detail
    assert refused.value.code == "listing.rulebook_invalid"


def test_every_problem_of_a_rulebook_is_reported_at_once() -> None:
    broken = (VALID.replace('threshold = 1_000', 'threshold = "0.5"')
              .replace('sources = ["operator"]', 'sources = ["src-99"]')
              .replace('label = "营业收入"', 'label = " "'))
    with pytest.raises(RulebookInvalid) as refused:
        parse_rulebook(broken)
    problems = refused.value.figures["problems"]
    assert len(problems) == 3
    assert any("integer" in p for p in problems) and any("src-99" in p for p in problems)
    assert any("label" in p for p in problems)


def test_a_move_may_only_extend_a_move_of_the_same_rulebook() -> None:
    extended = VALID + '\n[[moves]]\nmove = "applied->standardisation"\nextends = "applied->incubation"\n'
    with pytest.raises(RulebookInvalid, match="does not govern"):
        parse_rulebook(extended)


def test_a_text_criterion_needs_words_of_its_vocabulary() -> None:
    words = VALID.replace('fact = "revenue"\nmeasure = "fiscal_year"\nop = ">="\nthreshold = 1_000',
                          'fact = "audit_opinion"\nop = "in"\nthreshold = ["clean"]')
    with pytest.raises(RulebookInvalid, match="vocabulary"):
        parse_rulebook(words)


def test_a_set_of_versions_must_not_repeat_a_version_or_go_back_in_time() -> None:
    v1 = parse_rulebook(VALID)
    again = msgspec.structs.replace(v1, title="again")
    earlier = msgspec.structs.replace(v1, version=2, effective_from=dt.date(2025, 1, 1))
    assert rulebook_set_problems([v1, again]) == ["sample v1 is given twice"]
    assert rulebook_set_problems([v1, earlier]) == ["sample v2 takes effect 2025-01-01, not after v1 (2026-01-01)"]


def test_a_rulebook_decodes_from_json_too_and_refuses_unknown_fields() -> None:
    rb = parse_rulebook(VALID)
    assert msgspec.json.decode(msgspec.json.encode(rb), type=Rulebook) == rb
    raw = msgspec.to_builtins(rb)
    raw["colour"] = "red"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(raw, Rulebook)
