"""Warrant valuation (认股权估值定价): QuantLib option engines under our dilution and marketability layers.

Pure: no I/O, no clock, not async. A valuation is recomputable: the same `ValuationInputs`
with the same `MODEL_VERSION` and QuantLib version give identical `ValuationResult` figures.

Conventions, fixed for every valuation:

- time: Actual/365 Fixed from the valuation date to the expiry date (T = days / 365);
- rates: `risk_free_rate` and `dividend_yield` are continuously compounded annual rates
  (convert a quoted annual-compounding CGB yield with `continuous_rate_from_annual`);
- volatility: annualised standard deviation of the underlying's log returns, as a fraction;
- prices: per share, or per yuan of registered capital (每元注册资本) for a company without
  shares; a warrant unit (份) entitles its holder to `new_shares_per_warrant` of them at
  `exercise_price` each;
- vega: change in value per 1.00 (100 percentage points) of volatility, as QuantLib reports it;
- figures: QuantLib's floats become Decimals via `Decimal(repr(x))`, then are rounded
  ROUND_HALF_EVEN to a stated scale: option values and Greeks per share 10 dp
  (`MODEL_SCALE`), the dilution factor, DLOM fraction and year fraction 12 dp
  (`FRACTION_SCALE`), figures per warrant unit 6 dp (`VALUE_SCALE`). The per-unit figures are
  computed from the rounded intermediates, so a reader can redo the last step by hand.

QuantLib's evaluation date is a process-wide setting: `price` sets it for the duration of the
call and restores it, so do not call `price` from several threads at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
import QuantLib as ql

from registry.errors import InternalError, RuleViolation
from registry.fields import Digest, Reference

MODEL_VERSION = "1"
"""Bump whenever a change could alter any output figure for the same inputs."""

QUANTLIB_VERSION: str = ql.__version__

DAY_COUNT = "actual_365_fixed"
COMPOUNDING = "continuous"
LATTICE_TREE = "crr"

VALUE_SCALE = Decimal("0.000001")
MODEL_SCALE = Decimal("0.0000000001")
FRACTION_SCALE = Decimal("0.000000000001")

MAX_VOLATILITY = Decimal(5)
MIN_RISK_FREE_RATE = Decimal("-0.10")
MAX_RISK_FREE_RATE = Decimal("0.50")
MAX_DIVIDEND_YIELD = Decimal("0.50")
MIN_LATTICE_STEPS = 10
MAX_LATTICE_STEPS = 5000
MAX_TERM_DAYS = 50 * 365
VEGA_BUMP = 0.01
"""Lattice vega is a central difference of ±min(0.01, σ/2) in volatility."""

# QuantLib's Date covers 1901-01-01..2199-12-31.
_EARLIEST_DATE = date(1901, 1, 1)
_LATEST_DATE = date(2199, 12, 31)

# Exact arithmetic for the layers: wide enough that products are exact before the one rounding.
_CTX = Context(
    prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)

Style = Literal["european", "american"]
DlomMethod = Literal["finnerty_2012", "chaffe_1993"]


# -- errors ---------------------------------------------------------------------------------


class ValuationInputInvalid(RuleViolation):
    """An input to a valuation is outside what the model can honestly price; nothing is valued."""

    code = "valuation.input_invalid"
    title = "A valuation input is not valid"


class ValuationDateInvalid(ValuationInputInvalid):
    """估值基准日 (valuation date) must lie within 1901-01-01..2199-12-31."""

    code = "valuation.valuation_date_invalid"
    title = "The valuation date is not valid"


class ExpiryDateInvalid(ValuationInputInvalid):
    """行权截止日 (expiry date) falls after the valuation date and at most 50 years later."""

    code = "valuation.expiry_date_invalid"
    title = "The expiry date is not valid"


class ExerciseStartDateInvalid(ValuationInputInvalid):
    """行权起始日 (start of the exercise window) applies to American style only and precedes expiry."""

    code = "valuation.exercise_start_date_invalid"
    title = "The exercise start date is not valid"


class UnderlyingPriceInvalid(ValuationInputInvalid):
    """标的价值 (underlying value per share or per yuan of capital) is a positive finite decimal."""

    code = "valuation.underlying_price_invalid"
    title = "The underlying value is not valid"


class ExercisePriceInvalid(ValuationInputInvalid):
    """行权价格 / 认股价格 (exercise price per share or per yuan of capital) is positive."""

    code = "valuation.exercise_price_invalid"
    title = "The exercise price is not valid"


class VolatilityInvalid(ValuationInputInvalid):
    """波动率 (annual volatility) is in (0, 5]: zero has no option value, above 500% is not a measurement."""

    code = "valuation.volatility_invalid"
    title = "The volatility is not valid"


class RiskFreeRateInvalid(ValuationInputInvalid):
    """无风险利率 (continuously compounded risk-free rate) is within [-10%, 50%]."""

    code = "valuation.risk_free_rate_invalid"
    title = "The risk-free rate is not valid"


class DividendYieldInvalid(ValuationInputInvalid):
    """股息率 (continuous dividend yield) is within [0, 50%]."""

    code = "valuation.dividend_yield_invalid"
    title = "The dividend yield is not valid"


class SharesOutstandingInvalid(ValuationInputInvalid):
    """总股本 / 注册资本 (shares or yuan of capital outstanding before exercise) is a positive integer."""

    code = "valuation.shares_outstanding_invalid"
    title = "The shares outstanding are not valid"


class NewSharesPerWarrantInvalid(ValuationInputInvalid):
    """行权比例 (shares or yuan of capital one warrant unit subscribes for) is positive."""

    code = "valuation.new_shares_per_warrant_invalid"
    title = "The entitlement per warrant unit is not valid"


class WarrantsOutstandingInvalid(ValuationInputInvalid):
    """认股权份数 (warrant units outstanding in the series) is a positive integer."""

    code = "valuation.warrants_outstanding_invalid"
    title = "The warrants outstanding are not valid"


class StyleInvalid(ValuationInputInvalid):
    """行权方式 is "european" (at expiry only) or "american" (any day in the exercise window)."""

    code = "valuation.style_invalid"
    title = "The exercise style is not valid"


class LatticeStepsInvalid(ValuationInputInvalid):
    """A lattice has 10..5000 steps: fewer is too coarse to audit, more adds time and no accuracy."""

    code = "valuation.lattice_steps_invalid"
    title = "The number of lattice steps is not valid"


class DlomMethodInvalid(ValuationInputInvalid):
    """流动性折扣 (DLOM) is by a named method: "finnerty_2012", "chaffe_1993", or none."""

    code = "valuation.dlom_method_invalid"
    title = "The marketability-discount method is not valid"


class LiquidityDateInvalid(ValuationInputInvalid):
    """预计可流通日 (expected liquidity date) for the DLOM falls after the valuation date, within 50 years."""

    code = "valuation.liquidity_date_invalid"
    title = "The expected liquidity date is not valid"


class CreatesNewSharesInvalid(ValuationInputInvalid):
    code = "valuation.creates_new_shares_invalid"
    title = "Whether exercise creates new shares must be true or false"


class UnderlyingBasisDateInvalid(ValuationInputInvalid):
    """The round, backsolve or report behind the underlying value predates the valuation."""

    code = "valuation.underlying_basis_date_invalid"
    title = "The date of the underlying value's basis is not valid"


class UnderlyingDocumentDigestInvalid(ValuationInputInvalid):
    """独立评估报告 (an independent report) is cited by its SHA-256 digest: 64 lowercase hex characters."""

    code = "valuation.underlying_document_digest_invalid"
    title = "The document digest of the underlying value's basis is not valid"


class VolatilityPeersInvalid(ValuationInputInvalid):
    """Volatility comes from named listed comparables (可比上市公司): at least one, none blank."""

    code = "valuation.volatility_peers_invalid"
    title = "The volatility's comparable companies are not valid"


class SourceTextInvalid(ValuationInputInvalid):
    """Each stated basis (volatility method, risk-free source) is non-blank text."""

    code = "valuation.source_text_invalid"
    title = "A stated source is empty"


class ValuationEngineFailed(InternalError):
    code = "valuation.engine_failed"
    title = "The pricing engine failed; nothing was valued"


# -- inputs and outputs ---------------------------------------------------------------------


class ValuationInputs(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Everything the price depends on (估值参数); the figures a regulator re-enters to recompute.

    Prices are per share, or per yuan of registered capital (每元注册资本). One warrant unit
    subscribes for `new_shares_per_warrant` of them at `exercise_price` each.
    """

    valuation_date: date
    expiry_date: date
    underlying_price: Decimal
    exercise_price: Decimal
    volatility: Decimal
    """Annual, as a fraction (0.35 = 35%)."""
    risk_free_rate: Decimal
    """Continuously compounded, annual, as a fraction."""
    dividend_yield: Decimal = Decimal(0)
    """Continuously compounded, annual, as a fraction."""
    shares_outstanding: int
    """Shares (or yuan of registered capital) in issue before any of these warrants is exercised."""
    new_shares_per_warrant: Decimal
    """Shares (or yuan of capital) one warrant unit subscribes for."""
    warrants_outstanding: int
    """Warrant units of this series outstanding."""
    creates_new_shares: bool = True
    """True when exercise is by capital increase (增资扩股), which dilutes; False when the
    shares come from an existing holder (老股转让), which does not."""
    style: Style
    """"european": exercisable at expiry only; "american": on any day of the exercise window."""
    exercise_start_date: date | None = None
    """American style only: first day of the exercise window (行权期); None = exercisable now."""
    lattice_steps: int = 1000
    """American style only: steps of the binomial tree."""
    dlom_method: DlomMethod | None = None
    liquidity_date: date | None = None
    """Expected date the holding becomes marketable, for the DLOM horizon; None = expiry date."""


