"""合格投资者: threshold assessments and the "qualified on a date" rule."""

from datetime import date, datetime, timedelta

import msgspec
import pytest

from registry.parties.qualification import (
    Assessment,
    Criterion,
    QualificationCategory,
    QualificationError,
    QualificationStatus,
    QualificationThresholds,
    assess_institution,
    assess_natural_person,
    is_qualified,
    qualification_on,
)

DEFAULTS = QualificationThresholds()
RMB = 100  # fen per yuan
DIGEST = "a" * 64
OTHER_DIGEST = "b" * 64
DAY = timedelta(days=1)

FROM = date(2024, 3, 1)
UNTIL = date(2025, 2, 28)
REVOKED = date(2024, 9, 10)


def status(**overrides: object) -> QualificationStatus:
    fields: dict[str, object] = {
        "investor_id": "did:rem:tianjin:INV000001",
        "category": QualificationCategory.NATURAL_PERSON,
        "evidence_digest": DIGEST,
        "valid_from": FROM,
    }
    fields.update(overrides)
    return QualificationStatus(**fields)  # type: ignore[arg-type]


def criterion(assessment: Assessment, name: str) -> Criterion:
    (found,) = [c for c in assessment.criteria if c.name == name]
    return found


# --- thresholds ---------------------------------------------------------------------------


def test_the_default_thresholds_are_the_briefs_figures_in_fen() -> None:
    assert DEFAULTS.natural_person_min_financial_assets_fen == 500_000 * RMB
    assert DEFAULTS.natural_person_min_investment_experience_years == 2
    assert DEFAULTS.natural_person_min_average_income_3y_fen is None
    assert DEFAULTS.institution_min_net_assets_fen == 1_000_000 * RMB


def test_thresholds_decode_from_data_and_refuse_unknown_fields() -> None:
    decoded = msgspec.json.decode(
        b'{"institution_min_net_assets_fen": 500000000, "basis": "market rule 2025"}',
        type=QualificationThresholds,
    )
    assert decoded.institution_min_net_assets_fen == 5_000_000 * RMB
    assert decoded.natural_person_min_financial_assets_fen == 500_000 * RMB
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"min_assets": 1}', type=QualificationThresholds)


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(QualificationError) as caught:
        QualificationThresholds(institution_min_net_assets_fen=-1)
    assert caught.value.code == "qualification.threshold"


def test_a_float_threshold_is_refused_because_money_is_exact() -> None:
    with pytest.raises(TypeError):
        QualificationThresholds(
            natural_person_min_financial_assets_fen=500000.0  # type: ignore[arg-type]
        )


# --- natural person -----------------------------------------------------------------------

ASSETS = DEFAULTS.natural_person_min_financial_assets_fen
YEARS = DEFAULTS.natural_person_min_investment_experience_years


@pytest.mark.parametrize(
    ("financial_assets_fen", "passed"),
    [(ASSETS - 1, False), (ASSETS, True), (ASSETS + 1, True)],
    ids=["one fen below", "at", "one fen above"],
)
def test_financial_assets_pass_at_or_above_the_threshold(
    financial_assets_fen: int, passed: bool
) -> None:
    assessment = assess_natural_person(financial_assets_fen, None, YEARS, DEFAULTS)
    assert criterion(assessment, "financial_assets") == Criterion(
        name="financial_assets",
        term="金融资产",
        unit="fen",
        figure=financial_assets_fen,
        threshold=ASSETS,
        passed=passed,
    )
    assert assessment.qualified is passed


@pytest.mark.parametrize(
    ("years", "passed"),
    [(YEARS - 1, False), (YEARS, True), (YEARS + 1, True)],
    ids=["a year short", "at", "a year more"],
)
def test_investment_experience_passes_at_or_above_the_required_years(
    years: int, passed: bool
) -> None:
    assessment = assess_natural_person(ASSETS, None, years, DEFAULTS)
    assert criterion(assessment, "investment_experience").passed is passed
    assert assessment.qualified is passed


def test_a_natural_person_assessment_lists_every_criterion_even_when_the_first_fails() -> None:
    assessment = assess_natural_person(0, 10_000 * RMB, 0, DEFAULTS)
    assert assessment.category is QualificationCategory.NATURAL_PERSON
    assert [c.name for c in assessment.criteria] == [
        "financial_assets",
        "average_income_3y",
        "investment_experience",
    ]
    assert [c.passed for c in assessment.criteria] == [False, False, False]
    assert assessment.qualified is False
    assert assessment.basis == DEFAULTS.basis


def test_income_is_not_a_route_under_the_default_thresholds() -> None:
    assessment = assess_natural_person(0, 100_000_000 * RMB, YEARS, DEFAULTS)
    income = criterion(assessment, "average_income_3y")
    assert income.threshold is None and income.passed is False
    assert assessment.qualified is False


