"""`/metrics`: what Prometheus scrapes — requests by route template, the writer's batches, the log and checkpoints."""

from __future__ import annotations

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from registry.app import create_app
from support import auth
from warrant_fixtures import TARGET, enterprise, investor, log_size, ok, op, register_series, travel


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(family, sample_name: str, **labels: str) -> float:
    found = [s.value for s in family.samples if s.name == sample_name and all(s.labels.get(k) == v
                                                                            for k, v in labels.items())]
    assert len(found) == 1, (sample_name, labels, family.samples)
    return found[0]


async def test_a_scrape_counts_transfers_under_their_route_template_never_a_series_code(client, db) -> None:
    await enterprise(client)
    _, bank_acct = await investor(client, "天津银行")
    _, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 100_000)])
    travel(db, trading_days=6)
    transfer = {"from_account": bank_acct, "to_account": fund_acct, "units": 1_000, "mode": "private_agreement",
                "price_per_unit": "1.00", "consideration_fen": 100_000}
    await ok(await client.post(f"/warrant-series/{code}/transfers", headers=op(), json=transfer), 201)
    too_many = {**transfer, "units": 10_000_000, "consideration_fen": 1_000_000_000}
    assert (await client.post(f"/warrant-series/{code}/transfers", headers=op(), json=too_many)).status_code == 422
    await ok(await client.post("/checkpoints", headers=op()), 201)
    size = await log_size(client)

    families = await scrape(client)

    route = "/warrant-series/{code}/transfers"
    requests = families["registry_http_requests"]
    assert value(requests, "registry_http_requests_total", method="POST", route=route, status="201") == 1
    assert value(requests, "registry_http_requests_total", method="POST", route=route, status="422") == 1
    latency = families["registry_http_request_duration_seconds"]
    assert value(latency, "registry_http_request_duration_seconds_count", method="POST", route=route) == 2
    buckets = [s.value for s in latency.samples if s.name.endswith("_bucket") and s.labels["route"] == route]
    assert buckets == sorted(buckets) and buckets[-1] == 2, "cumulative buckets, +Inf holding every request"
    labels = {v for family in families.values() for s in family.samples for v in s.labels.values()}
    assert not any(code in v or bank_acct in v or TARGET in v for v in labels), "an id leaked into a label"
    assert "/enterprises" in {s.labels.get("route") for s in requests.samples}

    batches = families["registry_writer_batch_size"]
    assert value(batches, "registry_writer_batch_size_count") >= 5  # every command above was one batch or more
    assert value(batches, "registry_writer_batch_size_sum") >= value(batches, "registry_writer_batch_size_count")
    assert value(families["registry_writer_commit_seconds"], "registry_writer_commit_seconds_count") >= 5
    assert value(families["registry_writer_queue_depth"], "registry_writer_queue_depth") == 0
    assert value(families["registry_writer_reconnects"], "registry_writer_reconnects_total") >= 0
    assert value(families["registry_database_up"], "registry_database_up") == 1
    assert value(families["registry_log_head_position"], "registry_log_head_position") == size - 1
    assert 0 <= value(families["registry_checkpoint_age_seconds"], "registry_checkpoint_age_seconds") < 60
    assert value(families["registry_checkpoint_unsigned_events"], "registry_checkpoint_unsigned_events") == 0


async def test_a_fresh_log_has_no_checkpoint_age_rather_than_a_misleading_zero(client) -> None:
    families = await scrape(client)
    assert "registry_checkpoint_age_seconds" not in families
    assert value(families["registry_log_head_position"], "registry_log_head_position") == 0  # the calendar seed


async def test_with_a_scrape_token_set_metrics_are_refused_without_it(db, settings) -> None:
    app = create_app(msgspec.structs.replace(settings, metrics_token="scrape-secret-1"), database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, auth("regulator", "csrc-1")):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["type"] == "urn:registry:problem:auth.unauthenticated"
        families = await scrape(client, Authorization="Bearer scrape-secret-1")
        assert "registry_http_requests" in families
