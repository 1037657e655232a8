"""Warrant valuation (估值定价): textbook cases, QuantLib called directly, dilution, DLOM, refusals."""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal, getcontext, localcontext
from pathlib import Path

import msgspec
import pytest
import QuantLib as ql
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.errors import RuleViolation
from registry.valuation import models
from registry.valuation.models import (
    InputSources,
    UnderlyingBasis,
    ValuationInputs,
    ValuationResult,
    check_sources,
    continuous_rate_from_annual,
    finnerty_2012_dlom,
    lattice_steps_used,
    price,
)

D = Decimal
VALUED = date(2024, 1, 2)
HALF_YEAR_SHORT = VALUED + timedelta(days=182)  # T = 0.49863 (Actual/365 Fixed)
HALF_YEAR_LONG = VALUED + timedelta(days=183)  # T = 0.50137


def hull(**changes: object) -> ValuationInputs:
    """Hull's worked example, S=42, K=40, r=10%, σ=20%, T≈0.5, as a European warrant that barely dilutes."""
    base = ValuationInputs(
        valuation_date=VALUED,
        expiry_date=HALF_YEAR_SHORT,
        underlying_price=D("42"),
        exercise_price=D("40"),
        volatility=D("0.20"),
        risk_free_rate=D("0.10"),
        shares_outstanding=10_000_000,
        new_shares_per_warrant=D("1"),
        warrants_outstanding=100_000,
        style="european",
    )
    return msgspec.structs.replace(base, **changes)


def warrant(**changes: object) -> ValuationInputs:
    """A regional-market warrant priced per yuan of registered capital, units of 10 000 yuan of capital."""
    base = ValuationInputs(
        valuation_date=date(2025, 6, 30),
        expiry_date=date(2028, 6, 30),
        underlying_price=D("4.20"),
        exercise_price=D("3.50"),
        volatility=D("0.45"),
        risk_free_rate=D("0.0144"),
        dividend_yield=D("0.01"),
        shares_outstanding=50_000_000,
        new_shares_per_warrant=D("10000"),
        warrants_outstanding=200,
        style="american",
        dlom_method="finnerty_2012",
    )
    return msgspec.structs.replace(base, **changes)


# -- QuantLib, called directly (independent of the module's own set-up) ---------------------


@contextmanager
def evaluation_date(d: date) -> Iterator[ql.Date]:
    settings_ = ql.Settings.instance()
    before = settings_.evaluationDate
    today = ql.Date(d.day, d.month, d.year)
    settings_.evaluationDate = today
    try:
        yield today
    finally:
        settings_.evaluationDate = before


def ql_process(i: ValuationInputs, today: ql.Date, spot: float | None = None) -> ql.BlackScholesMertonProcess:
    dc = ql.Actual365Fixed()
    return ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(float(i.underlying_price) if spot is None else spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, float(i.dividend_yield), dc, ql.Continuous)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, float(i.risk_free_rate), dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), float(i.volatility), dc)),
    )


def ql_option(i: ValuationInputs, kind: str, engine: str, steps: int = 0,
              option_type: int = ql.Option.Call) -> ql.VanillaOption:
    """A VanillaOption priced by QuantLib; call NPV() etc. inside `evaluation_date`."""
    today = ql.Date(i.valuation_date.day, i.valuation_date.month, i.valuation_date.year)
    expiry = ql.Date(i.expiry_date.day, i.expiry_date.month, i.expiry_date.year)
    exercise = ql.AmericanExercise(today, expiry) if kind == "american" else ql.EuropeanExercise(expiry)
    option = ql.VanillaOption(ql.PlainVanillaPayoff(option_type, float(i.exercise_price)), exercise)
    process = ql_process(i, today)
    option.setPricingEngine(
        ql.AnalyticEuropeanEngine(process) if engine == "analytic" else ql.BinomialVanillaEngine(process, "crr", steps)
    )
    return option


def ten_dp(x: float) -> Decimal:
    return D(repr(x)).quantize(models.MODEL_SCALE)