INCOME = 400_000 * RMB
WITH_INCOME = QualificationThresholds(natural_person_min_average_income_3y_fen=INCOME)


@pytest.mark.parametrize(
    ("income_fen", "qualified"),
    [(INCOME - 1, False), (INCOME, True), (INCOME + 1, True)],
    ids=["one fen below", "at", "one fen above"],
)
def test_when_configured_income_is_an_alternative_to_financial_assets(
    income_fen: int, qualified: bool
) -> None:
    assessment = assess_natural_person(0, income_fen, YEARS, WITH_INCOME)
    assert criterion(assessment, "financial_assets").passed is False
    assert criterion(assessment, "average_income_3y").passed is qualified
    assert assessment.qualified is qualified


def test_income_does_not_replace_investment_experience() -> None:
    assessment = assess_natural_person(ASSETS, INCOME, YEARS - 1, WITH_INCOME)
    assert assessment.qualified is False


def test_an_undeclared_income_is_recorded_as_none_not_zero() -> None:
    assessment = assess_natural_person(ASSETS, None, YEARS, WITH_INCOME)
    income = criterion(assessment, "average_income_3y")
    assert income.figure is None and income.passed is False
    assert assessment.qualified is True


def test_a_negative_natural_person_figure_is_refused() -> None:
    with pytest.raises(QualificationError) as caught:
        assess_natural_person(-1, None, YEARS, DEFAULTS)
    assert caught.value.code == "qualification.negative_figure"
    assert caught.value.figures == {"figure": "financial_assets_fen", "value": -1}


def test_money_as_a_float_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        assess_natural_person(500000.0, None, YEARS, DEFAULTS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        assess_institution(True, DEFAULTS)  # type: ignore[arg-type]


def test_an_overridden_threshold_is_what_gets_applied() -> None:
    stricter = QualificationThresholds(natural_person_min_financial_assets_fen=3_000_000 * RMB)
    assessment = assess_natural_person(ASSETS, None, YEARS, stricter)
    assert criterion(assessment, "financial_assets").threshold == 3_000_000 * RMB
    assert assessment.qualified is False


# --- institution --------------------------------------------------------------------------

NET = DEFAULTS.institution_min_net_assets_fen


@pytest.mark.parametrize(
    ("net_assets_fen", "passed"),
    [(NET - 1, False), (NET, True), (NET + 1, True)],
    ids=["one fen below", "at", "one fen above"],
)
def test_institution_net_assets_pass_at_or_above_the_threshold(
    net_assets_fen: int, passed: bool
) -> None:
    assert assess_institution(net_assets_fen, DEFAULTS) == Assessment(
        category=QualificationCategory.INSTITUTION_NET_ASSETS,
        qualified=passed,
        criteria=(
            Criterion(
                name="net_assets",
                term="净资产",
                unit="fen",
                figure=net_assets_fen,
                threshold=NET,
                passed=passed,
            ),
        ),
        basis=DEFAULTS.basis,
    )


def test_negative_net_assets_simply_fail() -> None:
    assert assess_institution(-5 * RMB, DEFAULTS).qualified is False


def test_an_assessment_encodes_to_json_with_every_figure() -> None:
    encoded = msgspec.json.decode(msgspec.json.encode(assess_institution(NET, DEFAULTS)))
    assert encoded["category"] == "institution_net_assets"
    assert encoded["criteria"][0]["figure"] == NET


# --- status records -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "digest",
    ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "a" * 63 + "\n", ""],
    ids=["uppercase", "63 chars", "65 chars", "not hex", "trailing newline", "empty"],
)
def test_an_evidence_digest_that_is_not_64_lowercase_hex_is_refused(digest: str) -> None:
    with pytest.raises(QualificationError) as caught:
        status(evidence_digest=digest)
    assert caught.value.code == "qualification.evidence_digest"


def test_a_status_cannot_end_before_it_starts() -> None:
    with pytest.raises(QualificationError) as caught:
        status(valid_until=FROM - DAY)
    assert caught.value.code == "qualification.validity_window"
    assert caught.value.figures == {"valid_from": "2024-03-01", "valid_until": "2024-02-29"}


def test_a_one_day_status_is_allowed() -> None:
    one_day = status(valid_until=FROM)
    assert is_qualified([one_day], FROM)
    assert not is_qualified([one_day], FROM + DAY)


def test_a_datetime_is_refused_where_a_day_is_meant() -> None:
    with pytest.raises(TypeError):
        status(valid_from=datetime(2024, 3, 1, 9, 30))
    with pytest.raises(TypeError):
        is_qualified([status()], datetime(2024, 3, 1, 9, 30))  # type: ignore[arg-type]


