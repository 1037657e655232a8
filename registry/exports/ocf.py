"""An issuer's 认股权 as an Open Cap Format (OCF) v1.2.0 package, rebuilt from its series' events.

How the registry maps onto OCF:

- a *lot* (units with lineage) is an OCF warrant security: `security_id` is the lot id;
- 初始登记 of a lot, and every lot that a transfer or a partial exercise produces, is a
  TX_WARRANT_ISSUANCE (the receiver's lot and the sender's remainder alike);
- 转让 is one TX_WARRANT_TRANSFER per consumed lot: `resulting_security_ids` is the receiver's new
  lot, `balance_security_id` the sender's remainder;
- 行权 is one TX_WARRANT_EXERCISE per consumed lot. OCF exercises a whole security and has no
  quantity on an exercise, so the unexercised remainder is listed among the resulting securities
  (and issued), next to the stock that the issuer's confirmation of the capital increase (增资)
  produced: a TX_STOCK_ISSUANCE;
- 确权 is a TX_WARRANT_ACCEPTANCE of the account's lots;
- 注销登记, the end of a series on IPO approval, and expiry are a TX_WARRANT_CANCELLATION of each
  live lot, with the reason.

Quantities count 认股权 units; what one unit entitles to (shares, or yuan of registered capital) is
the exercise trigger's fixed conversion amount, and the exercise price is per unit. OCF has no place
for freezes, pledges, warrant adjustments or suspensions: those stay in the registry's own exports.
Money is CNY; each file's md5 in the manifest is over its compact JSON (`file_bytes`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from registry.errors import reading
from registry.clock import SHANGHAI, business_date
from registry.eventlog.model import StoredEvent
from registry.exports import stream_events
from registry.parties.service import get_enterprise
from registry.warrants import service as warrants
from registry.warrants.domain import price_per_share

OCF_VERSION = "1.2.0"
CURRENCY = "CNY"
COUNTRY = "CN"
MANIFEST = "Manifest.ocf.json"
STAKEHOLDERS = "Stakeholders.ocf.json"
STOCK_CLASSES = "StockClasses.ocf.json"
TRANSACTIONS = "Transactions.ocf.json"

EXEMPTION = {
    "description": "区域性股权市场非公开发行：仅向合格投资者发行，持有人累计不超过200人"
                   "（国办发〔2017〕11号；《区域性股权市场监督管理试行办法》证监会令第132号）",
    "jurisdiction": COUNTRY,
}

# ISO 3166-2:CN subdivision of the province code that starts a USCC's division code (GB/T 2260).
_PROVINCES = {
    "11": "BJ", "12": "TJ", "13": "HE", "14": "SX", "15": "NM", "21": "LN", "22": "JL", "23": "HL", "31": "SH",
    "32": "JS", "33": "ZJ", "34": "AH", "35": "FJ", "36": "JX", "37": "SD", "41": "HA", "42": "HB", "43": "HN",
    "44": "GD", "45": "GX", "46": "HI", "50": "CQ", "51": "SC", "52": "GZ", "53": "YN", "54": "XZ", "61": "SN",
    "62": "GS", "63": "QH", "64": "NX", "65": "XJ", "71": "TW", "81": "HK", "82": "MO",
}


class Issuer(msgspec.Struct, kw_only=True, frozen=True):
    uscc: str
    name: str
    legal_form: str
    registered_at: dt.datetime


class Holder(msgspec.Struct, kw_only=True, frozen=True):
    investor_id: str
    kind: str
    name: str


# -- value helpers --------------------------------------------------------------------------


def num(value: Decimal | int | str) -> str:
    """OCF Numeric: a fixed-point string, at most 10 decimal places, never an exponent."""
    d = Decimal(value)
    if d.as_tuple().exponent < -10:  # type: ignore[operator]
        d = d.quantize(Decimal("1E-10"))
    return format(d, "f")


def money(amount: Decimal | int | str) -> dict[str, str]:
    return {"amount": num(amount), "currency": CURRENCY}


def yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _date(e: StoredEvent) -> str:
    return (e.effective_date or business_date(e.recorded_at)).isoformat()


def stock_class_id(uscc: str) -> str:
    return f"{uscc}-COMMON"


def file_bytes(obj: dict[str, Any]) -> bytes:
    """A file's content as the package carries it: compact UTF-8 JSON, keys in the order built."""
    return msgspec.json.encode(obj)