class UnderlyingBasis(StrEnum):
    """Where the underlying value comes from (标的价值依据)."""

    LATEST_ROUND = "latest_round"  # 最近一轮公允融资价格
    BACKSOLVE = "backsolve"  # 倒推法 (calibrated to the latest round)
    INDEPENDENT_REPORT = "independent_report"  # 独立评估报告


class InputSources(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The evidence behind the figures (估值依据): recorded beside `ValuationInputs`, not priced."""

    underlying_basis: UnderlyingBasis
    underlying_basis_date: date
    """Date of the round, the backsolve's calibration round, or the report."""
    underlying_document_digest: Digest | None = None
    """SHA-256 of the report or round agreement; required for an independent report."""
    volatility_peers: Annotated[tuple[Reference, ...], msgspec.Meta(max_length=100)]
    """Listed comparables (e.g. "430047.BJ", "688001.SH") whose volatility was used."""
    volatility_method: Reference
    """How it was measured, e.g. "median of 3-year daily log-return volatility"."""
    risk_free_source: Reference
    """E.g. "ChinaBond CGB 3-year yield 2025-06-30, 1.45% annual → continuous"."""


class ValuationResult(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A valuation's outputs and every intermediate needed to check them (估值结果)."""

    model: str
    """"black_scholes_merton" (European) or "binomial_crr" (American)."""
    model_version: str
    quantlib_version: str
    engine: str
    day_count: str
    compounding: str
    days_to_expiry: int
    year_fraction: Decimal
    lattice_steps: int | None
    """As requested; None for European style."""
    lattice_steps_used: int | None
    """See `lattice_steps_used()`: equal to `lattice_steps` unless QuantLib would misprice it."""
    # the option layer, per share (or yuan of capital), before dilution
    european_value_per_share: Decimal
    """Analytic Black–Scholes–Merton value; for American style, the lattice's cross-check."""
    option_value_per_share: Decimal
    """The model's value: equal to the European value, or the lattice value."""
    option_delta_per_share: Decimal
    option_vega_per_share: Decimal
    vega_bump: Decimal | None
    """None for analytic vega; else the central-difference bump in volatility."""
    # the dilution layer (Galai–Schneller)
    dilution_method: str
    new_shares_on_exercise: Decimal
    """M·k, or 0 when exercise delivers existing shares."""
    dilution_factor: Decimal
    """N / (N + M·k), or 1 when exercise creates no new shares."""
    diluted_value_per_share: Decimal
    # per warrant unit
    undiluted_value_per_unit: Decimal
    marketable_value_per_unit: Decimal
    """After dilution, before the marketability discount."""
    delta_per_unit: Decimal
    """∂(marketable value per unit)/∂(underlying price)."""
    vega_per_unit: Decimal
    """∂(marketable value per unit)/∂(volatility), DLOM held fixed."""
    # the marketability layer
    dlom_method: str | None
    dlom_horizon_days: int | None
    dlom_fraction: Decimal
    dlom_amount_per_unit: Decimal
    value_per_unit: Decimal
    """The fair value of one warrant unit: marketable value less the DLOM amount."""
    value_of_all_warrants: Decimal
    """value_per_unit × warrants_outstanding."""


# -- validation -----------------------------------------------------------------------------


def _refuse(cls: type[ValuationInputInvalid], name: str, value: Any, detail: str, **bounds: Any) -> None:
    shown = value.isoformat() if isinstance(value, date) else str(value)
    raise cls(f"{name} {detail}", **{name: shown}, **{k: str(v) for k, v in bounds.items()})


def _decimal(cls: type[ValuationInputInvalid], name: str, value: Any) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        _refuse(cls, name, value, "must be a finite decimal number")
    return value


def _count(cls: type[ValuationInputInvalid], name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _refuse(cls, name, value, "must be a positive whole number", minimum=1)
    return value


def _within_ql_range(cls: type[ValuationInputInvalid], name: str, value: Any) -> date:
    if not isinstance(value, date) or not _EARLIEST_DATE <= value <= _LATEST_DATE:
        _refuse(cls, name, value, "must be a date within 1901-01-01..2199-12-31",
                minimum=_EARLIEST_DATE.isoformat(), maximum=_LATEST_DATE.isoformat())
    return value


def check_inputs(inputs: ValuationInputs) -> None:
    """Refuse the first input, in field order, that the models cannot price; the error names it."""
    valuation = _within_ql_range(ValuationDateInvalid, "valuation_date", inputs.valuation_date)
    expiry = _within_ql_range(ExpiryDateInvalid, "expiry_date", inputs.expiry_date)
    if expiry <= valuation:
        _refuse(ExpiryDateInvalid, "expiry_date", expiry, "must be after the valuation date",
                valuation_date=valuation.isoformat())
    if (expiry - valuation).days > MAX_TERM_DAYS:
        _refuse(ExpiryDateInvalid, "expiry_date", expiry, "must be at most 50 years after the valuation date",
                valuation_date=valuation.isoformat(), maximum_days=MAX_TERM_DAYS)

    if _decimal(UnderlyingPriceInvalid, "underlying_price", inputs.underlying_price) <= 0:
        _refuse(UnderlyingPriceInvalid, "underlying_price", inputs.underlying_price, "must be positive")
    if _decimal(ExercisePriceInvalid, "exercise_price", inputs.exercise_price) <= 0:
        _refuse(ExercisePriceInvalid, "exercise_price", inputs.exercise_price, "must be positive")
    volatility = _decimal(VolatilityInvalid, "volatility", inputs.volatility)
    if not 0 < volatility <= MAX_VOLATILITY:
        _refuse(VolatilityInvalid, "volatility", volatility, "must be positive and at most 5 (500%)",
                minimum_exclusive=0, maximum=MAX_VOLATILITY)
    rate = _decimal(RiskFreeRateInvalid, "risk_free_rate", inputs.risk_free_rate)
    if not MIN_RISK_FREE_RATE <= rate <= MAX_RISK_FREE_RATE:
        _refuse(RiskFreeRateInvalid, "risk_free_rate", rate, "must be within [-0.10, 0.50]",
                minimum=MIN_RISK_FREE_RATE, maximum=MAX_RISK_FREE_RATE)
    dividend = _decimal(DividendYieldInvalid, "dividend_yield", inputs.dividend_yield)
    if not 0 <= dividend <= MAX_DIVIDEND_YIELD:
        _refuse(DividendYieldInvalid, "dividend_yield", dividend, "must be within [0, 0.50]",
                minimum=0, maximum=MAX_DIVIDEND_YIELD)

    _count(SharesOutstandingInvalid, "shares_outstanding", inputs.shares_outstanding)
    if _decimal(NewSharesPerWarrantInvalid, "new_shares_per_warrant", inputs.new_shares_per_warrant) <= 0:
        _refuse(NewSharesPerWarrantInvalid, "new_shares_per_warrant", inputs.new_shares_per_warrant,
                "must be positive")
    _count(WarrantsOutstandingInvalid, "warrants_outstanding", inputs.warrants_outstanding)
    if not isinstance(inputs.creates_new_shares, bool):
        _refuse(CreatesNewSharesInvalid, "creates_new_shares", inputs.creates_new_shares, "must be true or false")

    if inputs.style not in ("european", "american"):
        _refuse(StyleInvalid, "style", inputs.style, 'must be "european" or "american"')
    start = inputs.exercise_start_date
    if start is not None:
        if inputs.style != "american":
            _refuse(ExerciseStartDateInvalid, "exercise_start_date", start,
                    "applies to American-style warrants only; a European warrant is exercised at expiry")
        _within_ql_range(ExerciseStartDateInvalid, "exercise_start_date", start)
        if start >= expiry:
            _refuse(ExerciseStartDateInvalid, "exercise_start_date", start, "must be before the expiry date",
                    expiry_date=expiry.isoformat())
    steps = inputs.lattice_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not MIN_LATTICE_STEPS <= steps <= MAX_LATTICE_STEPS:
        _refuse(LatticeStepsInvalid, "lattice_steps", steps, "must be a whole number within 10..5000",
                minimum=MIN_LATTICE_STEPS, maximum=MAX_LATTICE_STEPS)

    if inputs.dlom_method not in (None, "finnerty_2012", "chaffe_1993"):
        _refuse(DlomMethodInvalid, "dlom_method", inputs.dlom_method,
                'must be "finnerty_2012", "chaffe_1993" or null')
    liquidity = inputs.liquidity_date
    if liquidity is not None:
        if inputs.dlom_method is None:
            _refuse(LiquidityDateInvalid, "liquidity_date", liquidity, "needs a dlom_method to apply to")
        _within_ql_range(LiquidityDateInvalid, "liquidity_date", liquidity)
        if liquidity <= valuation:
            _refuse(LiquidityDateInvalid, "liquidity_date", liquidity, "must be after the valuation date",
                    valuation_date=valuation.isoformat())
        if (liquidity - valuation).days > MAX_TERM_DAYS:
            _refuse(LiquidityDateInvalid, "liquidity_date", liquidity,
                    "must be at most 50 years after the valuation date",
                    valuation_date=valuation.isoformat(), maximum_days=MAX_TERM_DAYS)


def check_sources(sources: InputSources, valuation_date: date) -> None:
    """A valuation states its evidence (估值依据): a dated basis, a report digest, named peers, a rate source."""
    if sources.underlying_basis_date > valuation_date:
        _refuse(UnderlyingBasisDateInvalid, "underlying_basis_date", sources.underlying_basis_date,
                "must be on or before the valuation date", valuation_date=valuation_date.isoformat())
    digest = sources.underlying_document_digest
    if digest is None:
        if sources.underlying_basis == UnderlyingBasis.INDEPENDENT_REPORT:
            _refuse(UnderlyingDocumentDigestInvalid, "underlying_document_digest", None,
                    "is required when the underlying value comes from an independent report")
    elif len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        _refuse(UnderlyingDocumentDigestInvalid, "underlying_document_digest", digest,
                "must be a SHA-256 digest: 64 lowercase hexadecimal characters")
    if not sources.volatility_peers or any(not p.strip() for p in sources.volatility_peers):
        _refuse(VolatilityPeersInvalid, "volatility_peers", list(sources.volatility_peers),
                "must name at least one listed comparable, none blank")
    for name in ("volatility_method", "risk_free_source"):
        if not getattr(sources, name).strip():
            _refuse(SourceTextInvalid, name, "", "must not be empty")


def continuous_rate_from_annual(annual_rate: Decimal) -> Decimal:
    """A yield quoted with annual compounding (e.g. a CGB yield) as the continuous rate ln(1 + y), 12 dp."""
    with localcontext(_CTX):
        return _round((Decimal(1) + annual_rate).ln(), FRACTION_SCALE)


# -- the marketability discount (流动性折扣, DLOM) ---------------------------------------------


def finnerty_2012_dlom(volatility: float, years: float, dividend_yield: float = 0.0) -> float:
    """Finnerty (2012) average-strike put: the DLOM as a fraction of the marketable value.

    Finnerty, J. D. (2012), "An Average-Strike Put Option Model of the Marketability
    Discount", Journal of Derivatives 19(4): 53–69. The holder of an unmarketable position is
    taken to have no market-timing skill, so what they lose is the right to sell at the
    average price over the restriction period:

        D/V = e^(−qT) · [N(v√T / 2) − N(−v√T / 2)],
        v²T = σ²T + ln(2·(e^(σ²T) − σ²T − 1)) − 2·ln(e^(σ²T) − 1).

    It depends on σ, T and q only (not on r, not on the price level); it grows with σ and T
    and is bounded by 2N(√ln2 / 2) − 1 ≈ 32.28% as σ²T → ∞. For small σ²T it approaches the
    discount of an at-the-money put with the volatility of a running average, σ√(T/3).
    """
    x = volatility * volatility * years
    if x < 1.0:
        # With s = Σ_{j≥0} x^j/(j+2)!: e^x − x − 1 = x²·s and e^x − 1 = x·(1 + x·s), so
        # v²T = x + ln(2s) − 2·ln(1 + x·s); ln(2s) = ln(1 + a), a = 2·Σ_{j≥1} x^j/(j+2)!.
        # Written this way no term cancels however small σ²T is.
        a = 2.0 * math.fsum(x**j / math.factorial(j + 2) for j in range(1, 24))
        s = 0.5 + a / 2.0
        v2t = x + math.log1p(a) - 2.0 * math.log1p(x * s)
    elif x < 30.0:
        em1 = math.expm1(x)
        v2t = x + math.log(2.0 * (em1 - x)) - 2.0 * math.log(em1)
    else:  # the same with e^x factored out, as e^x overflows past x ≈ 709:
        # v²T = ln2 + ln(1 − (x+1)e^−x) − 2·ln(1 − e^−x)
        e = math.exp(-x)
        v2t = math.log(2.0) + math.log1p(-(x + 1.0) * e) - 2.0 * math.log1p(-e)
    half = math.sqrt(v2t) / 2.0
    n = ql.CumulativeNormalDistribution()
    return math.exp(-dividend_yield * years) * (n(half) - n(-half))


def _chaffe_1993_dlom(market: _Market, horizon: ql.Date) -> float:
    """Chaffe (1993) protective put: the DLOM is an at-the-money European put over the horizon.

    Chaffe, D. B. H. (1993), "Option Pricing as a Proxy for Discount for Lack of
    Marketability in Private Company Valuations", Business Valuation Review 12(4): 182–188.
    Priced by QuantLib's analytic engine on the same σ, r and q, with S = K = 1 (it scales).
    """
    put = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Put, 1.0), ql.EuropeanExercise(horizon))
    put.setPricingEngine(ql.AnalyticEuropeanEngine(market.unit_process))
    return put.NPV()


# -- pricing --------------------------------------------------------------------------------


class _Market:
    """The flat Black–Scholes–Merton world of one valuation, with quotes that can be bumped."""

    def __init__(self, reference: ql.Date, spot: float, rate: float, dividend: float, volatility: float) -> None:
        day_count = ql.Actual365Fixed()
        self.spot = ql.SimpleQuote(spot)
        self.volatility = ql.SimpleQuote(volatility)
        dividend_curve = ql.YieldTermStructureHandle(ql.FlatForward(reference, dividend, day_count, ql.Continuous))
        rate_curve = ql.YieldTermStructureHandle(ql.FlatForward(reference, rate, day_count, ql.Continuous))
        vol_surface = ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(reference, ql.NullCalendar(), ql.QuoteHandle(self.volatility), day_count)
        )
        self.process = ql.BlackScholesMertonProcess(ql.QuoteHandle(self.spot), dividend_curve, rate_curve, vol_surface)
        self.unit_process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(1.0)), dividend_curve, rate_curve, vol_surface
        )