def test_a_category_given_as_a_plain_string_is_refused() -> None:
    with pytest.raises(TypeError):
        status(category="natural_person")


def test_a_stored_status_decodes_and_a_bad_one_fails_validation() -> None:
    record = {
        "investor_id": "did:rem:tianjin:INV000001",
        "category": "natural_person",
        "evidence_digest": DIGEST,
        "valid_from": "2024-03-01",
        "valid_until": None,
        "revoked_on": None,
    }
    assert msgspec.convert(record, QualificationStatus) == status()
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**record, "evidence_digest": "x"}, QualificationStatus)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**record, "note": "extra"}, QualificationStatus)


# --- qualified on a date ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("as_of", "qualified"),
    [(FROM - DAY, False), (FROM, True), (FROM + DAY, True)],
    ids=["day before valid_from", "on valid_from", "day after valid_from"],
)
def test_a_status_starts_on_its_valid_from_day(as_of: date, qualified: bool) -> None:
    assert is_qualified([status()], as_of) is qualified


@pytest.mark.parametrize(
    ("as_of", "qualified"),
    [(UNTIL - DAY, True), (UNTIL, True), (UNTIL + DAY, False)],
    ids=["day before valid_until", "on valid_until", "day after valid_until"],
)
def test_a_status_holds_through_its_valid_until_day(as_of: date, qualified: bool) -> None:
    assert is_qualified([status(valid_until=UNTIL)], as_of) is qualified


@pytest.mark.parametrize(
    ("as_of", "qualified"),
    [(REVOKED - DAY, True), (REVOKED, False), (REVOKED + DAY, False)],
    ids=["day before revocation", "on revocation day", "day after revocation"],
)
def test_a_revoked_status_stops_on_the_revocation_day(as_of: date, qualified: bool) -> None:
    revoked = status(valid_until=UNTIL, revoked_on=REVOKED)
    assert is_qualified([revoked], as_of) is qualified


def test_an_open_ended_status_holds_indefinitely() -> None:
    assert is_qualified([status()], date(2099, 12, 31))


def test_a_status_revoked_before_it_started_never_holds() -> None:
    withdrawn = status(revoked_on=FROM - DAY)
    assert not is_qualified([withdrawn], FROM)
    assert not is_qualified([withdrawn], FROM - 2 * DAY)


def test_no_statuses_means_not_qualified() -> None:
    assert is_qualified([], FROM) is False
    assert qualification_on([], FROM) is None


def test_a_renewal_after_a_gap_leaves_the_gap_unqualified() -> None:
    first = status(valid_until=date(2024, 6, 30))
    renewal = status(valid_from=date(2024, 7, 2), evidence_digest=OTHER_DIGEST)
    assert is_qualified([first, renewal], date(2024, 6, 30))
    assert not is_qualified([first, renewal], date(2024, 7, 1))
    assert qualification_on([first, renewal], date(2024, 7, 2)) == renewal


def test_a_revoked_status_does_not_hide_a_later_valid_one() -> None:
    revoked = status(revoked_on=REVOKED)
    regranted = status(valid_from=REVOKED + DAY, evidence_digest=OTHER_DIGEST)
    assert not is_qualified([revoked, regranted], REVOKED)
    assert qualification_on([revoked, regranted], REVOKED + DAY) == regranted


def test_when_several_statuses_hold_the_latest_granted_is_returned_whatever_the_order() -> None:
    older = status(valid_until=UNTIL)
    newer = status(valid_from=FROM + 10 * DAY, evidence_digest=OTHER_DIGEST)
    as_of = FROM + 20 * DAY
    assert qualification_on([older, newer], as_of) == newer
    assert qualification_on([newer, older], as_of) == newer


def test_on_the_same_start_day_an_open_ended_status_outranks_a_bounded_one() -> None:
    bounded = status(valid_until=UNTIL)
    open_ended = status(evidence_digest=OTHER_DIGEST)
    assert qualification_on([open_ended, bounded], FROM) == open_ended
    assert qualification_on([bounded, open_ended], FROM) == open_ended


def test_a_generator_of_statuses_is_accepted() -> None:
    assert is_qualified((s for s in [status()]), FROM)


def test_statuses_of_two_investors_cannot_be_mixed() -> None:
    mine = status()
    theirs = status(investor_id="did:rem:tianjin:INV000002", valid_from=FROM - 10 * DAY)
    with pytest.raises(QualificationError) as caught:
        is_qualified([mine, theirs], FROM)
    assert caught.value.code == "qualification.mixed_investors"


def test_any_category_qualifies() -> None:
    for category in QualificationCategory:
        assert is_qualified([status(category=category)], FROM)
