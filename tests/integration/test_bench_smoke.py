"""`registry bench eventlog` works end to end (tiny durations; no speed is asserted)."""

from __future__ import annotations

import argparse
from pathlib import Path

from registry.bench import eventlog as bench

REPO = Path(__file__).resolve().parent.parent.parent


async def test_bench_measures_every_row_verifies_the_chain_and_removes_its_cluster() -> None:
    # The cluster goes in a fresh temp dir of its own (the default), not under pytest's tmp_path:
    # a pytest session starting meanwhile re-chmods /tmp/pytest-of-<user> to 0700, locking out the
    # server's system user when we run as root.
    report = await bench.measure(0.3, bench.parse_writers("1,4"), pgbench_seconds=1,
                                 progress=False, settings=bench.Settings(migrations_path=REPO / "migrations"))

    expected = {(kind, n) for kind in (bench.INSERT, bench.CHAIN) for n in (1, 16)} | {(bench.SERVICE, 1),
                                                                                      (bench.SERVICE, 4)}
    assert {(r.kind, r.clients) for r in report.rows} == expected
    for row in report.rows:
        assert row.tps > 0 and row.transactions > 0 and row.latency_avg_ms > 0, row
        if row.kind == bench.SERVICE:
            assert row.p50_ms is not None and row.p99_ms is not None and 0 < row.p50_ms <= row.p99_ms, row

    assert report.verify is not None and report.verify.ok and report.verified
    assert report.appended == sum(r.transactions for r in report.rows if r.kind == bench.SERVICE)
    assert report.verify.checked == report.appended
    assert "pgbench chain" in report.baseline_check
    assert "PostgreSQL" in report.facts["postgresql"] and "fsync=on" in report.facts["durability"]

    text = bench.format_report(report)
    assert "Chain verified" in text and "÷chain@16" in text
    holds, verdict = bench.target_verdict(report)
    assert holds is None and "NOT MEASURED" in verdict  # 64 writers were not part of this run
    assert report.base_dir is not None and not report.base_dir.exists(), "the throwaway cluster must be destroyed"


def test_bench_reports_bad_arguments_with_exit_code_2(capsys) -> None:  # noqa: ANN001
    args = argparse.Namespace(seconds=1.0, writers="1,x", data_dir=None)
    assert bench.main(args) == 2
    assert "--writers" in capsys.readouterr().err


def test_pgbench_summary_is_parsed() -> None:
    output = (
        "number of transactions actually processed: 3798\n"
        "number of failed transactions: 0 (0.000%)\n"
        "latency average = 2.106 ms\n"
        "initial connection time = 4.734 ms\n"
        "tps = 1899.079761 (without initial connection time)\n"
    )
    assert bench.parse_pgbench(output) == (1899.079761, 2.106, 3798)