def years(i: ValuationInputs) -> float:
    return (i.expiry_date - i.valuation_date).days / 365.0


# -- textbook cases -------------------------------------------------------------------------


def test_hulls_textbook_call_is_worth_4_76() -> None:
    short, long_ = price(hull()), price(hull(expiry_date=HALF_YEAR_LONG))
    for result in (short, long_):
        assert abs(result.option_value_per_share - D("4.76")) < D("0.01")
    # Hull's T = 0.5 lies between 182 and 183 days; so does his unrounded 4.7594.
    assert short.option_value_per_share < D("4.7594") < long_.option_value_per_share


def test_hulls_textbook_put_is_worth_0_81_by_put_call_parity() -> None:
    for expiry in (HALF_YEAR_SHORT, HALF_YEAR_LONG):
        i = hull(expiry_date=expiry)
        call = float(price(i).option_value_per_share)
        t = years(i)
        put = call - 42 + 40 * math.exp(-0.10 * t)
        assert abs(put - 0.81) < 0.01
        with evaluation_date(VALUED):
            quantlib_put = ql_option(i, "european", "analytic", option_type=ql.Option.Put).NPV()
        assert put == pytest.approx(quantlib_put, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    s=st.decimals(min_value=D("0.5"), max_value=D("200"), places=2),
    k=st.decimals(min_value=D("0.5"), max_value=D("200"), places=2),
    sigma=st.decimals(min_value=D("0.05"), max_value=D("1.50"), places=3),
    r=st.decimals(min_value=D("-0.02"), max_value=D("0.12"), places=4),
    q=st.decimals(min_value=D("0"), max_value=D("0.08"), places=4),
    days=st.integers(min_value=1, max_value=3650),
)
def test_put_call_parity_holds_against_quantlibs_own_put(s, k, sigma, r, q, days) -> None:
    i = hull(underlying_price=s, exercise_price=k, volatility=sigma, risk_free_rate=r, dividend_yield=q,
             expiry_date=VALUED + timedelta(days=days))
    call = float(price(i).option_value_per_share)
    with evaluation_date(VALUED):
        put = ql_option(i, "european", "analytic", option_type=ql.Option.Put).NPV()
    t = years(i)
    forward_gap = float(s) * math.exp(-float(q) * t) - float(k) * math.exp(-float(r) * t)
    assert call - put == pytest.approx(forward_gap, abs=1e-9 + 1e-12 * float(s))


# -- the lattice ----------------------------------------------------------------------------


def test_the_american_lattice_is_quantlibs_binomial_engine_called_directly() -> None:
    i = warrant(dlom_method=None)
    result = price(i)
    assert result.model == "binomial_crr"
    assert (result.lattice_steps, result.lattice_steps_used) == (1000, 1000)
    with evaluation_date(i.valuation_date):
        direct = ql_option(i, "american", "binomial", 1000)
        assert result.option_value_per_share == ten_dp(direct.NPV())
        assert result.option_delta_per_share == ten_dp(direct.delta())


def test_a_step_count_quantlib_would_misprice_is_moved_to_the_next_safe_one() -> None:
    i = hull(style="american", lattice_steps=1000)  # 182 days: (T/1000)·1000 rounds below T
    assert lattice_steps_used(182, 1000) == 1002  # 1001 trips it too
    assert lattice_steps_used(182, 999) == 999
    result = price(i)
    assert result.lattice_steps_used == 1002
    with evaluation_date(VALUED):
        flawed = ql_option(i, "american", "binomial", 1000).NPV()
        european_tree = ql_option(i, "european", "binomial", 1000).NPV()
        used = ql_option(i, "american", "binomial", 1002).NPV()
    # The flaw this works around: without dividends an American call must equal the
    # European on the same tree, but QuantLib drops the payoff at expiry for 1000 steps.
    assert flawed < european_tree - 0.002
    assert result.option_value_per_share == ten_dp(used)


