"""The trading calendar as data, and four-eyes: publishing next year's days needs a second operator."""

from __future__ import annotations

import itertools

import httpx

from registry.calendar.domain import weekdays_except
from support import auth

_keys = itertools.count()


def as_operator(name: str) -> dict[str, str]:
    return auth("operator", name, f"k-{next(_keys)}")


INVESTOR = auth("investor", "INV00000001")

HOLIDAYS_2027 = ["2027-01-01", "2027-02-08", "2027-02-09", "2027-02-10", "2027-02-11", "2027-02-12",
                 "2027-04-05", "2027-05-03", "2027-05-04", "2027-05-05", "2027-06-09", "2027-09-15",
                 "2027-10-01", "2027-10-04", "2027-10-05", "2027-10-06", "2027-10-07"]


def publication_2027() -> dict:
    import datetime as dt
    days = weekdays_except(dt.date(2027, 1, 1), dt.date(2027, 12, 31),
                           [dt.date.fromisoformat(d) for d in HOLIDAYS_2027])
    return {"first_day": "2027-01-01", "last_day": "2027-12-31", "trading_days": [d.isoformat() for d in days],
            "reason": "国务院办公厅关于2027年部分节假日安排的通知"}


async def test_calendar_arithmetic_across_national_day(client: httpx.AsyncClient) -> None:
    span = (await client.get("/calendar", headers=INVESTOR)).json()
    assert span["first_day"] == "2015-01-01" and span["last_day"] == "2026-12-31"
    day = (await client.get("/calendar/days/2026-10-01", headers=INVESTOR)).json()
    assert day == {"day": "2026-10-01", "trading": False, "previous_trading_day": "2026-09-30",
                   "next_trading_day": "2026-10-08"}
    added = (await client.get("/calendar/add?start=2026-09-30&n=5", headers=INVESTOR)).json()
    assert added["result"] == "2026-10-14"
    between = (await client.get("/calendar/between?start=2026-09-30&end=2026-10-09", headers=INVESTOR)).json()
    assert between["trading_days"] == 2


async def test_asking_beyond_the_known_calendar_is_an_explicit_error(client: httpx.AsyncClient) -> None:
    r = await client.get("/calendar/add?start=2026-12-28&n=10", headers=INVESTOR)
    assert r.status_code == 422 and r.json()["code"] == "calendar.beyond_known_range"
    assert r.json()["last_day"] == "2026-12-31"


async def test_next_years_days_are_published_only_after_a_second_operator_approves(client: httpx.AsyncClient) -> None:
    requested = await client.post("/approvals", headers=as_operator("op-zhang"), json={
        "action": "calendar.publish", "payload": publication_2027(), "reason": "发布2027年交易日历"})
    assert requested.status_code == 201 and requested.json()["status"] == "pending"
    approval = requested.json()["approval_id"]
    still_unknown = await client.get("/calendar/days/2027-01-04", headers=INVESTOR)
    assert still_unknown.status_code == 422

    queue = (await client.get("/approvals?status=pending", headers=auth("operator", "op-li"))).json()["items"]
    assert [a["approval_id"] for a in queue] == [approval]

    own = await client.post(f"/approvals/{approval}/approve", json={}, headers=as_operator("op-zhang"))
    assert own.status_code == 403 and own.json()["code"] == "approval.self_approval"

    approved = await client.post(f"/approvals/{approval}/approve", json={"reason": "核对无误"},
                                 headers=as_operator("op-li"))
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "op-li"
    assert approved.json()["outcome"]["last_day"] == "2027-12-31"
    spring = (await client.get("/calendar/days/2027-02-08", headers=INVESTOR)).json()
    assert spring["trading"] is False and spring["next_trading_day"] == "2027-02-15"

    again = await client.post(f"/approvals/{approval}/approve", json={}, headers=as_operator("op-wang"))
    assert again.status_code == 409 and again.json()["code"] == "approval.already_decided"

    events = (await client.get(f"/events?stream=approval-{approval}", headers=auth("regulator", "r"))).json()
    assert [(e["type"], e["meta"]["actor"]) for e in events["items"]] == [
        ("approval.requested", "op-zhang"), ("approval.approved", "op-li")]


async def test_an_edit_that_rewrites_past_days_is_refused_at_approval_and_nothing_changes(
        client: httpx.AsyncClient) -> None:
    rewrite = {"first_day": "2026-01-01", "last_day": "2026-01-31", "trading_days": ["2026-01-05"],
               "reason": "把2026年1月改掉"}
    approval = (await client.post("/approvals", headers=as_operator("op-zhang"), json={
        "action": "calendar.publish", "payload": rewrite, "reason": "错误的修改"})).json()["approval_id"]
    refused = await client.post(f"/approvals/{approval}/approve", json={}, headers=as_operator("op-li"))
    assert refused.status_code == 422 and refused.json()["code"] == "calendar.past_day_rewrite"
    assert (await client.get(f"/approvals/{approval}", headers=auth("regulator", "r"))).json()["status"] == "pending"
    rejected = await client.post(f"/approvals/{approval}/reject", json={"reason": "不得追改历史交易日"},
                                 headers=as_operator("op-li"))
    assert rejected.json()["status"] == "rejected"
    assert (await client.get("/calendar/days/2026-01-06", headers=INVESTOR)).json()["trading"] is True


async def test_a_malformed_or_unknown_request_is_refused_when_made(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/approvals", headers=as_operator("op-zhang"), json={
        "action": "money.print", "payload": {}, "reason": "x"})
    assert unknown.status_code == 422 and unknown.json()["code"] == "approval.unknown_action"
    malformed = await client.post("/approvals", headers=as_operator("op-zhang"), json={
        "action": "calendar.publish", "reason": "x",
        "payload": {"first_day": "2027-01-01", "last_day": "2027-01-31", "trading_days": ["2027-02-01"],
                    "reason": "x"}})
    assert malformed.status_code == 422 and malformed.json()["code"] == "calendar.malformed_edit"
    missing = await client.post("/approvals", headers=as_operator("op-zhang"), json={
        "action": "calendar.publish", "reason": "x", "payload": {"first_day": "2027-01-01"}})
    assert missing.status_code == 422 and missing.json()["code"] == "approval.payload_invalid"
