"""The enterprise's cap table and holder registers as of a date; the operator's pipeline funnel and the
series needing action; the pictures themselves."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import httpx

from listing_fixtures import INCUBATION, READY_FOR_RESERVE, enterprise as listed_enterprise, file_facts, \
    move_through
from registry.access.tokens import Role
from registry.web import charts
from support import sign_in, tianjin_uscc
from warrant_fixtures import TARGET, TODAY, enterprise, investor, ok, op, register_series


def table(page: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert found, page[:3000]
    return found.group(1)


async def test_an_enterprise_sees_its_cap_table_fully_diluted_with_a_chart_as_of_a_date(client: httpx.AsyncClient,
                                                                                        db) -> None:
    await enterprise(client)
    await ok(await client.post(f"/enterprises/{TARGET}/share-register", headers=op(), json={
        "reason": "股东名册", "holders": [{"holder_id": "founder-1", "holder_name": "创始人 赵明", "amount": "600000"},
                                         {"holder_id": "angel-1", "holder_name": "天使<b>合伙</b>", "amount": "300000"}]}))
    bank, bank_acct = await investor(client, "天津银行")
    await register_series(client, [(bank_acct, 100_000)])
    await sign_in(client, Role.enterprise, TARGET)
    page = (await client.get("/ui/enterprise")).text
    lines = table(page, "cap-table-lines")
    assert "创始人 赵明" in lines and "天津银行" in lines  # the warrant holder by its name, not only its id
    assert "60.00%" in lines and "30.00%" in lines and "10.00%" in lines and "1000000" in lines
    svg = re.search(r'<svg[^>]*cap-table-chart.*?</svg>', page, re.S).group(0)
    assert 'class="warrants"' in svg and 'class="shares"' in svg and "60.00%" in svg
    assert "<b>" not in svg and "天使&lt;b&gt;合伙" in svg  # names are text, never markup
    # as of the day before anything was recorded, there was nothing
    before = (await client.get(f"/ui/enterprise?as_of={TODAY - dt.timedelta(days=1)}")).text
    assert "该日尚无股东名册或认股权" in table(before, "cap-table-lines")
    assert (await client.get("/ui/enterprise?as_of=26-11-2026")).status_code == 400


async def test_a_holder_register_per_series_as_of_a_date_is_the_enterprises_own(client: httpx.AsyncClient,
                                                                                db) -> None:
    await enterprise(client)
    _, bank_acct = await investor(client, "天津银行")
    _, fund_acct = await investor(client, "渤海基金")
    code = await register_series(client, [(bank_acct, 70_000), (fund_acct, 30_000)])
    await sign_in(client, Role.enterprise, TARGET)
    page = await client.get(f"/ui/series/{code}")
    register = table(page.text, "register")
    assert page.status_code == 200 and bank_acct in register and "渤海基金" in register and "70000" in register
    earlier = (await client.get(f"/ui/series/{code}?as_of={TODAY - dt.timedelta(days=1)}")).text
    assert "该日尚未登记" in earlier
    await sign_in(client, Role.enterprise, tianjin_uscc(78))  # another enterprise edits the URL
    refused = await client.get(f"/ui/series/{code}")
    assert refused.status_code == 403 and bank_acct not in refused.text and "70000" not in refused.text


async def test_the_operator_sees_the_pipeline_funnel_and_the_reserve_with_what_it_lacks(client: httpx.AsyncClient,
                                                                                        db) -> None:
    small = await listed_enterprise(client, 13, "天津小型科技公司")
    await file_facts(client, small, INCUBATION)
    await move_through(client, small, "applied", "incubation")
    ready = await listed_enterprise(client, 14, "天津后备科技股份公司")
    await file_facts(client, ready, READY_FOR_RESERVE)
    await move_through(client, ready, "applied", "standardisation", "cultivation", "listing_reserve")
    await sign_in(client, Role.operator, "op-li")
    page = (await client.get("/ui/pipeline")).text
    svg = re.search(r'<svg[^>]*funnel-chart.*?</svg>', page, re.S).group(0)
    assert "孵化层" in svg and "上市后备库" in svg and "listing_reserve" in svg
    assert "1 家 now · 2 累计 reached" in svg  # incubation: one there, two got at least that far
    reserve = table(page, "reserve")
    assert "天津后备科技股份公司" in reserve and "新三板挂牌申请" in reserve
    assert "缺" in reserve  # the NEEQ criteria it does not meet, each with figure and threshold
    await sign_in(client, Role.investor, "INV00000001")
    assert (await client.get("/ui/pipeline")).status_code == 403


async def test_series_needing_action_are_those_expiring_suspended_or_frozen(client: httpx.AsyncClient, db) -> None:
    await enterprise(client)
    _, bank_acct = await investor(client, "天津银行")
    soon = await register_series(client, [(bank_acct, 1_000)],
                                 valid_until=(TODAY + dt.timedelta(days=20)).isoformat())
    later = await register_series(client, [(bank_acct, 2_000)])
    await sign_in(client, Role.operator, "op-li")
    page = (await client.get("/ui/series-attention?days=30")).text
    assert soon in table(page, "attention") and "20 天后到期" in page and later not in table(page, "attention")
    assert soon not in table((await client.get("/ui/series-attention?days=10")).text, "attention")
    await ok(await client.post(f"/warrant-series/{later}/holdings/{bank_acct}/freezes", headers=op(), json={
        "units": 500, "document_ref": "(2026)津01执保9号", "reason": "司法冻结"}))
    frozen = table((await client.get("/ui/series-attention?days=10")).text, "attention")
    assert later in frozen and "500 units frozen on 1 holding(s)" in frozen
    await ok(await client.post(f"/enterprises/{TARGET}/ipo-filings", headers=op(),
                               json={"filed_on": TODAY.isoformat(), "reason": "申报IPO"}))
    suspended = table((await client.get("/ui/series-attention?days=0")).text, "attention")
    assert soon in suspended and later in suspended and "暂停" in suspended


def test_the_cap_table_chart_draws_bars_in_proportion_largest_first() -> None:
    svg = str(charts.cap_table_chart([
        charts.Holding(label="小股东", shares=Decimal(100), warrants=Decimal(0)),
        charts.Holding(label="大股东", shares=Decimal(600), warrants=Decimal(300))]))
    widths = [float(w) for w in re.findall(r'class="(?:shares|warrants)" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths == [228.0, 114.0, 38.0]  # 60%, 30%, 10% of a 380-wide bar
    assert svg.index("大股东") < svg.index("小股东") and "90.00%" in svg and "10.00%" in svg


def test_the_funnel_scales_to_the_widest_stage_and_says_when_there_is_nothing() -> None:
    svg = str(charts.funnel_chart([charts.FunnelStep(label_zh="孵化层", label_en="incubation", at_stage=1, reached=4),
                                   charts.FunnelStep(label_zh="规范层", label_en="standardisation", at_stage=3,
                                                     reached=3)]))
    assert re.findall(r'class="reached" x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg) == ["360.00", "270.00"]
    assert "暂无股东" in str(charts.cap_table_chart([]))