def test_an_american_call_without_dividends_is_worth_its_european_value() -> None:
    for expiry in (HALF_YEAR_SHORT, HALF_YEAR_LONG, VALUED + timedelta(days=1000)):
        i = hull(style="american", expiry_date=expiry)
        result = price(i)
        with evaluation_date(VALUED):
            european_tree = ql_option(i, "european", "binomial", result.lattice_steps_used).NPV()
        assert float(result.option_value_per_share) == pytest.approx(european_tree, abs=1e-9)
        assert abs(result.option_value_per_share - result.european_value_per_share) < D("0.005")


@settings(max_examples=25, deadline=None)
@given(
    s=st.decimals(min_value=D("20"), max_value=D("80"), places=2),
    q=st.decimals(min_value=D("0.01"), max_value=D("0.15"), places=3),
    days=st.integers(min_value=30, max_value=1500),
)
def test_an_american_call_is_worth_at_least_the_european(s, q, days) -> None:
    i = hull(style="american", underlying_price=s, dividend_yield=q, expiry_date=VALUED + timedelta(days=days),
             lattice_steps=300)
    result = price(i)
    with evaluation_date(VALUED):
        european_tree = ql_option(i, "european", "binomial", result.lattice_steps_used).NPV()
    assert result.option_value_per_share >= ten_dp(european_tree)
    # against the analytic value, up to the tree's discretisation error
    assert result.option_value_per_share >= result.european_value_per_share - D("0.02")


def test_early_exercise_is_worth_something_when_dividends_are_high() -> None:
    result = price(hull(style="american", underlying_price=D("60"), dividend_yield=D("0.08"),
                        expiry_date=VALUED + timedelta(days=730)))
    assert result.option_value_per_share > result.european_value_per_share + D("0.10")


def test_an_exercise_window_that_opens_later_is_worth_no_more_and_no_less_than_european() -> None:
    i = hull(style="american", underlying_price=D("60"), dividend_yield=D("0.08"),
             expiry_date=VALUED + timedelta(days=730))
    now = price(i)
    later = price(msgspec.structs.replace(i, exercise_start_date=VALUED + timedelta(days=365)))
    with evaluation_date(VALUED):
        european_tree = ql_option(i, "european", "binomial", now.lattice_steps_used).NPV()
    assert float(now.option_value_per_share) > float(later.option_value_per_share) > european_tree


# -- Greeks ---------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    s=st.decimals(min_value=D("1"), max_value=D("100"), places=2),
    sigma=st.decimals(min_value=D("0.05"), max_value=D("1.00"), places=3),
    days=st.integers(min_value=10, max_value=2000),
)
def test_european_greeks_are_quantlibs_analytic_greeks(s, sigma, days) -> None:
    i = hull(underlying_price=s, volatility=sigma, dividend_yield=D("0.02"), expiry_date=VALUED + timedelta(days=days))
    result = price(i)
    with evaluation_date(VALUED):
        direct = ql_option(i, "european", "analytic")
        assert result.option_delta_per_share == ten_dp(direct.delta())
        assert result.option_vega_per_share == ten_dp(direct.vega())
    assert result.vega_bump is None


def test_american_greeks_agree_with_the_analytic_ones_when_early_exercise_is_worthless() -> None:
    i = hull(style="american", expiry_date=VALUED + timedelta(days=365))
    american = price(i)
    with evaluation_date(VALUED):
        analytic = ql_option(i, "european", "analytic")
        delta, vega = analytic.delta(), analytic.vega()
    assert american.vega_bump == D("0.01")
    assert float(american.option_delta_per_share) == pytest.approx(delta, abs=2e-3)
    assert float(american.option_vega_per_share) == pytest.approx(vega, rel=1e-2)


def test_unit_greeks_are_share_greeks_times_entitlement_and_dilution() -> None:
    result = price(warrant(style="european"))
    k, f = D("10000"), result.dilution_factor
    assert result.delta_per_unit == (k * f * result.option_delta_per_share).quantize(models.MODEL_SCALE)
    assert result.vega_per_unit == (k * f * result.option_vega_per_share).quantize(models.MODEL_SCALE)


