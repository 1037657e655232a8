"""The failover drill: the primary is lost under write load, the synchronous standby is promoted, and
the service finds it by itself — nothing acknowledged is lost, nothing is written twice."""

from __future__ import annotations

import pytest

from registry.db.drill import failover_drill, render

pytestmark = pytest.mark.slow


async def test_losing_the_primary_under_load_loses_no_acknowledged_write() -> None:
    report = await failover_drill(clients=4, before=3.0, after=8.0)
    summary = render(report)
    assert report.acknowledged > 0 and report.acknowledged_after_failover > 0, summary
    assert report.lost == 0 and report.duplicated == 0, summary
    assert not report.other_failures, summary  # only 503s while no primary accepts writes, never a 500
    assert report.verify_exit == 0 and report.rebuild_exit == 0, summary
    assert report.unavailable_seconds is not None and report.unavailable_seconds < 30, summary
