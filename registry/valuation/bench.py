"""Valuations per second: `price()` on a 1000-step American lattice beside QuantLib's binomial engine called directly.

`price()` does more than one lattice: the tree value and delta, two more trees for vega
(±0.01 in volatility), an analytic European value, the dilution and DLOM layers and the
Decimal rounding. So it is also timed against QuantLib doing the same three trees, which
shows what the layers themselves cost.

Run: `python -m registry.valuation.bench [seconds]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import QuantLib as ql

from registry.valuation.models import ValuationInputs, lattice_steps_used, price

STEPS = 1000

INPUTS = ValuationInputs(
    valuation_date=date(2025, 6, 30),
    expiry_date=date(2028, 6, 30),
    underlying_price=Decimal("4.20"),
    exercise_price=Decimal("3.50"),
    volatility=Decimal("0.45"),
    risk_free_rate=Decimal("0.0144"),
    dividend_yield=Decimal("0.01"),
    shares_outstanding=50_000_000,
    new_shares_per_warrant=Decimal("10000"),
    warrants_outstanding=200,
    style="american",
    lattice_steps=STEPS,
    dlom_method="finnerty_2012",
)


def _quantlib_direct(bumps: bool) -> Callable[[], float]:
    """Build the BSM process, option and CRR engine from scratch and price, as `price()` does."""
    i = INPUTS
    today = ql.Date(i.valuation_date.day, i.valuation_date.month, i.valuation_date.year)
    expiry = ql.Date(i.expiry_date.day, i.expiry_date.month, i.expiry_date.year)
    s, k, r, q, sigma = (float(x) for x in (i.underlying_price, i.exercise_price, i.risk_free_rate,
                                            i.dividend_yield, i.volatility))

    def one() -> float:
        dc = ql.Actual365Fixed()
        vol = ql.SimpleQuote(sigma)
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(s)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc, ql.Continuous)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc, ql.Continuous)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), dc)),
        )
        option = ql.VanillaOption(ql.PlainVanillaPayoff(ql.Option.Call, k), ql.AmericanExercise(today, expiry))
        option.setPricingEngine(ql.BinomialVanillaEngine(process, "crr", STEPS))
        value = option.NPV() + option.delta()
        if bumps:
            vol.setValue(sigma + 0.01)
            value += option.NPV()
            vol.setValue(sigma - 0.01)
            value += option.NPV()
        return value

    return one


def _rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def run(seconds: float = 3.0) -> dict:
    """Time each of the three cases for `seconds`/3; print the rates and the ratio; return them."""
    if lattice_steps_used((INPUTS.expiry_date - INPUTS.valuation_date).days, STEPS) != STEPS:
        raise RuntimeError("the benchmark's dates must let both sides run the same 1000-step tree")
    share = seconds / 3
    settings = ql.Settings.instance()
    before = settings.evaluationDate
    settings.evaluationDate = ql.Date(INPUTS.valuation_date.day, INPUTS.valuation_date.month,
                                      INPUTS.valuation_date.year)
    try:
        quantlib = _rate(_quantlib_direct(bumps=False), share)
        quantlib_same_work = _rate(_quantlib_direct(bumps=True), share)
    finally:
        settings.evaluationDate = before
    registry = _rate(lambda: price(INPUTS), share)
    result = {
        "lattice_steps": STEPS,
        "seconds": seconds,
        "price_per_second": registry,
        "quantlib_per_second": quantlib,
        "quantlib_same_work_per_second": quantlib_same_work,
        "quantlib_over_price": quantlib / registry,
        "quantlib_same_work_over_price": quantlib_same_work / registry,
        "quantlib_version": ql.__version__,
    }
    print(f"price(): {registry:.1f}/s; QuantLib direct: {quantlib:.1f}/s "
          f"(ratio {result['quantlib_over_price']:.2f}); QuantLib, same 3 trees: {quantlib_same_work:.1f}/s "
          f"(ratio {result['quantlib_same_work_over_price']:.2f})")
    return result


def main(seconds: float | None = None) -> None:
    if seconds is None:
        seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    r = run(seconds)
    rows = [
        ("registry price() (value, delta, vega, DLOM)", r["price_per_second"]),
        ("QuantLib CRR, 1 tree (value, delta)", r["quantlib_per_second"]),
        ("QuantLib CRR, 3 trees (value, delta, vega)", r["quantlib_same_work_per_second"]),
    ]
    print(f"\n{STEPS}-step American lattice, QuantLib {r['quantlib_version']}")
    print(f"{'case':<46}{'valuations/s':>14}{'ms each':>10}")
    for name, rate in rows:
        print(f"{name:<46}{rate:>14.1f}{1000 / rate:>10.2f}")


if __name__ == "__main__":
    main()