# -- dilution (Galai–Schneller) -------------------------------------------------------------


def test_the_dilution_factor_is_existing_shares_over_shares_after_exercise() -> None:
    result = price(warrant())
    # N = 50 000 000; M·k = 200 × 10 000 = 2 000 000 new yuan of capital.
    assert result.new_shares_on_exercise == D("2000000")
    assert result.dilution_factor == (D(50_000_000) / D(52_000_000)).quantize(models.FRACTION_SCALE)
    assert result.dilution_method == "galai_schneller_1978_simple"


def test_dilution_puts_the_value_below_the_undiluted_one() -> None:
    for style in ("european", "american"):
        result = price(warrant(style=style, dlom_method=None))
        assert result.marketable_value_per_unit < result.undiluted_value_per_unit
        assert result.diluted_value_per_share < result.option_value_per_share


def test_exercise_from_existing_shares_does_not_dilute() -> None:
    result = price(warrant(creates_new_shares=False, dlom_method=None))
    assert result.dilution_factor == 1 and result.new_shares_on_exercise == 0
    assert result.dilution_method == "none"
    assert result.marketable_value_per_unit == result.undiluted_value_per_unit


def test_the_diluted_value_converges_to_the_undiluted_as_new_shares_vanish() -> None:
    gaps = []
    for k in ("1000", "10", "0.1", "0.001", "0.00001"):
        result = price(warrant(new_shares_per_warrant=D(k), dlom_method=None))
        gap = result.option_value_per_share - result.diluted_value_per_share
        # the gap is exactly the dilution: C·M·k/(N+M·k), up to rounding
        assert gap <= result.option_value_per_share * (1 - result.dilution_factor) + models.MODEL_SCALE
        gaps.append(gap)
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] <= D("0.0000001")


@settings(max_examples=40, deadline=None)
@given(m1=st.integers(min_value=1, max_value=10_000), extra=st.integers(min_value=1, max_value=1_000_000))
def test_more_warrants_outstanding_means_less_value_per_unit(m1, extra) -> None:
    fewer = price(warrant(style="european", warrants_outstanding=m1))
    more = price(warrant(style="european", warrants_outstanding=m1 + extra))
    assert more.dilution_factor < fewer.dilution_factor
    assert more.value_per_unit <= fewer.value_per_unit


# -- the marketability discount (DLOM) ------------------------------------------------------


def finnerty_in_decimal(sigma: float, t: float) -> float:
    """Finnerty (2012) evaluated naively in 60-digit Decimal arithmetic: no cancellation to worry about."""
    with localcontext() as ctx:
        ctx.prec = 60
        x = D(repr(sigma)) ** 2 * D(repr(t))
        v2t = x + (2 * (x.exp() - x - 1)).ln() - 2 * (x.exp() - 1).ln()
        half = float(v2t.sqrt()) / 2
    n = ql.CumulativeNormalDistribution()
    return n(half) - n(-half)


@pytest.mark.parametrize("x", [1e-10, 1e-6, 1e-3, 0.2, 0.999999, 1.0, 1.000001, 4.0, 29.999, 30.0, 30.001, 200.0])
def test_finnerty_formula_matches_a_high_precision_evaluation(x: float) -> None:
    sigma = math.sqrt(x)
    assert finnerty_2012_dlom(sigma, 1.0) == pytest.approx(finnerty_in_decimal(sigma, 1.0), rel=1e-12)


