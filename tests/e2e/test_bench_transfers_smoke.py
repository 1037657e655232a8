"""`registry bench transfers` runs end to end on a tiny market (figures are not asserted: it measures)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from registry.bench.transfers import format_results, measure

pytestmark = pytest.mark.slow


def test_the_transfer_benchmark_runs_and_every_transfer_it_sends_is_accepted() -> None:
    base = Path(tempfile.mkdtemp(prefix="registry-bench-smoke-"))
    results = asyncio.run(measure(events=3_000, holders=200, seconds=0.5, clients=[4], base=base, instances=2))
    assert results["verify"] is True and results["log_size"] >= 3_000
    transfers = [r for r in results["rounds"] if r.name.startswith("transfer")]
    assert len(transfers) == 3  # the measured round, then one instance and two instances on one database
    for round_ in transfers:
        assert set(round_.statuses) == {201} and round_.requests > 0, round_
    report = format_results(results, [4])
    assert "TARGET" in report and "transfers on 2 instances sharing the database" in report
    assert not base.joinpath("pg").exists()
