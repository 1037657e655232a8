"""In a browser, on the demo market: an operator's queue, funnel and series needing action; a regulator's
event browser, checkpoint download, inclusion proof — and a tampered event caught and highlighted."""

from __future__ import annotations

import asyncpg

from registry.access.tokens import Role

TAMPERED = 7


async def test_an_operator_sees_the_queue_the_funnel_and_the_series_needing_action(served, sign_in) -> None:
    async with served.api(Role.operator, "op-wang") as api:
        code = (await api.get("/warrant-series")).json()["items"][0]["code"]
        holding = (await api.get(f"/warrant-series/{code}/register")).json()["lines"][0]["account_id"]
        frozen = await api.post(f"/warrant-series/{code}/holdings/{holding}/freezes",
                                headers={"Idempotency-Key": "browser-freeze"},
                                json={"units": 1_000, "document_ref": "(2026)津0116执保99号", "reason": "财产保全"})
        assert frozen.status_code == 200, frozen.text
    op = await sign_in(Role.operator, "op-wang")
    page = op.page
    await op.open("/ui/approvals", "approvals")
    queue = await page.inner_text("main")
    assert "calendar.publish" in queue and "op-zhang" in queue  # the demo's requests awaiting a second operator

    await op.open("/ui/pipeline", "pipeline")
    funnel = page.locator("svg.funnel-chart")
    assert await funnel.is_visible() and await funnel.locator("rect.at-stage").count() >= 3
    assert "孵化层" in await funnel.inner_html()
    assert "天津滨海生物医药股份有限公司" in await page.inner_text("#reserve")

    await op.open("/ui/series-attention", "series-needing-action")
    attention = await page.inner_text("#attention")
    assert code in attention and "1000 units frozen on 1 holding(s)" in attention


async def test_a_regulator_browses_events_downloads_the_checkpoint_and_proves_inclusion(served, sign_in) -> None:
    async with served.api(Role.operator, "op-wang") as api:
        signed = await api.post("/checkpoints", headers={"Idempotency-Key": "browser-checkpoint"})
        assert signed.status_code in (200, 201), signed.text
    reg = await sign_in(Role.regulator, "examiner-1")
    page = reg.page
    await reg.open("/ui/events", "events")
    await page.fill("input[name=type]", "warrant.transferred")
    async with page.expect_navigation():
        await page.click("form.filters button")
    rows = page.locator("#events tr[id^=event-]")
    assert await rows.count() >= 1 and "warrant.transferred" in await rows.first.inner_text()
    await reg.screenshot("events-filtered")

    await reg.open("/ui/audit", "audit")
    assert "✔" in await page.inner_text("main") and await page.locator("#first-bad").count() == 0
    async with page.expect_download() as download_info:
        await page.click("#download-checkpoint")
    note = (await (await download_info.value).path()).read_text()
    assert note.startswith("registry.tjotc.example/log\n") and "— registry.tjotc.example/log" in note
    async with page.expect_download() as key_info:
        await page.click("#download-key")
    assert (await (await key_info.value).path()).read_text().startswith("registry.tjotc.example/log+")

    await page.fill("input[name=position]", str(TAMPERED))
    async with page.expect_navigation():
        await page.click("#proof + form button")
    assert "验证 verifies: ✔" in await page.inner_text("main")
    await reg.screenshot("inclusion-proof")


async def test_the_regulator_page_highlights_the_first_tampered_event(served, sign_in) -> None:
    reg = await sign_in(Role.regulator, "examiner-2")
    owner = await asyncpg.connect(served.owner_dsn)  # an insider with the database owner's powers
    try:
        await owner.execute("ALTER TABLE event DISABLE TRIGGER event_refuse_change")
        await owner.execute("UPDATE event SET actor = 'someone-else' WHERE position = $1", TAMPERED)
    finally:
        await owner.close()
    page = reg.page
    await reg.open("/ui/audit", "audit-tampered")
    bad = page.locator("#first-bad")
    assert await bad.is_visible() and await bad.locator("strong").inner_text() == str(TAMPERED)
    async with page.expect_navigation():
        await bad.locator("a").click()
    row = page.locator(f"#event-{TAMPERED}")
    assert await row.get_attribute("class") == "bad"
    await reg.screenshot("tampered-event-highlighted")