def test_finnerty_discount_is_close_to_quantlibs_monte_carlo_average_strike_put() -> None:
    # Finnerty's closed form approximates the arithmetic average-strike put by matching
    # moments; at moderate σ√T it should sit within about 1% of the exact put (here: daily
    # fixings, r = q = 0, 20 000 antithetic paths).
    sigma, days = 0.30, 365
    with evaluation_date(VALUED) as today:
        dc = ql.Actual365Fixed()
        flat = ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, dc, ql.Continuous))
        vol = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), sigma, dc))
        process = ql.BlackScholesMertonProcess(ql.QuoteHandle(ql.SimpleQuote(1.0)), flat, flat, vol)
        put = ql.DiscreteAveragingAsianOption(
            ql.Average.Arithmetic, 0.0, 0, [today + d for d in range(1, days + 1)],
            ql.PlainVanillaPayoff(ql.Option.Put, 1.0), ql.EuropeanExercise(today + days),
        )
        put.setPricingEngine(ql.MCDiscreteArithmeticASEngine(
            process, "pseudorandom", antitheticVariate=True, requiredSamples=20_000, seed=42))
        exact, error = put.NPV(), put.errorEstimate()
    closed_form = finnerty_2012_dlom(sigma, days / 365)
    assert abs(closed_form - exact) <= 3 * error + 0.01 * exact


@settings(max_examples=80, deadline=None)
@given(
    sigma=st.floats(min_value=0.01, max_value=5.0),
    t=st.floats(min_value=1 / 365, max_value=50.0),
    more=st.floats(min_value=1.01, max_value=3.0),
)
def test_finnerty_discount_grows_with_volatility_and_time_below_its_ceiling(sigma, t, more) -> None:
    ceiling = 2 * ql.CumulativeNormalDistribution()(math.sqrt(math.log(2)) / 2) - 1  # 32.28%
    d = finnerty_2012_dlom(sigma, t)
    assert 0 < d <= ceiling + 1e-15
    assert finnerty_2012_dlom(sigma * more, t) >= d - 1e-15
    assert finnerty_2012_dlom(sigma, t * more) >= d - 1e-15
    assert finnerty_2012_dlom(sigma, t, dividend_yield=0.05) < d


def test_the_finnerty_dlom_of_a_valuation_is_the_formula_on_its_horizon() -> None:
    i = warrant(liquidity_date=date(2026, 6, 30))
    result = price(i)
    assert result.dlom_horizon_days == 365
    expected = finnerty_2012_dlom(0.45, 1.0, 0.01)
    assert result.dlom_fraction == D(repr(expected)).quantize(models.FRACTION_SCALE)
    assert price(warrant()).dlom_horizon_days == (date(2028, 6, 30) - date(2025, 6, 30)).days


def test_the_chaffe_dlom_is_quantlibs_at_the_money_put() -> None:
    i = warrant(dlom_method="chaffe_1993")
    result = price(i)
    with evaluation_date(i.valuation_date):
        atm = ql_option(msgspec.structs.replace(i, underlying_price=D(1), exercise_price=D(1)), "european",
                        "analytic", option_type=ql.Option.Put)
        assert result.dlom_fraction == D(repr(atm.NPV())).quantize(models.FRACTION_SCALE)
    assert result.dlom_method == "chaffe_1993"


def test_the_dlom_amount_is_the_marketable_value_less_the_value() -> None:
    result = price(warrant())
    assert D(0) < result.dlom_fraction < D("0.33")
    assert result.dlom_amount_per_unit == result.marketable_value_per_unit - result.value_per_unit
    without = price(warrant(dlom_method=None))
    assert without.dlom_fraction == 0 and without.dlom_amount_per_unit == 0
    assert without.value_per_unit == without.marketable_value_per_unit == result.marketable_value_per_unit


# -- monotonicity (Hypothesis) --------------------------------------------------------------

prices = st.decimals(min_value=D("0.50"), max_value=D("200"), places=2)
vols = st.decimals(min_value=D("0.05"), max_value=D("2.00"), places=3)


@settings(max_examples=60, deadline=None)
@given(s1=prices, s2=prices, sigma=vols, days=st.integers(min_value=1, max_value=3650))
def test_a_european_warrant_is_worth_more_when_the_underlying_is_worth_more(s1, s2, sigma, days) -> None:
    low, high = sorted((s1, s2))
    common = dict(volatility=sigma, expiry_date=VALUED + timedelta(days=days), dividend_yield=D("0.03"))
    assert price(hull(underlying_price=low, **common)).value_per_unit <= price(
        hull(underlying_price=high, **common)).value_per_unit


