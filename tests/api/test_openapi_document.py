"""What a client generator reads in /schema/openapi.json: every refusal as a problem, the headers a write
needs, one stable id per operation, and bounded parameters. The service answers without its database here:
the document, routing and the checks before a handler's first query need none."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from registry.app import create_app
from registry.settings import Settings
from support import auth

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def service(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, dsn="postgresql://nobody@127.0.0.1:1/none")  # never opened: no lifespan runs
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test") as client:
        yield client


@pytest.fixture(scope="module")
async def document(service: httpx.AsyncClient) -> dict[str, Any]:
    response = await service.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_every_operation_declares_its_refusals_as_rfc9457_problems(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) >= {"type", "title", "status", "detail"}
    assert set(problem["properties"]) >= {"type", "title", "status", "detail", "instance"}
    assert problem["additionalProperties"] is True  # the rule's figures travel as extra members
    for method, path, op in operations(document):
        refusals = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        assert 400 in refusals, (method, path)
        for status, response in refusals.items():
            assert list(response["content"]) == [PROBLEM], (method, path, status)
            assert response["headers"]["X-Request-Id"]["required"] is True
        if op.get("security") != []:  # needs a token
            assert 401 in refusals, (method, path)
            assert refusals[401]["headers"]["WWW-Authenticate"]["required"] is True
        if "{" in path:
            assert 404 in refusals, (method, path)
        if method == "POST":
            assert {404, 409, 422} <= set(refusals), (method, path)
        if "requestBody" in op:
            assert 413 in refusals, (method, path)


def test_a_write_answering_200_declares_200_and_not_201(document: dict[str, Any]) -> None:
    freeze = document["paths"]["/accounts/{account_id}/freezes"]["post"]["responses"]
    register = document["paths"]["/investors"]["post"]["responses"]
    assert "200" in freeze and "201" not in freeze
    assert "201" in register and "200" not in register


def test_every_write_requires_an_idempotency_key_and_the_versioned_ones_take_if_match(
        document: dict[str, Any]) -> None:
    conditional = set()
    for method, path, op in operations(document):
        headers = {p["name"]: p for p in op.get("parameters", ()) if p["in"] == "header"}
        if method != "POST":
            assert "Idempotency-Key" not in headers, path
            continue
        key = headers["Idempotency-Key"]
        assert key["required"] is True and key["schema"]["maxLength"] == 255, path
        if "If-Match" in headers:
            assert headers["If-Match"]["required"] is False
            conditional.add(path)
    assert {"/enterprises", "/investors/{investor_id}/qualifications", "/accounts/{account_id}/freezes",
            "/accounts/{account_id}/closures", "/warrant-series/{code}/transfers",
            "/warrant-series/{code}/holdings/{account_id}/pledges"} <= conditional
    assert "/investors" not in conditional and "/approvals" not in conditional


def test_every_read_takes_min_position_and_may_say_where_it_was_answered_and_no_write_does(
        document: dict[str, Any]) -> None:
    reads = 0
    for method, path, op in operations(document):
        headers = {p["name"]: p for p in op.get("parameters", ()) if p["in"] == "header"}
        sources = [r["headers"].get("X-Read-Source") for r in op["responses"].values()]
        if method != "GET":
            assert "Min-Position" not in headers and not any(sources), path
            continue
        reads += 1
        assert headers["Min-Position"]["required"] is False, path
        assert headers["Min-Position"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, path
        assert all(s and s["required"] is False and s["schema"]["enum"] == ["primary", "replica"]
                   for s in sources), path
    assert reads >= 40


def test_operation_ids_are_unique_readable_and_named_after_their_handlers(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids)) >= 75
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", i) for i in ids), ids
    assert document["paths"]["/warrant-series/{code}/transfers"]["post"]["operationId"] == "warrantSeriesTransfer"
    assert document["paths"]["/enterprises"]["get"]["operationId"] == "enterpriseListAll"


def test_since_and_until_are_declared_as_dates_or_datetimes_and_page_sizes_as_at_least_one(
        document: dict[str, Any]) -> None:
    params = {p["name"]: p["schema"] for p in document["paths"]["/events"]["get"]["parameters"]}
    for name in ("since", "until"):
        assert {kind["format"] for kind in params[name]["oneOf"]} == {"date", "date-time"}
    assert params["limit"] == {**params["limit"], "type": "integer", "minimum": 1}
    assert params["after"]["pattern"] == "^(-?[0-9]{1,19})?$"
    accounts = {p["name"]: p["schema"] for p in document["paths"]["/accounts"]["get"]["parameters"]}
    status = document["components"]["schemas"][accounts["status"]["$ref"].rpartition("/")[2]]
    assert set(status["enum"]) == {"open", "frozen", "closed"}


async def test_a_405_names_the_methods_the_resource_allows(service: httpx.AsyncClient) -> None:
    refused = await service.delete("/enterprises", headers=auth("operator", "op-1"))
    assert refused.status_code == 405
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST", "OPTIONS"}


async def test_options_lists_every_method_of_a_path_not_only_the_first_registered(
        service: httpx.AsyncClient) -> None:
    for path, methods in (("/approvals", {"GET", "HEAD", "POST", "OPTIONS"}),
                          ("/enterprises/91120116MA05ABC012/facts", {"GET", "HEAD", "POST", "OPTIONS"}),
                          ("/calendar", {"GET", "HEAD", "OPTIONS"})):
        answer = await service.options(path)
        assert answer.status_code == 204
        assert set(answer.headers["allow"].replace(" ", "").split(",")) == methods, path


@pytest.mark.parametrize("value", ["0001-01-01", "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-14:00"])
async def test_events_refuse_a_since_or_until_past_the_ends_of_the_calendar_naming_the_parameter(
        service: httpx.AsyncClient, value: str) -> None:
    for name in ("since", "until"):
        refused = await service.get("/events", params={name: value}, headers=auth("regulator", "examiner-1"))
        assert refused.status_code == 400 and refused.json()["code"] == "request.invalid", refused.text
        assert refused.json()["parameter"] == name and refused.json()["value"] == value


@pytest.mark.parametrize("value", ["12345", "1e9", "2026-11-26T10:00:00", "2026-W48-4", "20261126", "yesterday"])
async def test_events_refuse_a_since_or_until_that_is_not_a_date_or_a_datetime_with_offset(
        service: httpx.AsyncClient, value: str) -> None:
    for name in ("since", "until"):
        refused = await service.get("/events", params={name: value}, headers=auth("regulator", "examiner-1"))
        assert refused.status_code == 400, (name, value)
        assert refused.json()["parameter"] == name and refused.json()["value"] == value


async def test_a_write_with_if_match_on_a_route_that_does_not_honour_it_is_refused_before_anything_runs(
        service: httpx.AsyncClient) -> None:
    refused = await service.post("/approvals/APR1/approve", json={"reason": "ok"},
                                 headers={**auth("operator", "op-1", key="k-1"), "If-Match": '"3"'})
    assert refused.status_code == 400 and refused.json()["header"] == "If-Match"
