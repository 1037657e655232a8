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
    results = asyncio.run(measure(events=3_000, holders=200, seconds=0.5, clients=[4], base=base))
    assert results["verify"] is True and results["log_size"] >= 3_000
    transfers = [r for r in results["rounds"] if r.name.startswith("transfer")]
    assert transfers and set(transfers[0].statuses) == {201} and transfers[0].requests > 0
    assert "TARGET" in format_results(results, [4])
    assert not base.joinpath("pg").exists()