@settings(max_examples=20, deadline=None)
@given(s1=prices, s2=prices, sigma=vols, days=st.integers(min_value=1, max_value=3650))
def test_an_american_warrant_is_worth_more_when_the_underlying_is_worth_more(s1, s2, sigma, days) -> None:
    low, high = sorted((s1, s2))
    common = dict(volatility=sigma, expiry_date=VALUED + timedelta(days=days), dividend_yield=D("0.05"),
                  style="american", lattice_steps=200)
    assert price(hull(underlying_price=low, **common)).value_per_unit <= price(
        hull(underlying_price=high, **common)).value_per_unit


@settings(max_examples=60, deadline=None)
@given(s=prices, v1=vols, v2=vols, days=st.integers(min_value=1, max_value=3650))
def test_a_warrant_is_worth_more_when_volatility_is_higher(s, v1, v2, days) -> None:
    # without a DLOM: a higher volatility also raises the marketability discount
    low, high = sorted((v1, v2))
    common = dict(underlying_price=s, expiry_date=VALUED + timedelta(days=days), dividend_yield=D("0.03"))
    assert price(hull(volatility=low, **common)).value_per_unit <= price(
        hull(volatility=high, **common)).value_per_unit


@settings(max_examples=60, deadline=None)
@given(s=prices, sigma=vols, d1=st.integers(min_value=1, max_value=3650), d2=st.integers(min_value=1, max_value=3650),
       r=st.decimals(min_value=D("0"), max_value=D("0.10"), places=4))
def test_a_warrant_without_dividends_is_worth_more_when_it_runs_longer(s, sigma, d1, d2, r) -> None:
    # with a dividend yield a European call can lose value with time; without one it cannot
    short, long_ = sorted((d1, d2))
    common = dict(underlying_price=s, volatility=sigma, risk_free_rate=r)
    assert price(hull(expiry_date=VALUED + timedelta(days=short), **common)).value_per_unit <= price(
        hull(expiry_date=VALUED + timedelta(days=long_), **common)).value_per_unit


# -- determinism and the record -------------------------------------------------------------


def test_pricing_twice_gives_identical_figures() -> None:
    for i in (warrant(), warrant(style="european", dlom_method="chaffe_1993"), hull()):
        assert price(i) == price(i)
        assert msgspec.json.encode(price(i)) == msgspec.json.encode(price(i))


def test_recomputing_from_stored_inputs_gives_the_same_figures_to_the_last_digit() -> None:
    i = warrant(exercise_start_date=date(2026, 6, 30), liquidity_date=date(2029, 6, 30))
    stored_inputs = msgspec.json.encode(i)
    stored_result = msgspec.json.encode(price(i))
    recomputed = price(msgspec.json.decode(stored_inputs, type=ValuationInputs))
    assert msgspec.json.encode(recomputed) == stored_result
    assert msgspec.json.decode(stored_result, type=ValuationResult) == recomputed


def test_the_value_per_unit_can_be_redone_by_hand_from_the_stored_layers() -> None:
    r = price(warrant())
    k = D("10000")
    assert r.diluted_value_per_share == (r.dilution_factor * r.option_value_per_share).quantize(models.MODEL_SCALE)
    assert r.value_per_unit == (k * r.diluted_value_per_share * (1 - r.dlom_fraction)).quantize(models.VALUE_SCALE)
    assert r.marketable_value_per_unit == (k * r.diluted_value_per_share).quantize(models.VALUE_SCALE)
    assert r.value_of_all_warrants == r.value_per_unit * 200
    assert r.value_per_unit.as_tuple().exponent == -6


def test_figures_do_not_depend_on_the_callers_decimal_context() -> None:
    expected = price(warrant())
    with localcontext() as ctx:
        ctx.prec, ctx.rounding = 5, ROUND_DOWN
        assert getcontext().prec == 5
        assert price(warrant()) == expected


def test_a_valuation_leaves_quantlibs_evaluation_date_as_it_found_it() -> None:
    with evaluation_date(date(2030, 3, 4)) as before:
        price(warrant())
        assert ql.Settings.instance().evaluationDate == before