# -- the warrant transactions of one series -------------------------------------------------


class _Lot(msgspec.Struct, kw_only=True):
    account_id: str
    investor_id: str
    units: int
    price_per_unit: Decimal
    """What the holder paid per unit (subscription, transfer price, or the parent's for a remainder)."""


class _SeriesRun:
    """Folds one series' events into OCF transactions, lot by lot."""

    def __init__(self, events: list[StoredEvent], stock_class: str) -> None:
        self.events = events
        self.stock_class = stock_class
        self.confirmed = {e.data["exercise_id"]: e for e in events if e.type == "warrant.exercise_confirmed"}
        self.code = ""
        self.terms: dict[str, Any] = {}
        self.entitlement = Decimal(0)
        self.valid_until = ""
        self.lots: dict[str, _Lot] = {}
        self.exercises: dict[str, dict[str, Any]] = {}
        self.out: list[tuple[int, dict[str, Any]]] = []
        self.position = -1

    def run(self) -> list[tuple[int, dict[str, Any]]]:
        for e in self.events:
            handler = getattr(self, "_" + e.type.replace(".", "_"), None)
            if handler is not None:
                self.position = e.position
                with reading(e.position, e.type):
                    handler(e)
        return self.out

    def _emit(self, tx: dict[str, Any]) -> None:
        self.out.append((self.position, tx))

    # -- pieces --

    @property
    def trigger_id(self) -> str:
        return f"{self.code}.EXERCISE"

    def _unit_word(self) -> str:
        return "股" if self.terms["underlying"] == "shares" else "元注册资本"

    def _issue(self, e: StoredEvent, lot_id: str, lot: _Lot, origin: str) -> None:
        self.lots[lot_id] = lot
        terms = self.terms
        comments = [f"{terms['name']} ({self.code}), account {lot.account_id}: {origin}",
                    f"quantity counts 认股权 units; one unit entitles to {num(self.entitlement)} {self._unit_word()} "
                    f"and the exercise price is per unit"]
        if terms["issuer_kind"] == "shareholder":
            comments.append(f"issued by shareholder {terms['issuing_shareholder_id']}: exercise buys its existing "
                            "equity (受让老股)")
        self._emit({
            "object_type": "TX_WARRANT_ISSUANCE",
            "id": f"TX-ISS-{lot_id}",
            "date": _date(e),
            "security_id": lot_id,
            "custom_id": lot_id,
            "stakeholder_id": lot.investor_id,
            "security_law_exemptions": [EXEMPTION],
            "quantity": num(lot.units),
            "quantity_source": "INSTRUMENT_FIXED",
            "exercise_price": money(terms["exercise_price_per_unit"]),
            "purchase_price": money(lot.price_per_unit * lot.units),
            "exercise_triggers": [{
                "trigger_id": self.trigger_id,
                "nickname": "行权期内由持有人选择行权",
                "trigger_description": f"The holder may exercise from {terms['valid_from']} to {self.valid_until} "
                                       f"(validity net of any suspension at issuance of this security).",
                "type": "ELECTIVE_IN_RANGE",
                "start_date": terms["valid_from"],
                "end_date": self.valid_until,
                "conversion_right": {
                    "type": "WARRANT_CONVERSION_RIGHT",
                    "conversion_mechanism": {"type": "FIXED_AMOUNT_CONVERSION",
                                             "converts_to_quantity": num(self.entitlement * lot.units)},
                    "converts_to_stock_class_id": self.stock_class,
                },
            }],
            "warrant_expiration_date": self.valid_until,
            "comments": comments,
        })

    @staticmethod
    def _split(d: dict[str, Any], consumed_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The lot a consumed lot became for the receiver, and its remainder for the holder."""
        moved = next((p for p in d["produced_lots"] if p["parent"] == consumed_id and p["origin"] != "balance"), None)
        rest = next((p for p in d["produced_lots"] if p["parent"] == consumed_id and p["origin"] == "balance"), None)
        return moved, rest

    # -- events --

    def _warrant_series_registered(self, e: StoredEvent) -> None:
        self.code, self.terms = e.data["code"], e.data["terms"]
        self.entitlement = Decimal(self.terms["entitlement_per_unit"])
        self.valid_until = self.terms["valid_until"]

    def _warrant_units_issued(self, e: StoredEvent) -> None:
        d = e.data
        self._issue(e, d["lot_id"], _Lot(account_id=d["account_id"], investor_id=d["investor_id"], units=d["units"],
                                         price_per_unit=Decimal(d["subscription_price_per_unit"])),
                    "initial registration (初始登记)")

    def _warrant_rights_confirmed(self, e: StoredEvent) -> None:
        for lot_id, lot in self.lots.items():
            if lot.account_id == e.data["account_id"]:
                self._emit({"object_type": "TX_WARRANT_ACCEPTANCE", "id": f"TX-ACC-{lot_id}-P{e.position}",
                                 "date": _date(e), "security_id": lot_id,
                                 "comments": [f"rights confirmed (确权) by {e.data['confirmed_by']}"]})

    def _warrant_transferred(self, e: StoredEvent) -> None:
        d = e.data
        total = f"transfer {d['transfer_id']} ({d['mode']}): {d['units']} units at {d['price_per_unit']} CNY per unit, " \
                f"consideration {yuan(d['consideration_fen'])} CNY"
        for consumed in d["consumed_lots"]:
            parent = self.lots.pop(consumed["lot_id"])
            moved, rest = self._split(d, consumed["lot_id"])
            if moved is None:
                raise ValueError(f"transfer {d['transfer_id']} consumed lot {consumed['lot_id']} without moving it")
            tx: dict[str, Any] = {
                "object_type": "TX_WARRANT_TRANSFER", "id": f"TX-TRF-{consumed['lot_id']}", "date": _date(e),
                "security_id": consumed["lot_id"], "quantity": num(moved["units"]),
                "resulting_security_ids": [moved["lot_id"]],
                "consideration_text": f"{num(Decimal(d['price_per_unit']) * moved['units'])} CNY for "
                                      f"{moved['units']} units",
                "comments": [total, f"from {d['from_investor']} (account {d['from_account']}) to {d['to_investor']} "
                                    f"(account {d['to_account']})"],
            }
            if rest is not None:
                tx["balance_security_id"] = rest["lot_id"]
            self._emit(tx)
            self._issue(e, moved["lot_id"], _Lot(account_id=d["to_account"], investor_id=d["to_investor"],
                                                 units=moved["units"], price_per_unit=Decimal(d["price_per_unit"])),
                        f"received by transfer {d['transfer_id']} from lot {consumed['lot_id']}")
            if rest is not None:
                self._issue(e, rest["lot_id"], _Lot(account_id=parent.account_id, investor_id=parent.investor_id,
                                                    units=rest["units"], price_per_unit=parent.price_per_unit),
                            f"remainder of lot {consumed['lot_id']} after transfer {d['transfer_id']}")

    def _warrant_exercised(self, e: StoredEvent) -> None:
        d = e.data
        confirmation = self.confirmed.get(d["exercise_id"])
        stock_id = f"{self.code}-{d['exercise_id']}-S"
        payee = f"{d['payee']['kind']} {d['payee']['id']}"
        self.exercises[d["exercise_id"]] = d
        for consumed in d["consumed_lots"]:
            parent = self.lots.pop(consumed["lot_id"])
            _, rest = self._split(d, consumed["lot_id"])
            exercised = parent.units - (rest["units"] if rest else 0)
            resulting = []
            comments = [f"exercise {d['exercise_id']}: {exercised} of the lot's {parent.units} units "
                        f"({num(Decimal(exercised) * Decimal(d['entitlement_per_unit']))} {self._unit_word()})"]
            if confirmation is None:
                comments.append("awaiting the issuer's confirmation: no stock has resulted yet")
            elif d["method"] == "capital_increase":
                resulting.append(stock_id)
            else:
                comments.append(f"受让老股: the holder acquires existing equity from {payee}; that shareholder's "
                                "stock is not a security in this package")
            if rest is not None:
                resulting.append(rest["lot_id"])
                comments.append(f"the remaining {rest['units']} units continue as warrant {rest['lot_id']}")
            self._emit({
                "object_type": "TX_WARRANT_EXERCISE", "id": f"TX-EXE-{consumed['lot_id']}", "date": _date(e),
                "security_id": consumed["lot_id"], "trigger_id": self.trigger_id,
                "resulting_security_ids": resulting,
                "consideration_text": f"{num(Decimal(exercised) * Decimal(self.terms['exercise_price_per_unit']))} "
                                      f"CNY payable to {payee}",
                "comments": comments,
            })
            if rest is not None:
                self._issue(e, rest["lot_id"], _Lot(account_id=parent.account_id, investor_id=parent.investor_id,
                                                    units=rest["units"], price_per_unit=parent.price_per_unit),
                            f"remainder of lot {consumed['lot_id']} after exercise {d['exercise_id']}")

    def _warrant_exercise_confirmed(self, e: StoredEvent) -> None:
        ex = self.exercises[e.data["exercise_id"]]
        if ex["method"] != "capital_increase":
            return
        stock_id = f"{self.code}-{ex['exercise_id']}-S"
        share_price = price_per_share(Decimal(self.terms["exercise_price_per_unit"]),
                                      Decimal(ex["entitlement_per_unit"]))
        self._emit({
            "object_type": "TX_STOCK_ISSUANCE", "id": f"TX-STK-{stock_id}", "date": _date(e),
            "security_id": stock_id, "custom_id": stock_id, "stakeholder_id": ex["investor_id"],
            "security_law_exemptions": [EXEMPTION], "stock_class_id": self.stock_class,
            "share_price": money(share_price), "quantity": num(ex["amount"]), "stock_legend_ids": [],
            "consideration_text": f"{yuan(ex['payment_due_fen'])} CNY paid on exercise {ex['exercise_id']}",
            "comments": [f"capital increase (增资) on exercise {ex['exercise_id']} of {self.code}, confirmed by "
                         f"{e.data['confirmed_by']}"],
        })

    def _warrant_adjusted(self, e: StoredEvent) -> None:
        self.entitlement = Decimal(e.data["entitlement_after"])

    def _warrant_series_resumed(self, e: StoredEvent) -> None:
        self.valid_until = e.data["valid_until_after"]

    def _end(self, e: StoredEvent, reason: str) -> None:
        for lot_id, lot in self.lots.items():
            self._emit({"object_type": "TX_WARRANT_CANCELLATION", "id": f"TX-CAN-{lot_id}", "date": _date(e),
                             "security_id": lot_id, "quantity": num(lot.units), "reason_text": reason})
        self.lots = {}

    def _warrant_series_cancelled(self, e: StoredEvent) -> None:
        self._end(e, f"注销登记 (cancellation): {e.data['reason']}")

    def _warrant_series_terminated(self, e: StoredEvent) -> None:
        self._end(e, f"终止 (terminated: the target's IPO was approved on {e.data['on']}): {e.data['reason']}")

    def _warrant_series_expired(self, e: StoredEvent) -> None:
        self._end(e, f"到期 (expired: the validity window closed; lapsed on {e.data['on']})")


def series_transactions(events: list[StoredEvent], stock_class: str) -> list[tuple[int, dict[str, Any]]]:
    """One series' OCF transactions with the log position of the event behind each, in log order
    (a lot's issuance follows the transaction that created it)."""
    return _SeriesRun(events, stock_class).run()


# -- the package ----------------------------------------------------------------------------


def _issuer(issuer: Issuer) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "object_type": "ISSUER", "id": issuer.uscc, "legal_name": issuer.name,
        "formation_date": business_date(issuer.registered_at).isoformat(),
        "country_of_formation": COUNTRY,
    }
    province = _PROVINCES.get(issuer.uscc[2:4])
    if province is not None:
        obj["country_subdivision_of_formation"] = province
    obj["tax_ids"] = [{"tax_id": issuer.uscc, "country": COUNTRY}]
    obj["comments"] = [
        "tax id: 统一社会信用代码 (unified social credit code)",
        "formation_date: the registry does not record the date of incorporation; this is the date the enterprise "
        "was registered with the market",
    ]
    return obj


def _stakeholder(investor_id: str, holder: Holder | None) -> dict[str, Any]:
    return {
        "object_type": "STAKEHOLDER", "id": investor_id,
        "name": {"legal_name": holder.name if holder else investor_id},
        "stakeholder_type": "INDIVIDUAL" if holder is not None and holder.kind == "natural_person" else "INSTITUTION",
        "issuer_assigned_id": investor_id, "current_relationship": "INVESTOR",
    }


def _stock_class(issuer: Issuer, shares_issued: Decimal) -> dict[str, Any]:
    shares = issuer.legal_form == "joint_stock"
    return {
        "object_type": "STOCK_CLASS", "id": stock_class_id(issuer.uscc),
        "name": "普通股 (ordinary shares)" if shares else "注册资本 / 出资额 (registered capital, in CNY)",
        "class_type": "COMMON", "default_id_prefix": "CS-",
        "initial_shares_authorized": num(shares_issued),
        "votes_per_share": "1", "seniority": "1",
        "comments": [
            f"issued: {num(shares_issued)} — the total of the share register (股东名册) at export; Chinese "
            "companies have no authorized-but-unissued capital, so it stands in for the authorized number",
            *([] if shares else ["a limited liability company's 'shares' are yuan of registered capital (出资额)"]),
        ],
    }


def holders_of(series: dict[str, list[StoredEvent]]) -> set[str]:
    """Every investor who ever held a unit of these series (the legal holder of each lot's account)."""
    found: set[str] = set()
    for events in series.values():
        for e in events:
            with reading(e.position, e.type):
                if e.type in ("warrant.units_issued", "warrant.exercised"):
                    found.add(e.data["investor_id"])
                elif e.type == "warrant.transferred":
                    found |= {e.data["from_investor"], e.data["to_investor"]}
    return found


def build_package(issuer: Issuer, series: dict[str, list[StoredEvent]], holders: dict[str, Holder],
                  shares_issued: Decimal, generated_at: dt.datetime) -> dict[str, dict[str, Any]]:
    """The package: file name → file object. `series` maps each series code to its events in log order."""
    stock_class = stock_class_id(issuer.uscc)
    placed = [(tx["date"], position, i, tx) for code in sorted(series)
              for i, (position, tx) in enumerate(series_transactions(series[code], stock_class))]
    transactions = [tx for *_, tx in sorted(placed, key=lambda p: p[:3])]
    files: dict[str, dict[str, Any]] = {
        STAKEHOLDERS: {"file_type": "OCF_STAKEHOLDERS_FILE",
                       "items": [_stakeholder(i, holders.get(i)) for i in sorted(holders_of(series))]},
        STOCK_CLASSES: {"file_type": "OCF_STOCK_CLASSES_FILE", "items": [_stock_class(issuer, shares_issued)]},
        TRANSACTIONS: {"file_type": "OCF_TRANSACTIONS_FILE", "items": transactions},
    }
    today = business_date(generated_at)
    latest = max((dt.date.fromisoformat(tx["date"]) for tx in transactions), default=today)

    def ref(name: str) -> list[dict[str, str]]:
        return [{"filepath": f"./{name}", "md5": hashlib.md5(file_bytes(files[name])).hexdigest()}]

    manifest = {
        "ocf_version": OCF_VERSION, "file_type": "OCF_MANIFEST_FILE", "issuer": _issuer(issuer),
        "as_of": max(today, latest).isoformat(),
        "generated_at": generated_at.astimezone(SHANGHAI).isoformat(timespec="seconds"),
        "comments": [f"认股权 (stock warrants) of {issuer.name} ({issuer.uscc}) exported from the registry's event log",
                     "freezes, pledges, warrant adjustments and suspensions have no OCF equivalent and are not included"],
        "stock_plans_files": [], "stock_legend_templates_files": [], "stock_classes_files": ref(STOCK_CLASSES),
        "vesting_terms_files": [], "valuations_files": [], "transactions_files": ref(TRANSACTIONS),
        "stakeholders_files": ref(STAKEHOLDERS),
    }
    return {MANIFEST: manifest, **files}


# -- loading --------------------------------------------------------------------------------


async def load_package(conn: asyncpg.Connection, uscc: str, position: int,
                       now: dt.datetime) -> dict[str, dict[str, Any]]:
    """The enterprise's package as of log `position`: its series' events, holders and share register total."""
    enterprise = await get_enterprise(conn, uscc)
    issuer = Issuer(uscc=enterprise.uscc, name=enterprise.name, legal_form=enterprise.legal_form,
                    registered_at=enterprise.registered_at)
    series: dict[str, list[StoredEvent]] = {}
    for row in await conn.fetch("SELECT code FROM warrant_series WHERE target_uscc = $1 ORDER BY code", uscc):
        events = await stream_events(conn, warrants.series_stream(row["code"]), position)
        if events:
            series[row["code"]] = events
    ids = sorted(holders_of(series))
    holders = {r["investor_id"]: Holder(investor_id=r["investor_id"], kind=r["kind"], name=r["name"])
               for r in await conn.fetch("SELECT investor_id, kind, name FROM investor WHERE investor_id = ANY($1)",
                                         ids)}
    shares_issued = (await warrants.cap_table(conn, uscc, position)).total_amount
    return build_package(issuer, series, holders, shares_issued, now)
