"""Exports through the API: an issuer's warrants as Open Cap Format (validated against the official v1.2.0
schemas) and the regulators' cross-chain registration records, after a whole warrant lifecycle."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from support import DIGEST, auth, tianjin_uscc
from warrant_fixtures import REGULATOR, TARGET, enterprise, investor, key, ok, op, register_series, travel

OCF = Path(__file__).resolve().parents[3] / "shared" / "ocf"
PROTOCOL = {"protocol": "区域性股权市场跨链业务数据模型", "version": "2.0.0"}


# -- the official OCF schemas -----------------------------------------------------------------


class OcfSchemas:
    """Validators for every OCF file and object type, resolving `$ref`s offline to the schema folder."""

    def __init__(self, folder: Path) -> None:
        jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the OCF export (test extra)")
        referencing = pytest.importorskip("referencing")
        from referencing.jsonschema import DRAFT7

        schemas = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.schema.json"))]
        registry = referencing.Registry().with_resources(
            (s["$id"], referencing.Resource(contents=s, specification=DRAFT7)) for s in schemas)
        self.by_object_type: dict[str, Any] = {}
        self.by_file_type: dict[str, Any] = {}
        for schema in schemas:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
            props = schema.get("properties", {})
            if "const" in props.get("object_type", {}):
                self.by_object_type[props["object_type"]["const"]] = validator
            if "const" in props.get("file_type", {}):
                self.by_file_type[props["file_type"]["const"]] = validator

    def errors(self, validator: Any, instance: Any) -> list[str]:
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


@pytest.fixture(scope="module")
def ocf_schemas() -> OcfSchemas:
    if not (OCF / "schema").is_dir():
        pytest.skip(f"the official OCF v1.2.0 schemas are not at {OCF / 'schema'} (shared/ocf beside the repo)")
    return OcfSchemas(OCF / "schema")


# -- a lifecycle --------------------------------------------------------------------------------


async def lifecycle(client: httpx.AsyncClient, db) -> dict[str, str]:
    """Issue to two holders, confirm, transfer part, exercise part and confirm it, freeze and thaw;
    then a second series issued and cancelled."""
    await enterprise(client)
    await ok(await client.post(f"/enterprises/{TARGET}/share-register", headers=op(), json={
        "holders": [{"holder_id": "founder", "holder_name": "创始人", "amount": "8000000"}], "reason": "挂牌时名册"}))
    bank, bank_acct = await investor(client, "天津银行")
    fund, fund_acct = await investor(client, "渤海基金")
    buyer, buyer_acct = await investor(client, "滨海创投")
    code = await register_series(client, [(bank_acct, 100_000), (fund_acct, 50_000)])
    await ok(await client.post(f"/warrant-series/{code}/confirmations", headers=key(auth("investor", bank)),
                               json={"account_id": bank_acct}))
    travel(db, trading_days=6)
    await ok(await client.post(f"/warrant-series/{code}/transfers", headers=op(), json={
        "from_account": bank_acct, "to_account": buyer_acct, "units": 30_000, "mode": "private_agreement",
        "price_per_unit": "1.20", "consideration_fen": 3_600_000, "agreement_digest": DIGEST}))
    exercise = await ok(await client.post(f"/warrant-series/{code}/exercises", headers=key(auth("investor", fund)),
                                          json={"account_id": fund_acct, "units": 10_000}))
    await ok(await client.post(f"/warrant-series/{code}/exercises/{exercise['exercise_id']}/confirmations",
                               headers=key(auth("enterprise", TARGET))))
    hold = {"units": 5_000, "document_ref": "（2026）津0116执保123号", "reason": "法院财产保全"}
    await ok(await client.post(f"/warrant-series/{code}/holdings/{bank_acct}/freezes", headers=op(), json=hold))
    await ok(await client.post(f"/warrant-series/{code}/holdings/{bank_acct}/thaws", headers=op(),
                               json={**hold, "reason": "保全解除"}))
    other = await register_series(client, [(buyer_acct, 20_000)], name="海河智芯2026年第二期认股权")
    await ok(await client.post(f"/warrant-series/{other}/cancellations", headers=op(),
                               json={"reason": "发行人申请注销"}))
    return {"code": code, "other": other, "bank": bank, "bank_acct": bank_acct, "fund": fund,
            "fund_acct": fund_acct, "buyer": buyer, "buyer_acct": buyer_acct, "exercise_id": exercise["exercise_id"]}


# -- Open Cap Format ------------------------------------------------------------------------------


async def test_the_ocf_export_validates_against_the_official_schemas_and_follows_the_lots(
        client: httpx.AsyncClient, db, ocf_schemas: OcfSchemas) -> None:
    m = await lifecycle(client, db)
    body = await ok(await client.get(f"/enterprises/{TARGET}/exports/ocf", headers=auth("enterprise", TARGET)))
    files = body["files"]
    assert set(files) == {"Manifest.ocf.json", "Stakeholders.ocf.json", "StockClasses.ocf.json",
                          "Transactions.ocf.json"}

    for name, file in files.items():  # every file against its file schema, every object against its own
        assert ocf_schemas.errors(ocf_schemas.by_file_type[file["file_type"]], file) == [], name
        for item in file.get("items", []):
            assert ocf_schemas.errors(ocf_schemas.by_object_type[item["object_type"]], item) == [], item
    manifest = files["Manifest.ocf.json"]
    assert ocf_schemas.errors(ocf_schemas.by_object_type["ISSUER"], manifest["issuer"]) == []
    assert manifest["issuer"]["id"] == TARGET and manifest["issuer"]["tax_ids"] == [{"tax_id": TARGET, "country": "CN"}]
    assert manifest["issuer"]["country_subdivision_of_formation"] == "TJ"
    for field, name in (("stakeholders_files", "Stakeholders.ocf.json"), ("stock_classes_files", "StockClasses.ocf.json"),
                        ("transactions_files", "Transactions.ocf.json")):
        assert manifest[field] == [{"filepath": f"./{name}",
                                    "md5": hashlib.md5(msgspec.json.encode(files[name])).hexdigest()}]

    stakeholders = {s["id"]: s for s in files["Stakeholders.ocf.json"]["items"]}
    assert set(stakeholders) == {m["bank"], m["fund"], m["buyer"]}
    assert stakeholders[m["bank"]]["name"]["legal_name"] == "天津银行"
    assert stakeholders[m["bank"]]["stakeholder_type"] == "INDIVIDUAL"
    (stock_class,) = files["StockClasses.ocf.json"]["items"]
    assert stock_class["initial_shares_authorized"] == "8010000.0000"  # the register after the exercise

    txs = files["Transactions.ocf.json"]["items"]
    assert len({tx["id"] for tx in txs}) == len(txs)
    issued: dict[str, dict] = {}
    for tx in txs:  # every security a transaction acts on was issued before it
        if tx["object_type"] in ("TX_WARRANT_ISSUANCE", "TX_STOCK_ISSUANCE"):
            issued[tx["security_id"]] = tx
        else:
            assert tx["security_id"] in issued, tx
            assert tx["date"] >= issued[tx["security_id"]]["date"]
    warrants = [tx for tx in txs if tx["object_type"] == "TX_WARRANT_ISSUANCE"]
    bank_lot, fund_lot = (next(tx for tx in warrants if tx["stakeholder_id"] == holder) for holder in (m["bank"], m["fund"]))
    assert (bank_lot["quantity"], fund_lot["quantity"]) == ("100000", "50000")
    assert bank_lot["exercise_price"] == {"amount": "8.50", "currency": "CNY"}
    trigger = bank_lot["exercise_triggers"][0]
    assert trigger["conversion_right"]["conversion_mechanism"]["converts_to_quantity"] == "100000"
    assert trigger["conversion_right"]["converts_to_stock_class_id"] == stock_class["id"]

    accepted = [tx["security_id"] for tx in txs if tx["object_type"] == "TX_WARRANT_ACCEPTANCE"]
    assert accepted == [bank_lot["security_id"]]  # 确权 of the bank's lot

    (transfer,) = [tx for tx in txs if tx["object_type"] == "TX_WARRANT_TRANSFER"]
    assert transfer["security_id"] == bank_lot["security_id"] and transfer["quantity"] == "30000"
    (received,) = transfer["resulting_security_ids"]
    assert (issued[received]["stakeholder_id"], issued[received]["quantity"]) == (m["buyer"], "30000")
    assert issued[received]["purchase_price"] == {"amount": "36000.00", "currency": "CNY"}
    remainder = issued[transfer["balance_security_id"]]
    assert (remainder["stakeholder_id"], remainder["quantity"]) == (m["bank"], "70000")

    (exercise,) = [tx for tx in txs if tx["object_type"] == "TX_WARRANT_EXERCISE"]
    assert exercise["security_id"] == fund_lot["security_id"]
    assert exercise["trigger_id"] == trigger["trigger_id"]
    stock, rest = (issued[s] for s in exercise["resulting_security_ids"])
    assert stock["object_type"] == "TX_STOCK_ISSUANCE" and stock["stakeholder_id"] == m["fund"]
    assert (stock["quantity"], stock["stock_class_id"]) == ("10000.0000", stock_class["id"])
    assert stock["share_price"] == {"amount": "8.500000", "currency": "CNY"}
    assert (rest["object_type"], rest["stakeholder_id"], rest["quantity"]) == ("TX_WARRANT_ISSUANCE", m["fund"], "40000")

    (cancellation,) = [tx for tx in txs if tx["object_type"] == "TX_WARRANT_CANCELLATION"]
    assert m["other"] in cancellation["security_id"] and cancellation["quantity"] == "20000"
    assert "发行人申请注销" in cancellation["reason_text"]

    again = await ok(await client.get(f"/enterprises/{TARGET}/exports/ocf", headers=REGULATOR))
    assert again["files"]["Transactions.ocf.json"] == files["Transactions.ocf.json"]  # ids are stable


async def test_an_ocf_export_as_of_an_earlier_position_shows_the_lots_then(client: httpx.AsyncClient, db,
                                                                            ocf_schemas: OcfSchemas) -> None:
    m = await lifecycle(client, db)
    events = await ok(await client.get("/events", headers=REGULATOR,
                                       params={"stream": f"series-{m['code']}", "type": "warrant.transferred"}))
    before = events["items"][0]["position"] - 1
    body = await ok(await client.get(f"/enterprises/{TARGET}/exports/ocf", headers=REGULATOR,
                                     params={"at_position": before}))
    assert body["at_position"] == before
    txs = body["files"]["Transactions.ocf.json"]["items"]
    assert {tx["object_type"] for tx in txs} == {"TX_WARRANT_ISSUANCE", "TX_WARRANT_ACCEPTANCE"}
    assert body["files"]["StockClasses.ocf.json"]["items"][0]["initial_shares_authorized"] == "8000000"
    validator = ocf_schemas.by_file_type["OCF_TRANSACTIONS_FILE"]
    assert ocf_schemas.errors(validator, body["files"]["Transactions.ocf.json"]) == []


# -- cross-chain records --------------------------------------------------------------------------


async def all_records(client: httpx.AsyncClient, limit: int, **params: str) -> list[dict]:
    items, after = [], None
    while True:
        page = await ok(await client.get("/exports/registration-records", headers=REGULATOR,
                                         params={"limit": limit, **params, **({"after": after} if after else {})}))
        items += page["items"]
        if page["next"] is None:
            return items
        after = page["next"]


def balances(record: dict, when: str) -> tuple[int, int, int]:
    rights = record["body"]["registration_information"]["registration_rights"]["basic_information_rights"]
    return (rights["available_registration"][f"register_asset_balance_{when}"],
            rights["pledge_registration"][f"register_pledge_balance_{when}"],
            rights["freezing_registration"][f"register_frozen_balance_{when}"])


def source(record: dict) -> str:
    rights = record["body"]["registration_information"]["registration_rights"]["basic_information_rights"]
    return rights["description_status_information"]["register_source_type"]


async def test_registration_records_chain_before_change_after_and_number_versions(
        client: httpx.AsyncClient, db) -> None:
    m = await lifecycle(client, db)
    records = await all_records(client, limit=500)
    assert await all_records(client, limit=3) == records  # paging by log position loses and repeats nothing
    assert all(r["header"]["model"] == PROTOCOL for r in records)
    positions = [r["header"]["metadata"]["log_position"] for r in records]
    assert positions == sorted(positions)

    by_object: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        by_object[(r["header"]["content"]["type"], r["header"]["content"]["object_id"])].append(r)
    for (kind, object_id), chain in by_object.items():
        assert [r["header"]["content"]["version"] for r in chain] == list(range(1, len(chain) + 1)), object_id
        assert [r["header"]["content"]["operation"] for r in chain] == ["create"] + ["update"] * (len(chain) - 1)
        if kind == "registration":
            assert balances(chain[0], "before") == (0, 0, 0)
            for earlier, later in zip(chain, chain[1:]):
                assert balances(earlier, "after") == balances(later, "before"), object_id
            for r in chain:
                change = tuple(a - b for a, b in zip(balances(r, "after"), balances(r, "before")))
                assert change == balances(r, "change")

    bank = by_object[("registration", f"{m['code']}/{m['bank_acct']}")]
    assert [source(r) for r in bank] == ["initial", "rights_confirmation", "transfer", "freeze", "thaw"]
    assert [balances(r, "after") for r in bank] == [(100_000, 0, 0), (100_000, 0, 0), (70_000, 0, 0),
                                                    (65_000, 0, 5_000), (70_000, 0, 0)]
    rights = bank[-1]["body"]["registration_information"]["registration_rights"]["basic_information_rights"]
    assert rights["authentic_right_record"]["register_right_recognition_mode"] == "holder"
    description = rights["basic_information_description"]
    assert description["register_asset_type"] == "认股权" and description["register_subject_account_ref"] == m["bank_acct"]
    assert description["register_subject_ref"] == f"{m['bank']}/2"  # registered, then qualified
    assert description["register_product_ref"] == f"{m['code']}/1"
    freeze = bank[3]["body"]["registration_information"]["registration_rights"]["basic_information_rights"]
    assert freeze["freezing_registration"]["register_thaw_doc"][0]["file_name"] == "（2026）津0116执保123号"

    fund = by_object[("registration", f"{m['code']}/{m['fund_acct']}")]
    assert [(source(r), balances(r, "after")) for r in fund] == [("initial", (50_000, 0, 0)),
                                                                 ("exercise", (40_000, 0, 0))]
    buyer = by_object[("registration", f"{m['code']}/{m['buyer_acct']}")]
    assert [(source(r), balances(r, "change")) for r in buyer] == [("transfer", (30_000, 0, 0))]
    cancelled = by_object[("registration", f"{m['other']}/{m['buyer_acct']}")]
    assert [(source(r), balances(r, "after")) for r in cancelled] == [("initial", (20_000, 0, 0)),
                                                                      ("cancellation", (0, 0, 0))]
    transfer_sides = [r for r in records if r["header"]["metadata"]["event_type"] == "warrant.transferred"]
    assert [balances(r, "change")[0] for r in transfer_sides] == [-30_000, 30_000]

    product = by_object[("product", m["code"])]
    basic = product[0]["body"]["product_information"]["essential_information"]["basic_product_information"]
    listing = product[0]["body"]["product_information"]["transaction_information"]["listing_information"]
    assert (basic["product_account_number_max"], listing["product_transfer_lockup_days"]) == (200, 5)
    assert basic["product_issuer_subject_ref"] == f"{TARGET}/1" and basic["product_code"] == m["code"]
    other = by_object[("product", m["other"])]
    delisting = other[-1]["body"]["product_information"]["transaction_information"]["delisting_information"]
    assert len(other) == 2 and delisting["product_delisting_type"] == "cancelled"
    assert [r["header"]["content"]["operation"] for r in by_object[("subject", TARGET)]] == ["create"]
    assert len(by_object[("subject", m["bank"])]) == 2  # registered, then qualified


async def test_registration_records_filter_by_series_and_type(client: httpx.AsyncClient, db) -> None:
    m = await lifecycle(client, db)
    await ok(await client.post(f"/investors/{m['buyer']}/qualifications/1/revocations", headers=op(),
                               json={"revoked_on": "2026-01-01", "reason": "资产证明失效"}))
    subjects = [r for r in await all_records(client, limit=50, type="subject")
                if r["header"]["content"]["object_id"] == m["buyer"]]
    statuses = [[q["subject_qualification_status"] for q in r["body"]["subject"]["basic_information_subject"]
                 ["subject_qualification_information"]] for r in subjects]
    assert statuses == [[], ["valid"], ["revoked"]]  # each version says what was true then
    mine = await all_records(client, limit=2, series=m["other"])
    assert {(r["header"]["content"]["type"], r["header"]["content"]["object_id"]) for r in mine} == {
        ("product", m["other"]), ("registration", f"{m['other']}/{m['buyer_acct']}")}
    products = await all_records(client, limit=50, type="product")
    assert {r["header"]["content"]["type"] for r in products} == {"product"}
    assert [r["header"]["content"]["version"] for r in products if r["header"]["content"]["object_id"] == m["other"]] \
        == [1, 2]
    bad = await client.get("/exports/registration-records", headers=REGULATOR, params={"type": "fund"})
    assert bad.status_code == 400


# -- who may export -------------------------------------------------------------------------------


async def test_only_the_enterprise_itself_operators_and_regulators_export_its_warrants(
        client: httpx.AsyncClient) -> None:
    await enterprise(client)
    url = f"/enterprises/{TARGET}/exports/ocf"
    assert (await client.get(url, headers=auth("enterprise", TARGET))).status_code == 200
    assert (await client.get(url, headers=auth("operator", "op-1"))).status_code == 200
    assert (await client.get(url, headers=REGULATOR)).status_code == 200
    assert (await client.get(url, headers=auth("enterprise", tianjin_uscc(78)))).status_code == 403
    assert (await client.get(url, headers=auth("investor", "INV00000001"))).status_code == 403
    assert (await client.get(url)).status_code == 401
    missing = await client.get(f"/enterprises/{tianjin_uscc(79)}/exports/ocf", headers=REGULATOR)
    assert missing.status_code == 404
    feed = "/exports/registration-records"
    assert (await client.get(feed, headers=REGULATOR)).status_code == 200
    assert (await client.get(feed, headers=auth("operator", "op-1"))).status_code == 200
    assert (await client.get(feed, headers=auth("enterprise", TARGET))).status_code == 403
    assert (await client.get(feed, headers=auth("investor", "INV00000001"))).status_code == 403