def test_a_valuation_of_a_warrant_that_expired_before_today_is_still_priced() -> None:
    # the evaluation date is the valuation date, not the machine's today
    result = price(hull(valuation_date=date(2010, 1, 4), expiry_date=date(2010, 7, 5)))
    assert result.value_per_unit > 0


def test_the_result_names_its_model_and_versions() -> None:
    european, american = price(hull()), price(warrant())
    assert (european.model, european.engine) == ("black_scholes_merton", "QuantLib AnalyticEuropeanEngine")
    assert (american.model, american.engine) == ("binomial_crr", "QuantLib BinomialVanillaEngine(crr)")
    for r in (european, american):
        assert r.model_version == models.MODEL_VERSION
        assert r.quantlib_version == ql.__version__
        assert (r.day_count, r.compounding) == ("actual_365_fixed", "continuous")
    assert european.lattice_steps is None and european.lattice_steps_used is None
    assert european.year_fraction == (D(182) / 365).quantize(models.FRACTION_SCALE)


def test_a_cgb_yield_quoted_annually_is_converted_to_its_continuous_rate() -> None:
    assert continuous_rate_from_annual(D("0.0145")) == D("0.014395880284")  # ln(1.0145)
    assert float(continuous_rate_from_annual(D("0.0145"))) == pytest.approx(math.log1p(0.0145), abs=1e-12)
    assert continuous_rate_from_annual(D("0")) == 0


# -- refusals -------------------------------------------------------------------------------

BAD_INPUTS = [
    ("valuation.expiry_date_invalid", "expiry_date", dict(expiry_date=VALUED)),
    ("valuation.expiry_date_invalid", "expiry_date", dict(expiry_date=VALUED - timedelta(days=1))),
    ("valuation.expiry_date_invalid", "expiry_date", dict(expiry_date=VALUED + timedelta(days=50 * 365 + 1))),
    ("valuation.valuation_date_invalid", "valuation_date", dict(valuation_date=date(1899, 12, 31))),
    ("valuation.underlying_price_invalid", "underlying_price", dict(underlying_price=D("0"))),
    ("valuation.underlying_price_invalid", "underlying_price", dict(underlying_price=D("-1"))),
    ("valuation.underlying_price_invalid", "underlying_price", dict(underlying_price=D("NaN"))),
    ("valuation.underlying_price_invalid", "underlying_price", dict(underlying_price=42.0)),
    ("valuation.exercise_price_invalid", "exercise_price", dict(exercise_price=D("0"))),
    ("valuation.volatility_invalid", "volatility", dict(volatility=D("-0.2"))),
    ("valuation.volatility_invalid", "volatility", dict(volatility=D("0"))),
    ("valuation.volatility_invalid", "volatility", dict(volatility=D("5.01"))),
    ("valuation.volatility_invalid", "volatility", dict(volatility=D("Infinity"))),
    ("valuation.risk_free_rate_invalid", "risk_free_rate", dict(risk_free_rate=D("0.51"))),
    ("valuation.risk_free_rate_invalid", "risk_free_rate", dict(risk_free_rate=D("-0.11"))),
    ("valuation.dividend_yield_invalid", "dividend_yield", dict(dividend_yield=D("-0.01"))),
    ("valuation.dividend_yield_invalid", "dividend_yield", dict(dividend_yield=D("0.51"))),
    ("valuation.shares_outstanding_invalid", "shares_outstanding", dict(shares_outstanding=0)),
    ("valuation.shares_outstanding_invalid", "shares_outstanding", dict(shares_outstanding=True)),
    ("valuation.new_shares_per_warrant_invalid", "new_shares_per_warrant", dict(new_shares_per_warrant=D("0"))),
    ("valuation.warrants_outstanding_invalid", "warrants_outstanding", dict(warrants_outstanding=-3)),
    ("valuation.style_invalid", "style", dict(style="bermudan")),
    ("valuation.lattice_steps_invalid", "lattice_steps", dict(style="american", lattice_steps=9)),
    ("valuation.lattice_steps_invalid", "lattice_steps", dict(style="american", lattice_steps=5001)),
    ("valuation.exercise_start_date_invalid", "exercise_start_date", dict(exercise_start_date=VALUED)),
    ("valuation.exercise_start_date_invalid", "exercise_start_date",
     dict(style="american", exercise_start_date=HALF_YEAR_SHORT)),
    ("valuation.dlom_method_invalid", "dlom_method", dict(dlom_method="longstaff_1995")),
    ("valuation.liquidity_date_invalid", "liquidity_date", dict(liquidity_date=HALF_YEAR_SHORT)),
    ("valuation.liquidity_date_invalid", "liquidity_date", dict(dlom_method="finnerty_2012", liquidity_date=VALUED)),
    ("valuation.creates_new_shares_invalid", "creates_new_shares", dict(creates_new_shares="yes")),
]