def lattice_steps_used(days_to_expiry: int, requested: int) -> int:
    """The step count the lattice runs with: the requested one, or the next that QuantLib prices correctly.

    QuantLib's binomial engine (seen in 1.44) compares the tree's last time, (T/n)·n, with T;
    when that product rounds one unit below T, it skips the exercise at expiry and prices an
    American warrant as if it expired one step early (about 0.003 per share low in Hull's
    example at n = 1000). It happens for a few percent of (T, n) pairs. Moving to the first
    n' ≥ n where (T/n')·n' ≥ T avoids it; the count used is recorded with the valuation.
    """
    years = days_to_expiry / 365.0  # exactly QuantLib's Actual/365 Fixed year fraction
    steps = requested
    while (years / steps) * steps < years:
        steps += 1
    return steps


def _ql_date(d: date) -> ql.Date:
    return ql.Date(d.day, d.month, d.year)


@contextmanager
def _evaluation_date(d: ql.Date) -> Iterator[None]:
    settings = ql.Settings.instance()
    before = settings.evaluationDate
    settings.evaluationDate = d
    try:
        yield
    finally:
        settings.evaluationDate = before


def _dec(x: float, name: str) -> Decimal:
    if not math.isfinite(x):
        raise ValuationEngineFailed("the pricing engine returned a non-finite figure", figure=name, value=repr(x))
    return Decimal(repr(x))


