"""合格投资者 (qualified investor): thresholds, assessments and the one "qualified on date" rule."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from types import MappingProxyType

import msgspec

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class QualificationError(ValueError):
    """A qualification record or figure that breaks a rule.

    ``code`` is stable (``qualification.evidence_digest``, ``qualification.validity_window``,
    ``qualification.negative_figure``, ``qualification.threshold``,
    ``qualification.mixed_investors``); ``detail`` is for people; ``figures`` holds the
    values involved. It is a ValueError so that msgspec reports it as a ValidationError
    when a stored record fails to decode.
    """

    def __init__(self, code: str, detail: str, **figures: object) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.figures: Mapping[str, object] = MappingProxyType(dict(figures))


class QualificationCategory(str, enum.Enum):
    """The route by which an investor is a 合格投资者 (国办发〔2017〕11号; Order 132)."""

    # 金融机构 (securities, futures and fund firms and their subsidiaries, commercial banks,
    # ...) and the investment plans / products they manage: qualified by what they are.
    FINANCIAL_INSTITUTION = "financial_institution"
    # 法人 / 合伙企业 / 其他机构 meeting a net-assets (or paid-in capital) threshold.
    INSTITUTION_NET_ASSETS = "institution_net_assets"
    # 自然人 with enough financial assets (or income) and investment experience.
    NATURAL_PERSON = "natural_person"


class QualificationThresholds(
    msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """合格投资者 thresholds, as data: a market's own rules override these defaults.

    Money is in integer fen (1 RMB = 100 fen); a criterion passes at or above its
    threshold ("不低于"). Defaults and their confidence (domain brief §4):

    - natural person, financial assets ≥ RMB 500,000: 国办发〔2017〕11号 [S, primary text];
      Order 132 keeps the figure [S2, summary only].
    - natural person, ≥ 2 years of investment experience (or of finance-industry work):
      Order 132 [S2, summary only].
    - natural person, 3-year average income: the brief gives NO income route, so it is off
      (None). Set it to accept income as an alternative to financial assets, as some
      CSRC suitability rules do; experience is still required.
    - institution, net assets ≥ RMB 1,000,000: Order 132 [M, low-medium, NOT verified
      against the rule text]; the brief gives the same figure for a partnership's paid-in
      capital. No Tianjin-specific figures were found.
    """

    natural_person_min_financial_assets_fen: int = 50_000_000
    natural_person_min_average_income_3y_fen: int | None = None
    natural_person_min_investment_experience_years: int = 2
    institution_min_net_assets_fen: int = 100_000_000
    # Where the figures come from, carried with them so an override states its own source.
    basis: str = (
        "domain brief §4: 国办发〔2017〕11号 [S] (natural person RMB 500k); Order 132 summary "
        "[S2] (2 years' experience); institutional RMB 1m [M, unverified]"
    )

    def __post_init__(self) -> None:
        for name in (
            "natural_person_min_financial_assets_fen",
            "natural_person_min_average_income_3y_fen",
            "natural_person_min_investment_experience_years",
            "institution_min_net_assets_fen",
        ):
            value = getattr(self, name)
            if value is None and name == "natural_person_min_average_income_3y_fen":
                continue
            _require_int(name, value)
            if value < 0:
                raise QualificationError(
                    "qualification.threshold",
                    f"{name} must not be negative, got {value}",
                    threshold=name,
                    value=value,
                )


class Criterion(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One tested condition with its figure and threshold, kept for the audit trail.

    A criterion whose threshold is None is not a route under the thresholds in force
    and never passes; a figure of None means the investor declared none.
    """

    name: str
    term: str
    unit: str
    figure: int | None
    threshold: int | None
    passed: bool