@pytest.mark.parametrize(("code", "field", "changes"), BAD_INPUTS, ids=[f"{c}:{ch}" for c, _, ch in BAD_INPUTS])
def test_each_bad_input_is_refused_with_a_code_naming_it(code: str, field: str, changes: dict) -> None:
    with pytest.raises(RuleViolation) as refused:
        price(hull(**changes))
    assert refused.value.code == code
    assert field in refused.value.figures
    assert field in refused.value.detail


def test_a_negative_volatility_is_refused_with_its_figure() -> None:
    with pytest.raises(models.VolatilityInvalid) as refused:
        price(hull(volatility=D("-0.2")))
    assert refused.value.figures["volatility"] == "-0.2"
    assert refused.value.detail == "volatility must be positive and at most 5 (500%)"


def test_decoding_refuses_unknown_fields_and_unknown_styles() -> None:
    good = msgspec.json.encode(hull())
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(good[:-1] + b',"discount":"0.3"}', type=ValuationInputs)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(good.replace(b'"european"', b'"asian"'), type=ValuationInputs)


def sources(**changes: object) -> InputSources:
    base = InputSources(
        underlying_basis=UnderlyingBasis.INDEPENDENT_REPORT,
        underlying_basis_date=date(2025, 5, 31),
        underlying_document_digest="ab" * 32,
        volatility_peers=("430047.BJ", "688001.SH"),
        volatility_method="median 3-year daily log-return volatility",
        risk_free_source="ChinaBond CGB 3Y 2025-06-30 1.45% annual, converted to continuous",
    )
    return msgspec.structs.replace(base, **changes)


def test_stated_sources_are_accepted() -> None:
    check_sources(sources(), date(2025, 6, 30))
    check_sources(sources(underlying_basis=UnderlyingBasis.LATEST_ROUND, underlying_document_digest=None),
                  date(2025, 6, 30))


@pytest.mark.parametrize(("code", "changes"), [
    ("valuation.underlying_document_digest_invalid", dict(underlying_document_digest=None)),
    ("valuation.underlying_document_digest_invalid", dict(underlying_document_digest="AB" * 32)),
    ("valuation.underlying_basis_date_invalid", dict(underlying_basis_date=date(2025, 7, 1))),
    ("valuation.volatility_peers_invalid", dict(volatility_peers=())),
    ("valuation.volatility_peers_invalid", dict(volatility_peers=("430047.BJ", " "))),
    ("valuation.source_text_invalid", dict(risk_free_source="  ")),
])
def test_sources_without_their_evidence_are_refused(code: str, changes: dict) -> None:
    with pytest.raises(RuleViolation) as refused:
        check_sources(sources(**changes), date(2025, 6, 30))
    assert refused.value.code == code


def test_the_pricing_module_is_pure() -> None:
    tree = ast.parse(Path(models.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "math", "collections", "contextlib", "datetime", "decimal", "enum", "typing",
                        "msgspec", "QuantLib", "registry"}
    assert not any(isinstance(node, ast.AsyncFunctionDef) for node in ast.walk(tree))
