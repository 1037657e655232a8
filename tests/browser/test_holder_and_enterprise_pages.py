"""In a browser, on the demo market: a warrant holder and an enterprise sign in, see their own data and
are refused anybody else's when they edit the URL."""

from __future__ import annotations

from registry.access.tokens import Role
from registry.demo import ENTERPRISES, _uscc

TARGET = _uscc(*ENTERPRISES[1][:2])   # 滨海生物医药: the demo's warrant series is on it
OTHER = _uscc(*ENTERPRISES[0][:2])    # 海河智芯: no series of its own


async def demo_ids(served) -> dict[str, str]:
    """Investor and account ids of the demo's holders, and the demo series' code (as a regulator reads them)."""
    async with served.api() as api:
        investors = {i["name"]: i["investor_id"] for i in (await api.get("/investors?limit=100")).json()["items"]}
        ids = {"zhang": investors["张伟"], "bank": investors["天津银行股份有限公司"]}
        for who in ("zhang", "bank"):
            ids[f"{who}_acct"] = (await api.get(f"/investors/{ids[who]}/accounts")).json()["items"][0]["account_id"]
        ids["code"] = (await api.get(f"/warrant-series?target_uscc={TARGET}")).json()["items"][0]["code"]
    return ids


async def test_a_holder_sees_its_positions_history_and_what_it_may_do_and_not_another_holders(served,
                                                                                             sign_in) -> None:
    ids = await demo_ids(served)
    zhang = await sign_in(Role.investor, ids["zhang"])
    page = zhang.page
    await zhang.open("/ui/positions", "positions")
    positions = await page.inner_text("#positions")
    assert ids["code"] in positions and "40000" in positions  # 50,000 bought, 10,000 exercised
    assert "张伟" in await page.inner_text("main")
    assert "open" in await page.inner_text("#accounts")

    await zhang.open(f"/ui/holdings/{ids['code']}/{ids['zhang_acct']}", "holding")
    sell = await page.inner_text("#action-sell")
    assert "不可以" in sell and "5-trading-day holding interval" in sell and "sell allowed from" in sell
    assert "可以" in await page.inner_text("#action-exercise")
    history = await page.inner_text("#history")
    assert "转让" in history and "行权" in history and "50000" in history

    # another holder's holding, by editing the URL: refused, and nothing of it shown
    await zhang.open(f"/ui/holdings/{ids['code']}/{ids['bank_acct']}", "someone-elses-holding", status=403)
    refused = await page.inner_text("main")
    assert "无法显示" in refused and "800000" not in refused and "500000" not in refused
    # nor the regulator's or operator's pages
    await zhang.open("/ui/events", "events-refused", status=403)
    await zhang.open("/ui/pipeline", "pipeline-refused", status=403)


async def test_an_enterprise_sees_its_stage_gaps_cap_table_chart_and_register_and_not_another_enterprises(
        served, sign_in) -> None:
    ids = await demo_ids(served)
    bio = await sign_in(Role.enterprise, TARGET)
    page = bio.page
    await bio.open("/ui/enterprise", "enterprise")
    main = await page.inner_text("main")
    assert "天津滨海生物医药股份有限公司" in main and "上市后备库" in main and "下一步还缺什么" in main
    assert "未满足" in main  # the NEEQ criteria it falls short of, each with figure and threshold
    chart = page.locator("svg.cap-table-chart")
    assert await chart.is_visible()
    assert await chart.locator("rect.shares").count() >= 2 and await chart.locator("rect.warrants").count() >= 2
    lines = await page.inner_text("#cap-table-lines")
    assert "创始人 赵明" in lines and "天津银行股份有限公司" in lines

    await bio.open(f"/ui/series/{ids['code']}", "holder-register")
    register = await page.inner_text("#register")
    assert ids["bank_acct"] in register and "天津银行股份有限公司" in register and "300000" in register  # pledged
    await page.fill("input[name=as_of]", "2020-01-01")  # before the series: the date input works
    async with page.expect_navigation():
        await page.click("form.filters button")
    assert "该日尚未登记" in await page.inner_text("main")
    await bio.screenshot("holder-register-before-issuance")

    other = await sign_in(Role.enterprise, OTHER)
    await other.open(f"/ui/series/{ids['code']}", "another-enterprises-register", status=403)
    assert ids["bank_acct"] not in await other.page.inner_text("main")
    await other.open(f"/ui/enterprise?uscc={TARGET}", "enterprise-url-edited")  # the URL cannot point elsewhere
    assert "天津海河智芯科技有限公司" in await other.page.inner_text("main")
    assert "天津滨海生物医药股份有限公司" not in await other.page.inner_text("main")
