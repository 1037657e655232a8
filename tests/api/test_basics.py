"""HTTP basics every client relies on: health, OpenAPI, request ids, problem responses, bad input."""

from __future__ import annotations

import json

import httpx
import pytest

from support import auth, log_size, tianjin_uscc

ENTERPRISE = {
    "uscc": tianjin_uscc(1), "name": "天津海河智能科技有限公司", "legal_form": "llc",
    "registered_capital_fen": 1_000_000_000, "industry": "人工智能", "specialised_level": "provincial",
}



async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready", headers=auth("regulator", "examiner-1"))
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "log_size": 1}  # the calendar seed


@pytest.mark.parametrize("who", [None, ("investor", "INV-1"), ("enterprise", tianjin_uscc(1))])
async def test_readiness_tells_anyone_but_operators_and_regulators_only_the_status(
        client: httpx.AsyncClient, who: tuple[str, str] | None) -> None:
    ready = await client.get("/health/ready", headers=auth(*who) if who else {})
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_openapi_document_and_docs_page_are_served(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    assert "/enterprises" in doc["paths"] and doc["info"]["title"].startswith("registry")
    assert (await client.get("/schema/swagger")).status_code == 200


async def test_every_response_carries_a_request_id_and_echoes_a_sane_one(client: httpx.AsyncClient) -> None:
    mine = await client.get("/health/live", headers={"X-Request-Id": "req-abc.123"})
    assert mine.headers["x-request-id"] == "req-abc.123"
    generated = await client.get("/no/such/route", headers={"X-Request-Id": "bad id with spaces"})
    assert generated.status_code == 404
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert generated.json()["request_id"] == generated.headers["x-request-id"]


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/no/such/route")
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "urn:registry:problem:resource.not_found"


@pytest.mark.parametrize("body, expected", [
    (b'{"uscc": ', "request.invalid"),                                          # malformed JSON
    (b'[1, 2]', "request.invalid"),                                             # wrong shape
    (b'{"uscc": 12}', "request.invalid"),                                       # missing fields, wrong type
])
async def test_malformed_bodies_are_400_problems_and_write_nothing(client: httpx.AsyncClient, body: bytes,
                                                                   expected: str) -> None:
    r = await client.post("/enterprises", content=body,
                          headers={**auth("operator", "op-1", "k1"), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == expected
    assert await log_size(client) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
async def test_a_body_sent_as_something_other_than_json_is_a_415_and_writes_nothing(
        client: httpx.AsyncClient, content_type: str) -> None:
    r = await client.post("/enterprises", content=json.dumps(ENTERPRISE).encode(),
                          headers={**auth("operator", "op-1", "k1"), "content-type": content_type})
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["code"] == "request.unsupported_media_type" and r.json()["content_type"] == content_type
    assert await log_size(client) == 1
    sent_as_json = await client.post("/enterprises", json=ENTERPRISE, headers=auth("operator", "op-1", "k1"))
    assert sent_as_json.status_code == 201, sent_as_json.text


async def test_a_post_without_a_body_is_a_400_saying_the_body_is_missing(client: httpx.AsyncClient) -> None:
    r = await client.post("/enterprises", headers={**auth("operator", "op-1", "k1"), "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "request.invalid", r.text
    assert r.json()["detail"] == "the request has no body: send a JSON object with Content-Type: application/json"
    assert await log_size(client) == 1


async def test_unknown_fields_and_wrong_types_are_refused(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/enterprises", json={**ENTERPRISE, "colour": "red"}, headers=auth("operator", "op-1", "k1"))
    assert unknown.status_code == 400 and "colour" in unknown.json()["detail"]
    wrong = await client.post("/enterprises", json={**ENTERPRISE, "registered_capital_fen": "lots"},
                              headers=auth("operator", "op-1", "k2"))
    assert wrong.status_code == 400 and "registered_capital_fen" in wrong.json()["detail"]
    assert await log_size(client) == 1


async def test_an_oversize_body_is_413(client: httpx.AsyncClient, settings) -> None:
    big = {**ENTERPRISE, "name": "x" * (settings.max_body_bytes + 10)}
    r = await client.post("/enterprises", json=big, headers=auth("operator", "op-1", "k1"))
    assert r.status_code == 413 and r.json()["code"] == "request.too_large"
    assert await log_size(client) == 1


async def test_a_write_without_idempotency_key_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/enterprises", json=ENTERPRISE, headers=auth("operator", "op-1"))
    assert r.status_code == 400 and r.json()["header"] == "Idempotency-Key"
    assert await log_size(client) == 1


async def test_a_replay_returns_the_original_answer_and_a_changed_body_is_refused(client: httpx.AsyncClient) -> None:
    headers = auth("operator", "op-1", "register-1")
    first = await client.post("/enterprises", json=ENTERPRISE, headers=headers)
    again = await client.post("/enterprises", json=ENTERPRISE, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert {**again.json(), "log": None} == {**first.json(), "log": None}
    assert again.json()["log"] == {**first.json()["log"], "replayed": True}
    changed = await client.post("/enterprises", json={**ENTERPRISE, "name": "另一家公司"}, headers=headers)
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency.key_reused"
    assert await log_size(client) == 2


async def test_a_write_reports_the_log_position_it_produced(client: httpx.AsyncClient) -> None:
    r = await client.post("/enterprises", json=ENTERPRISE, headers=auth("operator", "op-1", "k1"))
    assert r.json()["log"] == {"first_position": 1, "last_position": 1, "replayed": False}
    events = (await client.get("/events?after=0", headers=auth("regulator", "csrc-1"))).json()["items"]
    assert events[0]["type"] == "enterprise.registered"
    assert events[0]["meta"] == {"actor": "op-1", "role": "operator", "command": "RegisterEnterprise",
                                 "request_id": r.headers["x-request-id"], "idempotency_key": "k1"}


@pytest.mark.parametrize("path", [
    "/events?after=99999999999999999999",
    "/audit/tree-head?size=99999999999999999999",
    f"/enterprises/{tianjin_uscc(1)}/cap-table?at_position=99999999999999999999",
])
async def test_numbers_beyond_the_databases_range_are_400_not_500(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers=auth("regulator", "r"))
    assert r.status_code == 400, r.text


async def test_the_address_itself_sends_a_browser_to_the_pages_and_names_the_docs(client: httpx.AsyncClient) -> None:
    browser = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code in (302, 303) and browser.headers["location"] == "/ui/"
    api = await client.get("/")
    assert api.status_code == 200
    body = api.json()
    assert (body["pages"], body["api_docs"], body["openapi"]) == ("/ui/", "/schema", "/schema/openapi.json")
    assert (await client.get(body["health"])).status_code == 200
