"""The regulator's event feed: filters, cursors, and a live tail that resumes without gaps or repeats."""

from __future__ import annotations

import asyncio

import httpx

from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.writer import NO_STREAM
from support import auth, sse_ids

REGULATOR = auth("regulator", "csrc-1")


async def append(db, stream: str, actor: str, role: str = "operator", n: int = 1) -> None:
    for i in range(n):
        await db.writer.append(stream, None, [NewEvent(type="test.happened", data={"i": i})],
                               EventMeta(actor=actor, role=role, command="test"))


async def test_the_feed_filters_by_stream_type_actor_role_and_time(client: httpx.AsyncClient, db) -> None:
    await append(db, "a", "op-1", n=2)
    await append(db, "b", "op-2", role="enterprise")
    by_actor = (await client.get("/events?actor=op-2", headers=REGULATOR)).json()["items"]
    assert [(e["stream"], e["meta"]["actor"]) for e in by_actor] == [("b", "op-2")]
    by_role = (await client.get("/events?role=enterprise", headers=REGULATOR)).json()["items"]
    assert [e["stream"] for e in by_role] == ["b"]
    by_type = (await client.get("/events?type=test.happened&stream=a", headers=REGULATOR)).json()["items"]
    assert [e["data"]["i"] for e in by_type] == [0, 1]
    recorded = by_type[0]["recorded_at"]
    later = (await client.get("/events", params={"since": recorded, "type": "test.happened"},
                              headers=REGULATOR)).json()["items"]
    assert len(later) == 3
    none = (await client.get("/events", params={"until": recorded, "type": "test.happened"},
                             headers=REGULATOR)).json()["items"]
    assert none == []


async def test_since_and_until_take_a_business_date_or_a_datetime_with_its_offset(client: httpx.AsyncClient,
                                                                                 db) -> None:
    await append(db, "a", "op-1", n=2)  # recorded at 10:00 on 2026-11-26 in Shanghai (the pinned clock)

    async def streams(**params: str) -> list[str]:
        page = await client.get("/events", params={"type": "test.happened", **params}, headers=REGULATOR)
        assert page.status_code == 200, page.text
        return [e["stream"] for e in page.json()["items"]]

    assert await streams(since="2026-11-26") == ["a", "a"]
    assert await streams(since="2026-11-27") == []
    assert await streams(until="2026-11-26") == []  # before the day began
    assert await streams(since="2026-11-26T10:00:00+08:00", until="2026-11-26T02:00:01Z") == ["a", "a"]
    assert await streams(since="2026-11-26T02:00:01Z") == []


async def test_the_live_tail_resumes_after_the_last_seen_position(client: httpx.AsyncClient, db) -> None:
    await append(db, "a", "op-1", n=3)  # positions 1..3 after the calendar seed
    first = await client.get("/events/live?limit=2", headers=REGULATOR)
    assert first.headers["content-type"].startswith("text/event-stream")
    assert sse_ids(first.text) == [0, 1]
    resumed = await client.get("/events/live?limit=2", headers={**REGULATOR, "Last-Event-ID": "1"})
    assert sse_ids(resumed.text) == [2, 3]


async def test_a_follower_receives_events_committed_after_it_started_waiting(client: httpx.AsyncClient, db) -> None:
    waiting = asyncio.create_task(client.get("/events/live?after=0&limit=3&type=test.happened", headers=REGULATOR))
    await asyncio.sleep(0.2)
    await append(db, "late", "op-1", n=3)
    response = await asyncio.wait_for(waiting, timeout=10)
    assert sse_ids(response.text) == [1, 2, 3]


async def test_followers_arriving_at_once_share_one_listener(db) -> None:
    first, second = await asyncio.gather(db.tail(), db.tail())
    assert first is second


async def test_a_live_tail_closing_after_no_events_is_a_bad_request(client: httpx.AsyncClient) -> None:
    for limit in ("0", "-1"):
        r = await client.get(f"/events/live?limit={limit}", headers=REGULATOR)
        assert r.status_code == 400 and r.json()["code"] == "request.invalid", r.text


async def test_a_role_filtered_feed_gives_full_pages_and_skips_nothing(client: httpx.AsyncClient, db) -> None:
    """The role is inside the hashed event, not a column: the feed reads on until a page is full."""
    for block in range(4):
        await append(db, f"ops-{block}", "op-1", n=7)
        await append(db, f"ent-{block}", "ent-1", role="enterprise", n=2)
    wanted = [e["position"] for e in (await client.get("/events?limit=500", headers=REGULATOR)).json()["items"]
              if e["meta"]["role"] == "enterprise"]
    pages, after = [], None
    while True:
        params = {"role": "enterprise", "limit": 3, **({"after": after} if after else {})}
        page = (await client.get("/events", params=params, headers=REGULATOR)).json()
        pages.append([e["position"] for e in page["items"]])
        if page["next"] is None:
            break
        after = page["next"]
    assert [p for page in pages for p in page] == wanted and len(wanted) == 8
    assert [len(page) for page in pages] == [3, 3, 2]
