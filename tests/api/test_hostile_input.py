"""Hostile input gets a clear 4xx problem and changes nothing: figures past what the register holds, bodies
that are not UTF-8 JSON, tokens whose claims are not strings, loose spellings of numbers and text, and a
malformed event written into the log by someone with the owner's access."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import unicodedata

import httpx
import jwt
import msgspec
import pytest

from registry import cli
from registry.eventlog import canonical
from registry.eventlog.model import CanonicalEvent, EventMeta
from registry.eventlog.rebuild import EventNotReplayable, rebuild
from support import DIGEST, TEST_KEY, auth, sign_in_form
from warrant_fixtures import REGULATOR, bank_and_fund, op


async def head(client: httpx.AsyncClient) -> int:
    r = await client.get("/audit/tree-head", headers=REGULATOR)
    assert r.status_code == 200, r.text
    return r.json()["tree_size"]


async def refused(client: httpx.AsyncClient, request, status: int, code: str) -> dict:
    """Send `request` (a coroutine factory); it must be the problem `code` and leave the log as it was."""
    before = await head(client)
    r = await request()
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["code"] == code and body["type"] == f"urn:registry:problem:{code}", body
    assert await head(client) == before, "a refused request moved the log head"
    return body


@pytest.fixture
async def market(client: httpx.AsyncClient, db):
    """The bank holds 1 000 000 units of a series; the fund may receive."""
    return await bank_and_fund(client, db, 1_000_000)


def transfer(m: dict, **changes) -> dict:
    return {"from_account": m["bank_acct"], "to_account": m["fund_acct"], "units": 1_000,
            "mode": "private_agreement", "price_per_unit": "1.00", "consideration_fen": 100_000, **changes}


def post_transfer(client: httpx.AsyncClient, m: dict, body: dict):
    return lambda: client.post(f"/warrant-series/{m['code']}/transfers", json=body, headers=op())


# -- 1. figures past what the register holds --------------------------------------------------


async def test_a_consideration_of_2_to_the_63_minus_1_is_a_400_naming_the_field(client, market) -> None:
    body = await refused(client, post_transfer(client, market, transfer(market, units=1, consideration_fen=2**63 - 1)),
                         400, "request.invalid")
    assert body["field"] == "consideration_fen"


async def test_the_bound_on_money_is_stated_in_the_openapi_document(client) -> None:
    schema = (await client.get("/schema/openapi.json")).json()["components"]["schemas"]["Transfer"]["properties"]
    assert (schema["consideration_fen"]["minimum"], schema["consideration_fen"]["maximum"]) == (0, 10**18)
    assert (schema["units"]["minimum"], schema["units"]["maximum"]) == (1, 10**12)
    assert schema["price_per_unit"]["pattern"] == r"^(0|[1-9][0-9]*)(\.[0-9]{1,8})?$"


async def test_a_transfer_that_would_overflow_the_receivers_cost_basis_is_refused_and_the_account_still_receives(
        client, market) -> None:
    # each 10 000 units at 999 999 999 999 yuan comes to just under 10^18 fen: nine fit a bigint, a tenth does not
    big = transfer(market, units=10_000, price_per_unit="999999999999", consideration_fen=999_999_999_999_000_000)
    for _ in range(9):
        r = await client.post(f"/warrant-series/{market['code']}/transfers", json=big, headers=op())
        assert r.status_code == 201, r.text
    body = await refused(client, post_transfer(client, market, big), 422, "figure.out_of_range")
    assert body["figure"] == "the receiver's cost basis (cost_fen)" and body["account_id"] == market["fund_acct"]
    assert body["cost_fen"] == 8_999_999_999_991_000_000 and body["maximum"] == str(2**63 - 1)

    small = await client.post(f"/warrant-series/{market['code']}/transfers", json=transfer(market), headers=op())
    assert small.status_code == 201, small.text  # the account is not poisoned: an ordinary transfer still lands
    positions = (await client.get(f"/investors/{market['fund']}/positions", headers=REGULATOR)).json()["items"]
    assert positions[0]["available"] == 91_000


async def test_a_holder_whose_cost_basis_others_pushed_near_the_maximum_can_still_exercise(client, market) -> None:
    big = transfer(market, units=10_000, price_per_unit="999999999999", consideration_fen=999_999_999_999_000_000)
    for _ in range(9):
        r = await client.post(f"/warrant-series/{market['code']}/transfers", json=big, headers=op())
        assert r.status_code == 201, r.text
    exercised = await client.post(f"/warrant-series/{market['code']}/exercises",
                                  headers={**auth("investor", market["fund"]), "Idempotency-Key": "exercise-2"},
                                  json={"account_id": market["fund_acct"], "units": 2})
    assert exercised.status_code == 201, exercised.text  # its share of the cost leaves without overflowing
    positions = (await client.get(f"/investors/{market['fund']}/positions", headers=REGULATOR)).json()["items"]
    assert (positions[0]["available"], positions[0]["cost_fen"]) == (89_998, 8_999_999_999_991_000_000
                                                                      - 8_999_999_999_991_000_000 * 2 // 90_000)


async def test_a_consideration_of_0_at_a_price_of_7_is_refused(client, market) -> None:
    body = await refused(client, post_transfer(client, market, transfer(market, price_per_unit="7.00",
                                                                          consideration_fen=0)),
                         422, "warrant.consideration_mismatch")
    assert (body["units_times_price_fen"], body["consideration_fen"]) == (700_000, 0)


async def test_a_price_of_0_with_a_consideration_is_refused_and_a_gift_states_0_for_both(client, market) -> None:
    await refused(client, post_transfer(client, market, transfer(market, price_per_unit="0")),
                  422, "warrant.consideration_mismatch")
    gift = await client.post(f"/warrant-series/{market['code']}/transfers",
                             json=transfer(market, price_per_unit="0", consideration_fen=0), headers=op())
    assert gift.status_code == 201, gift.text


# -- 2. bodies that are not UTF-8 JSON ---------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"[" * 1_000 + b"]" * 1_000,
    b'{"kind": "natural_person", "name": ' + b"[" * 1_000 + b"]" * 1_000 + b"}",
    b'{"kind": "natural_person", "name": "\xff\xfe", "identity_document_digest": "' + DIGEST.encode() + b'"}',
    b'{"kind": "natural_person", "name": "\xe5\xbc", "identity_document_digest": "' + DIGEST.encode() + b'"}',
], ids=["nested-1000-deep", "nested-in-a-field", "invalid-utf8", "truncated-utf8"])
async def test_a_body_nested_1000_deep_or_not_utf8_is_a_400(client: httpx.AsyncClient, raw: bytes) -> None:
    body = await refused(client, lambda: client.post("/investors", content=raw, headers={
        **op(), "Content-Type": "application/json"}), 400, "request.invalid")
    assert body["where"] == "body"


async def test_an_approval_payload_nested_deeper_than_a_request_needs_is_a_400(client: httpx.AsyncClient) -> None:
    payload: object = "x"
    for _ in range(100):
        payload = {"a": payload}
    await refused(client, lambda: client.post("/approvals", json={"action": "calendar.publish", "payload": payload,
                                                                  "reason": "r"}, headers=op()),
                  400, "request.invalid")


# -- 3. tokens whose claims are not strings ----------------------------------------------------


def signed(**claims) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    return jwt.encode({"iss": "registry", "sub": "op-1", "role": "operator", "iat": now,
                       "exp": now + dt.timedelta(hours=1), **claims}, TEST_KEY, algorithm="EdDSA")


BAD_CLAIMS = [{"role": ["operator"]}, {"role": {"operator": True}}, {"role": 1}, {"role": None},
              {"sub": ["op-1"]}, {"sub": {"id": "op-1"}}, {"sub": 7}, {"sub": "op\u202e1"}, {"sub": "x" * 65},
              {"exp": 1e400}]


@pytest.mark.parametrize("claims", BAD_CLAIMS, ids=lambda c: f"{next(iter(c))}={str(next(iter(c.values())))[:12]}")
async def test_a_signed_token_whose_role_or_subject_is_not_a_string_is_a_401(client: httpx.AsyncClient,
                                                                            claims) -> None:
    token = signed(**claims)
    await refused(client, lambda: client.post("/investors", json={"kind": "natural_person", "name": "张三",
                                                                  "identity_document_digest": DIGEST},
                                              headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "t"}),
                  401, "auth.unauthenticated")
    r = await client.get("/events", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["code"] == "auth.unauthenticated"


@pytest.mark.parametrize("claims", BAD_CLAIMS[:2] + BAD_CLAIMS[4:6], ids=["role-list", "role-object", "sub-list",
                                                                         "sub-object"])
async def test_the_pages_send_such_a_token_back_to_sign_in(client: httpx.AsyncClient, claims) -> None:
    token = signed(**claims)
    client.cookies.clear()
    client.cookies.set("registry_token", token, path="/ui")
    r = await client.get("/ui/events")
    assert r.status_code in (302, 303) and r.headers["location"] == "/ui/sign-in"
    csrf = await sign_in_form(client)
    form = await client.post("/ui/sign-in", data={"token": token, "_csrf_token": csrf})
    assert form.status_code == 400 and "registry_token" not in form.cookies


# -- 4. loose spellings of numbers and text ----------------------------------------------------


@pytest.mark.parametrize(("changes", "field"), [
    ({"units": "1000"}, "units"),
    ({"units": 1000.0}, "units"),
    ({"units": True}, "units"),
    ({"consideration_fen": "100000"}, "consideration_fen"),
    ({"consideration_fen": "0"}, "consideration_fen"),
    ({"price_per_unit": " 1"}, "price_per_unit"),
    ({"price_per_unit": "１"}, "price_per_unit"),
    ({"price_per_unit": "1." + "0" * 30 + "1"}, "price_per_unit"),
    ({"price_per_unit": "+1"}, "price_per_unit"),
    ({"price_per_unit": "01"}, "price_per_unit"),
    ({"price_per_unit": "1e0"}, "price_per_unit"),
    ({"price_per_unit": "1_0"}, "price_per_unit"),
    ({"price_per_unit": "-0"}, "price_per_unit"),
    ({"price_per_unit": "NaN"}, "price_per_unit"),
    ({"price_per_unit": 1}, "price_per_unit"),
    ({"from_account": "ACC\u200b1"}, "from_account"),
], ids=lambda v: repr(v)[:40] if isinstance(v, dict) else None)
async def test_a_loosely_spelled_figure_is_a_400_naming_the_field(client, market, changes, field) -> None:
    body = await refused(client, post_transfer(client, market, transfer(market, **changes)), 400, "request.invalid")
    assert body["field"] == field and body["errors"][0]["key"] == field, body


@pytest.mark.parametrize("name", ["\u202e张三", "张\u200b三", "\ufeff张三", "张三\u2066", "张\u0007三", "张三\n",
                                  " 张三", "x" * 10_000, ""],
                         ids=["rlo", "zero-width-space", "bom", "bidi-isolate", "bell", "newline", "leading-space",
                              "10000-chars", "empty"])
async def test_a_name_with_hidden_or_too_many_characters_is_a_400_naming_the_field(client, name: str) -> None:
    body = await refused(client, lambda: client.post("/investors", json={
        "kind": "natural_person", "name": name, "identity_document_digest": DIGEST}, headers=op()),
        400, "request.invalid")
    assert body["field"] == "name"


async def test_a_name_is_kept_in_its_composed_unicode_form(client: httpx.AsyncClient) -> None:
    decomposed = unicodedata.normalize("NFD", "Renée Müller")
    r = await client.post("/investors", json={"kind": "natural_person", "name": decomposed,
                                              "identity_document_digest": DIGEST}, headers=op())
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Renée Müller" == unicodedata.normalize("NFC", decomposed) != decomposed


async def test_text_nested_in_a_proposal_is_held_to_the_same_rules(client: httpx.AsyncClient, market) -> None:
    from warrant_fixtures import TARGET, terms
    proposal = {"terms": terms([(market["fund_acct"], 10)], name="认股权\u202e"), "reason": "银行认股权贷款"}
    body = await refused(client, lambda: client.post("/warrant-series", json=proposal,
                                                     headers=auth("enterprise", TARGET, "rlo-terms")),
                         400, "request.invalid")
    assert body["field"] == "terms.name"


async def test_a_loose_approval_payload_is_refused_and_a_good_one_is_logged_in_its_canonical_spelling(
        client: httpx.AsyncClient, market) -> None:
    from warrant_fixtures import terms
    loose = terms([(market["fund_acct"], 10)], entitlement_per_unit=" 1")
    body = await refused(client, lambda: client.post("/approvals", json={
        "action": "warrant.register", "payload": loose, "reason": "r"}, headers=op()), 422, "approval.payload_invalid")
    assert body["field"] == "entitlement_per_unit"
    good = await client.post("/approvals", json={"action": "warrant.register", "payload": terms(
        [(market["fund_acct"], 10)]), "reason": "r"}, headers=op())
    assert good.status_code == 201, good.text
    logged = (await client.get("/events", headers=REGULATOR, params={"type": "approval.requested"})).json()["items"]
    payload = logged[-1]["data"]["payload"]
    assert payload["allocations"] == [{"account_id": market["fund_acct"], "units": 10,
                                       "subscription_price_per_unit": "0"}]
    assert payload["max_holders"] == 200 and payload["entitlement_per_unit"] == "1"


# -- 5. a malformed event in the log -----------------------------------------------------------


async def append_as_owner(owner, *, stream: str, type_: str, raw: bytes | None = None,
                          data: dict | None = None) -> int:
    """What an insider with the schema owner's access could append: a row the chain guard accepts."""
    last = await owner.fetchrow("SELECT position, hash FROM event ORDER BY position DESC LIMIT 1")
    position, previous = last["position"] + 1, bytes(last["hash"])
    now = dt.datetime.now(dt.timezone.utc)
    if raw is None:
        raw = canonical.encode(CanonicalEvent(
            position=position, stream=stream, version=0, type=type_, schema=1, data=data or {},
            meta=EventMeta(actor="insider", role="operator", command="Tamper"), recorded_at=now,
            effective_date=None, prev_hash=previous.hex()))
    await owner.execute(
        "INSERT INTO event (position, stream_id, stream_version, event_type, schema_version, actor, recorded_at, "
        "effective_date, canonical, hash, prev_hash) VALUES ($1, $2, 0, $3, 1, 'insider', $4, NULL, $5, $6, $7)",
        position, stream, type_, now, raw, hashlib.sha256(raw).digest(), previous)
    return position


