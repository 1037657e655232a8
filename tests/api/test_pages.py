"""The pages, through the app: sign in with a token, see what your role may see, and nothing else.

(The same pages in a real browser, with screenshots: tests/browser/.)"""

from __future__ import annotations

import httpx

from registry.access.tokens import Role
from support import auth, sign_in, sign_in_form
from warrant_fixtures import enterprise, investor, ok, op, register_series


async def test_signing_in_sets_a_cookie_for_pages_only_and_a_bad_token_is_refused(client: httpx.AsyncClient) -> None:
    bad = await client.post("/ui/sign-in", data={"token": "not-a-token", "_csrf_token": await sign_in_form(client)})
    assert bad.status_code == 400 and "registry_token" not in bad.cookies
    good = await sign_in(client, Role.regulator, "examiner-1")
    assert good.status_code == 303 and good.headers["location"] == "/ui/"
    home = await client.get("/ui/")
    assert home.status_code == 200 and "事件浏览" in home.text and "examiner-1" in home.text
    # the cookie opens pages for reading, never the API for writing
    write = await client.post("/enterprises", json={}, headers={"Idempotency-Key": "x"})
    assert write.status_code == 401


async def test_without_signing_in_a_page_sends_you_to_the_sign_in_form(client: httpx.AsyncClient) -> None:
    client.cookies.clear()
    r = await client.get("/ui/events")
    assert r.status_code in (302, 303, 307) and r.headers["location"] == "/ui/sign-in"


async def test_a_holder_sees_its_own_positions_and_cannot_reach_another_holders(client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 70_000), (fund_acct, 30_000)])
    await sign_in(client, Role.investor, fund)
    mine = await client.get("/ui/positions")
    assert mine.status_code == 200 and code in mine.text and "30000" in mine.text and "70000" not in mine.text
    theirs = await client.get(f"/ui/positions?investor={bank}")  # editing the URL changes nothing
    assert "30000" in theirs.text and "70000" not in theirs.text
    assert (await client.get("/ui/events")).status_code == 403


async def test_the_regulator_browses_events_with_their_hashes(client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    await sign_in(client, Role.regulator, "examiner-1")
    page = await client.get("/ui/events?type=enterprise.registered")
    assert page.status_code == 200 and "enterprise.registered" in page.text
    events = (await client.get("/events?type=enterprise.registered", headers=auth("regulator", "r"))).json()["items"]
    assert events[0]["hash"] in page.text and events[0]["prev_hash"] in page.text


async def test_an_operator_sees_the_queue_awaiting_a_second_approval(client: httpx.AsyncClient) -> None:
    requested = await ok(await client.post("/approvals", headers=op("op-zhang"), json={
        "action": "calendar.publish", "reason": "发布交易日历",
        "payload": {"first_day": "2027-01-01", "last_day": "2027-01-31", "trading_days": ["2027-01-04"],
                    "reason": "x"}}))
    await sign_in(client, Role.operator, "op-li")
    page = await client.get("/ui/approvals")
    assert page.status_code == 200 and requested["approval_id"] in page.text and "op-zhang" in page.text
    await sign_in(client, Role.investor, "INV00000001")
    assert (await client.get("/ui/approvals")).status_code == 403


async def test_an_enterprise_sees_its_stage_what_is_missing_and_its_series(client: httpx.AsyncClient, db) -> None:
    from warrant_fixtures import TARGET
    await enterprise(client)
    _, acct = await investor(client, "天津银行")
    code = await register_series(client, [(acct, 1_000)])
    await sign_in(client, Role.enterprise, TARGET)
    page = await client.get("/ui/enterprise?uscc=911201160000000000")  # the URL cannot point elsewhere
    assert page.status_code == 200 and TARGET in page.text and code in page.text
    assert "下一步还缺什么" in page.text and "applied" in page.text
    await sign_in(client, Role.investor, "INV00000001")
    assert (await client.get(f"/ui/enterprise?uscc={TARGET}")).status_code == 403


async def test_the_demo_market_renders_an_enterprise_with_unmet_criteria(client: httpx.AsyncClient, dsns,
                                                                        settings) -> None:
    from registry.demo import ENTERPRISES, _uscc, load_demo
    await load_demo(settings, dsns.app)
    reserve = _uscc(*ENTERPRISES[1][:2])  # moved to the listing reserve with NEEQ figures that fall short
    await sign_in(client, Role.regulator, "examiner-1")
    page = await client.get(f"/ui/enterprise?uscc={reserve}")
    assert page.status_code == 200, page.text[:500]
    assert "listing_reserve" in page.text and "未满足" in page.text and "neeq_listing" in page.text


async def test_the_regulator_page_checks_a_range_and_highlights_a_tampered_event(client: httpx.AsyncClient, db,
                                                                              owner) -> None:
    await enterprise(client)
    await investor(client, "天津银行")
    await ok(await client.post("/checkpoints", headers=op()))  # an operator signs the current tree head
    await sign_in(client, Role.regulator, "examiner-1")
    healthy = await client.get("/ui/audit?position=1")
    assert healthy.status_code == 200 and "✔" in healthy.text and 'id="first-bad"' not in healthy.text
    assert "验证" in healthy.text and "—" in healthy.text  # the checkpoint note carries its signature line
    download = await client.get("/ui/audit/checkpoint.txt")
    assert download.status_code == 200 and download.text.startswith("registry.tjotc.example/log\n")
    await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
    await owner.execute("UPDATE event SET actor = 'someone-else' WHERE position = 2")
    tampered = await client.get("/ui/audit")
    assert 'id="first-bad"' in tampered.text and "<strong>2</strong>" in tampered.text


async def test_the_regulator_filters_events_by_day_and_downloads_the_verifier_key(client: httpx.AsyncClient,
                                                                                 db) -> None:
    from support import TEST_TODAY
    await enterprise(client)
    await sign_in(client, Role.regulator, "examiner-1")
    today = await client.get(f"/ui/events?since={TEST_TODAY}&until={TEST_TODAY}&type=enterprise.registered")
    assert today.status_code == 200 and "enterprise.registered" in today.text
    assert 'href="/ui/audit?position=' in today.text  # each event links to its inclusion proof
    later = await client.get(f"/ui/events?since={TEST_TODAY.replace(day=27)}")
    assert "没有符合条件的事件" in later.text
    highlighted = await client.get("/ui/events?highlight=0")
    assert '<tr id="event-0" class="bad">' in highlighted.text
    key = await client.get("/ui/audit/checkpoint-key.txt")
    assert key.status_code == 200 and key.text.startswith("registry.tjotc.example/log+")


async def test_a_malformed_or_out_of_range_query_on_a_page_is_refused_with_the_refusal_page(
        client: httpx.AsyncClient) -> None:
    await sign_in(client, Role.regulator, "examiner-1")
    for url in ("/ui/events?until=9999-12-31", "/ui/events?since=0001-01-01", "/ui/events?highlight=-1",
                "/ui/events?highlight=abc", "/ui/events?stream=%00", "/ui/audit?from=abc",
                "/ui/audit?position=99999999999999999999", "/ui/pipeline?as_of=9999-12-31",
                "/ui/series-attention?days=-1", "/ui/enterprise?uscc=%00"):
        r = await client.get(url)
        assert r.status_code == 400, url
        assert r.headers["content-type"].startswith("text/html") and 'id="refused"' in r.text, url
    missing = await client.get("/ui/audit/checkpoint.txt")
    assert missing.status_code == 404 and 'id="refused"' in missing.text