class Assessment(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The outcome of testing an investor against the thresholds: every criterion, always."""

    category: QualificationCategory
    qualified: bool
    criteria: tuple[Criterion, ...]
    basis: str


def assess_natural_person(
    financial_assets_fen: int,
    average_income_3y_fen: int | None,
    investment_experience_years: int,
    thresholds: QualificationThresholds,
) -> Assessment:
    """自然人合格投资者: financial assets (金融资产) at or above the threshold — or, when an
    income threshold is set, 3-year average income (近三年年均收入) at or above it — AND
    investment experience (投资经历) of at least the required years.

    The figures are the evidenced ones: how financial assets are measured (a balance on a
    date, or an average over a period) and whether years in the finance industry count as
    experience are for the evidence review; this only compares numbers. Experience is in
    whole years completed.
    """
    _require_non_negative("financial_assets_fen", financial_assets_fen)
    if average_income_3y_fen is not None:
        _require_non_negative("average_income_3y_fen", average_income_3y_fen)
    _require_non_negative("investment_experience_years", investment_experience_years)

    assets = _at_least(
        "financial_assets",
        "金融资产",
        "fen",
        financial_assets_fen,
        thresholds.natural_person_min_financial_assets_fen,
    )
    income = _at_least(
        "average_income_3y",
        "近三年年均收入",
        "fen",
        average_income_3y_fen,
        thresholds.natural_person_min_average_income_3y_fen,
    )
    experience = _at_least(
        "investment_experience",
        "投资经历",
        "years",
        investment_experience_years,
        thresholds.natural_person_min_investment_experience_years,
    )
    return Assessment(
        category=QualificationCategory.NATURAL_PERSON,
        qualified=(assets.passed or income.passed) and experience.passed,
        criteria=(assets, income, experience),
        basis=thresholds.basis,
    )


def assess_institution(net_assets_fen: int, thresholds: QualificationThresholds) -> Assessment:
    """机构合格投资者 (法人): net assets (净资产) at or above the threshold.

    Net assets may be negative (an insolvent company); that simply fails. Financial
    institutions and their products qualify by licence, not by this test.
    """
    _require_int("net_assets_fen", net_assets_fen)
    net_assets = _at_least(
        "net_assets",
        "净资产",
        "fen",
        net_assets_fen,
        thresholds.institution_min_net_assets_fen,
    )
    return Assessment(
        category=QualificationCategory.INSTITUTION_NET_ASSETS,
        qualified=net_assets.passed,
        criteria=(net_assets,),
        basis=thresholds.basis,
    )


class QualificationStatus(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A granted 合格投资者 status: who, by which route, on what evidence, and for which days.

    ``evidence_digest`` is the SHA-256 (64 lowercase hex) of the evidence file, kept
    off-register with only its hash recorded, as the regulator-chain model does for
    attachments. Days are inclusive: the status holds from ``valid_from`` through
    ``valid_until`` (None = open-ended) and stops on ``revoked_on`` itself (撤销).
    """

    investor_id: str
    category: QualificationCategory
    evidence_digest: str
    valid_from: date
    valid_until: date | None = None
    revoked_on: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.investor_id, str) or not self.investor_id:
            raise TypeError(f"investor_id must be a non-empty str, got {self.investor_id!r}")
        if not isinstance(self.category, QualificationCategory):
            raise TypeError(f"category must be a QualificationCategory, got {self.category!r}")
        if not isinstance(self.evidence_digest, str) or not _SHA256_HEX.fullmatch(
            self.evidence_digest
        ):
            raise QualificationError(
                "qualification.evidence_digest",
                "evidence_digest must be a SHA-256 digest written as 64 lowercase hex "
                f"characters, got {self.evidence_digest!r}",
                evidence_digest=self.evidence_digest,
            )
        _require_day("valid_from", self.valid_from)
        if self.valid_until is not None:
            _require_day("valid_until", self.valid_until)
            if self.valid_until < self.valid_from:
                raise QualificationError(
                    "qualification.validity_window",
                    f"valid_until {self.valid_until} is before valid_from {self.valid_from}",
                    valid_from=self.valid_from.isoformat(),
                    valid_until=self.valid_until.isoformat(),
                )
        if self.revoked_on is not None:
            # Revocation before valid_from is allowed: a grant withdrawn before it started.
            _require_day("revoked_on", self.revoked_on)


def qualification_on(
    statuses: Iterable[QualificationStatus], as_of: date
) -> QualificationStatus | None:
    """The 合格投资者 status that holds for an investor on ``as_of``, or None.

    A status holds when valid_from <= as_of, valid_until is None or as_of <= valid_until,
    and revoked_on is None or as_of < revoked_on. All statuses must be the same
    investor's. If several hold, the most recently granted one is returned (latest
    valid_from, then latest valid_until with open-ended last, then evidence digest) so
    the answer does not depend on the order of the input.
    """
    _require_day("as_of", as_of)
    holding: list[QualificationStatus] = []
    investor_id: str | None = None
    for status in statuses:
        if investor_id is None:
            investor_id = status.investor_id
        elif status.investor_id != investor_id:
            # Mixing investors would let one investor's status qualify another.
            raise QualificationError(
                "qualification.mixed_investors",
                f"statuses of {investor_id!r} and {status.investor_id!r} were given together",
                investor_ids=[investor_id, status.investor_id],
            )
        if _holds_on(status, as_of):
            holding.append(status)
    if not holding:
        return None
    return max(
        holding,
        key=lambda s: (
            s.valid_from,
            s.valid_until is None,
            s.valid_until or date.min,
            s.evidence_digest,
        ),
    )


def is_qualified(statuses: Iterable[QualificationStatus], as_of: date) -> bool:
    """合格投资者 on ``as_of``: the one check every rule that needs "qualified" calls
    (subscription, transfer, exercise). Same rule as ``qualification_on``."""
    return qualification_on(statuses, as_of) is not None


def _holds_on(status: QualificationStatus, as_of: date) -> bool:
    return (
        status.valid_from <= as_of
        and (status.valid_until is None or as_of <= status.valid_until)
        and (status.revoked_on is None or as_of < status.revoked_on)
    )


def _at_least(
    name: str, term: str, unit: str, figure: int | None, threshold: int | None
) -> Criterion:
    passed = figure is not None and threshold is not None and figure >= threshold
    return Criterion(
        name=name, term=term, unit=unit, figure=figure, threshold=threshold, passed=passed
    )


def _require_int(name: str, value: object) -> None:
    # Money and counts are exact integers; a float or a bool here is a caller's bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def _require_non_negative(name: str, value: int) -> None:
    _require_int(name, value)
    if value < 0:
        raise QualificationError(
            "qualification.negative_figure",
            f"{name} cannot be negative, got {value}",
            figure=name,
            value=value,
        )


def _require_day(name: str, value: object) -> None:
    # A datetime is a date subclass but compares with dates by raising: refuse it up front.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime.date, got {type(value).__name__}")