async def test_an_event_whose_bytes_are_not_an_event_is_shown_flagged_and_stops_a_rebuild_by_name(
        client: httpx.AsyncClient, db, owner, dsns, monkeypatch, capsys) -> None:
    position = await append_as_owner(owner, stream="tamper-1", type_="tamper.inserted",
                                     raw=b'{"stream": "\xff"}')
    items = (await client.get("/events", headers=REGULATOR, params={"after": position - 1})).json()["items"]
    assert [(e["position"], e["type"], e["data"]) for e in items] == [(position, "tamper.inserted", {})]
    assert "not an event document" in items[0]["malformed"] and items[0]["canonical_text"] == '{"stream": "\\xff"}'
    page = await client.get("/ui/events", headers=REGULATOR)
    assert page.status_code == 200 and "malformed" in page.text and "tamper.inserted" in page.text

    async with db.connection() as conn:
        with pytest.raises(EventNotReplayable) as caught:
            await rebuild(conn)
    assert caught.value.position == position

    monkeypatch.setenv("DATABASE_URL", dsns.app)
    code = await asyncio.to_thread(cli.main, ["rebuild", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"registry rebuild: event {position} cannot be replayed: its stored bytes are "
                                 "not an event document: it is not UTF-8; nothing changed"]


async def test_an_event_whose_bytes_are_not_utf8_is_named_by_the_integrity_check_and_by_verify(
        client: httpx.AsyncClient, owner, dsns, monkeypatch, capsys) -> None:
    position = await append_as_owner(owner, stream="tamper-3", type_="tamper.inserted", raw=b'{"stream": "\xff"}')
    report = await client.get("/audit/integrity", headers=REGULATOR)
    assert report.status_code == 200, report.text
    assert not report.json()["ok"] and report.json()["first_bad_position"] == position, report.json()

    monkeypatch.setenv("DATABASE_URL", dsns.app)
    code = await asyncio.to_thread(cli.main, ["verify", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and f"FAILED at position {position}: stored bytes are not a canonical event: it is not UTF-8" in err


async def test_an_event_whose_data_its_projector_cannot_read_stops_a_rebuild_by_name(
        client: httpx.AsyncClient, db, owner) -> None:
    position = await append_as_owner(owner, stream="tamper-2", type_="warrant.transferred",
                                     data={"code": "WR999999"})
    items = (await client.get("/events", headers=REGULATOR, params={"after": position - 1})).json()["items"]
    assert items[0]["data"] == {"code": "WR999999"} and "malformed" not in items[0]
    async with db.connection() as conn:
        with pytest.raises(EventNotReplayable) as caught:
            await rebuild(conn)
        assert await conn.fetchval("SELECT count(*) FROM trading_day") > 0  # the rebuild changed nothing
    assert caught.value.position == position and "warrant.transferred" in caught.value.reason
    # the regulators' export stops at it and names it, rather than fail or leave it out
    export = await client.get("/exports/registration-records", headers=REGULATOR)
    assert export.status_code == 409, export.text
    problem = export.json()
    assert problem["code"] == "eventlog.event_unreadable" and problem["position"] == position
    assert problem["event_type"] == "warrant.transferred" and "from_investor" in problem["detail"]


def test_every_request_field_states_its_bounds() -> None:
    """Every integer, decimal and text field of every request body carries a bound (registry.fields)."""
    import typing

    import msgspec.inspect as mi

    from registry.app import CONTROLLERS
    from registry.approvals.service import ACTIONS

    loose: list[str] = []

    def check(t, path: str) -> None:
        extra = {}
        if isinstance(t, mi.Metadata):
            extra, t = t.extra or {}, t.type
        if isinstance(t, mi.UnionType):
            for member in t.types:
                check(member, path)
        elif isinstance(t, mi.StrType) and t.max_length is None:
            loose.append(path)
        elif isinstance(t, mi.IntType) and (t.ge is None or t.le is None):
            loose.append(path)
        elif isinstance(t, mi.DecimalType) and "decimal" not in extra:
            loose.append(path)
        elif isinstance(t, mi.StructType):
            for f in t.fields:
                check(f.type, f"{t.cls.__name__}.{f.name}")
        elif isinstance(t, (mi.ListType, mi.VarTupleType)):
            if t.max_length is None:
                loose.append(path)
            check(t.item_type, path)

    bodies = [action.payload_type for action in ACTIONS.values()]
    for controller in CONTROLLERS:
        for handler in vars(controller).values():
            fn = getattr(handler, "fn", None)
            if fn is not None and "data" in (hints := typing.get_type_hints(fn)):
                bodies.append(hints["data"])
    for body in bodies:
        if msgspec.inspect.type_info(body).__class__ is mi.StructType:
            check(mi.type_info(body), body.__name__)
    assert loose == []