def _round(x: Decimal, scale: Decimal) -> Decimal:
    return _CTX.plus(x.quantize(scale, context=_CTX))  # plus() turns −0 into 0


def _call(payoff_strike: float, exercise: ql.Exercise, engine: ql.PricingEngine) -> ql.VanillaOption:
    option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, payoff_strike), exercise)
    option.setPricingEngine(engine)
    return option


def price(inputs: ValuationInputs) -> ValuationResult:
    """Value one warrant unit (认股权估值): option layer (QuantLib), dilution layer, marketability layer.

    Option layer, per share, before dilution: a European warrant by the analytic
    Black–Scholes–Merton formula (QuantLib AnalyticEuropeanEngine); an American one by a
    Cox–Ross–Rubinstein binomial tree of `lattice_steps` steps (QuantLib BinomialVanillaEngine
    "crr"), exercisable from `exercise_start_date` (or now) to expiry; see
    `lattice_steps_used` for one step-count adjustment. QuantLib's CRR tree moves the log
    price by ±σ√Δt per step with up-probability ½ + ½·(r − q − σ²/2)·√Δt/σ, not the
    (e^((r−q)Δt) − d)/(u − d) of some textbooks: at 1000 steps the two differ by a few 1e-5
    per share in Hull's example.
    Delta is analytic or from the tree's first step; lattice vega is a central difference of
    the tree value.

    Dilution layer (摊薄调整), Galai & Schneller (1978), "Pricing of Warrants and the Value of
    the Firm", Journal of Finance 33(5): 1333–1342; as in Hull, Options, Futures, and Other
    Derivatives, "Warrants, employee stock options, and convertibles". When exercise is by
    capital increase (增资), M warrant units each subscribing for k new shares at K turn N
    shares into N + M·k and bring in M·k·K of cash, so per share subscribed the payoff is
    N / (N + M·k) of a call on the equity per existing share. We implement the simple variant:
    the equity per existing share is taken to be `underlying_price` itself and its volatility
    `volatility`, which is right when the underlying value does not already net off the
    warrants (e.g. the latest round's price per share); if it does, this understates slightly
    (Hull's iterative variant, solving W with V/N = S + M·k·W/N, is not implemented). For
    American style the same factor scales the lattice value, which assumes all units are
    exercised together.

    Marketability layer (流动性折扣): `finnerty_2012_dlom` or Chaffe's protective put over the
    horizon to `liquidity_date` (default: expiry), as a fraction of the marketable value, on
    the underlying's volatility.
    """
    check_inputs(inputs)
    days = (inputs.expiry_date - inputs.valuation_date).days
    american = inputs.style == "american"
    steps = lattice_steps_used(days, inputs.lattice_steps) if american else None
    reference = _ql_date(inputs.valuation_date)
    expiry = _ql_date(inputs.expiry_date)
    sigma = float(inputs.volatility)
    try:
        with _evaluation_date(reference):
            market = _Market(reference, float(inputs.underlying_price), float(inputs.risk_free_rate),
                             float(inputs.dividend_yield), sigma)
            strike = float(inputs.exercise_price)
            european = _call(strike, ql.EuropeanExercise(expiry), ql.AnalyticEuropeanEngine(market.process))
            european_npv = european.NPV()
            if american:
                earliest = max(inputs.exercise_start_date or inputs.valuation_date, inputs.valuation_date)
                lattice = _call(
                    strike,
                    ql.AmericanExercise(_ql_date(earliest), expiry),
                    ql.BinomialVanillaEngine(market.process, LATTICE_TREE, steps),
                )
                npv, delta = lattice.NPV(), lattice.delta()
                bump = min(VEGA_BUMP, sigma / 2.0)
                market.volatility.setValue(sigma + bump)
                up = lattice.NPV()
                market.volatility.setValue(sigma - bump)
                down = lattice.NPV()
                market.volatility.setValue(sigma)
                vega = (up - down) / (2.0 * bump)
            else:
                npv, delta, vega, bump = european_npv, european.delta(), european.vega(), None

            dlom_days: int | None = None
            dlom = 0.0
            if inputs.dlom_method is not None:
                horizon = inputs.liquidity_date or inputs.expiry_date
                dlom_days = (horizon - inputs.valuation_date).days
                if inputs.dlom_method == "finnerty_2012":
                    dlom = finnerty_2012_dlom(sigma, dlom_days / 365.0, float(inputs.dividend_yield))
                else:
                    dlom = _chaffe_1993_dlom(market, _ql_date(horizon))
    except RuntimeError as exc:  # QuantLib's own failures: a defect, not the caller's input
        raise ValuationEngineFailed("the pricing engine failed", reason=str(exc)) from exc

    with localcontext(_CTX):
        k = inputs.new_shares_per_warrant
        n = Decimal(inputs.shares_outstanding)
        m = Decimal(inputs.warrants_outstanding)
        new_shares = m * k if inputs.creates_new_shares else Decimal(0)
        factor = _round(n / (n + new_shares), FRACTION_SCALE)
        option_value = _round(_dec(npv, "option_value"), MODEL_SCALE)
        option_delta = _round(_dec(delta, "delta"), MODEL_SCALE)
        option_vega = _round(_dec(vega, "vega"), MODEL_SCALE)
        diluted = _round(factor * option_value, MODEL_SCALE)
        dlom_fraction = _round(_dec(dlom, "dlom"), FRACTION_SCALE)
        marketable = _round(k * diluted, VALUE_SCALE)
        value = _round(k * diluted * (1 - dlom_fraction), VALUE_SCALE)
        return ValuationResult(
            model="binomial_crr" if american else "black_scholes_merton",
            model_version=MODEL_VERSION,
            quantlib_version=QUANTLIB_VERSION,
            engine="QuantLib BinomialVanillaEngine(crr)" if american else "QuantLib AnalyticEuropeanEngine",
            day_count=DAY_COUNT,
            compounding=COMPOUNDING,
            days_to_expiry=days,
            year_fraction=_round(Decimal(days) / 365, FRACTION_SCALE),
            lattice_steps=inputs.lattice_steps if american else None,
            lattice_steps_used=steps,
            european_value_per_share=_round(_dec(european_npv, "european_value"), MODEL_SCALE),
            option_value_per_share=option_value,
            option_delta_per_share=option_delta,
            option_vega_per_share=option_vega,
            vega_bump=None if bump is None else _dec(bump, "vega_bump"),
            dilution_method="galai_schneller_1978_simple" if inputs.creates_new_shares else "none",
            new_shares_on_exercise=new_shares,
            dilution_factor=factor,
            diluted_value_per_share=diluted,
            undiluted_value_per_unit=_round(k * option_value, VALUE_SCALE),
            marketable_value_per_unit=marketable,
            delta_per_unit=_round(k * factor * option_delta, MODEL_SCALE),
            vega_per_unit=_round(k * factor * option_vega, MODEL_SCALE),
            dlom_method=inputs.dlom_method,
            dlom_horizon_days=dlom_days,
            dlom_fraction=dlom_fraction,
            dlom_amount_per_unit=marketable - value,
            value_per_unit=value,
            value_of_all_warrants=value * m,
        )
