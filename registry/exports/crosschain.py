"""Records in the shape of the regulators' cross-chain data model (区域性股权市场跨链业务数据模型 v2.0.0,
JR/T 0315-2024), rebuilt from the event log.

Every record is an envelope — `header.model` (protocol, version), `header.content` (type, object_id,
version, operation, timestamp) — around a body whose field names follow the model as the
regulator-chain test code uses it (domain brief §5, src-9):

- `registration` (登记), one per change of a holding's balances: object `<series code>/<account id>`;
  issuance, each side of a transfer, freeze/thaw, pledge/release, exercise, rights confirmation
  (确权, no change) and cancellation/termination/expiry each add a version with the available, pledge
  and freeze balances before / change / after, so each record's `after` is the next one's `before`;
- `product` (产品), a series: created at registration, a new version when its status or terms change;
- `subject` (主体), an enterprise or an investor (a new version when a qualification changes).

The object's version counts its records (1, 2, …; the first is a `create`, the rest `update`).
References name `<object_id>/<version>` where this export produces the object (subjects, products)
and the bare id otherwise (accounts). Where the model uses integer code tables we could not read,
values are the registry's own words (e.g. `register_source_type: "transfer"`); money is a decimal
string in yuan, currency "156" (ISO 4217 numeric for CNY) as in the model. `header.metadata` names
the log position and event the record comes from: the feed's cursor.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from registry.errors import reading
from registry.clock import SHANGHAI, business_date
from registry.eventlog.model import StoredEvent
from registry.exports import stream_events
from registry.parties.service import enterprise_stream, investor_stream
from registry.warrants.service import series_stream

PROTOCOL = "区域性股权市场跨链业务数据模型"
MODEL_VERSION = "2.0.0"
CURRENCY_NUMERIC = "156"
ASSET_TYPE = "认股权"
ASSET_UNIT = "份"

# event type → (register_source_type, register_event_type) for the events that change a holding
_BALANCE_EVENTS = {
    "warrant.units_issued": ("initial", "初始登记"),
    "warrant.rights_confirmed": ("rights_confirmation", "确权"),
    "warrant.transferred": ("transfer", "过户转让"),
    "warrant.units_frozen": ("freeze", "冻结"),
    "warrant.units_thawed": ("thaw", "解冻"),
    "warrant.units_pledged": ("pledge", "质押"),
    "warrant.units_released": ("pledge_release", "解除质押"),
    "warrant.exercised": ("exercise", "行权"),
    "warrant.series_cancelled": ("cancellation", "注销登记"),
    "warrant.series_terminated": ("termination", "终止（IPO获批）"),
    "warrant.series_expired": ("expiry", "到期注销"),
}
_PRODUCT_EVENTS = ("warrant.series_registered", "warrant.series_suspended", "warrant.series_resumed",
                   "warrant.adjusted", "warrant.exercised", "warrant.series_cancelled", "warrant.series_terminated",
                   "warrant.series_expired")
_SUBJECT_EVENTS = ("enterprise.registered", "investor.registered", "qualification.granted", "qualification.revoked")

RECORD_TYPES = ("registration", "product", "subject")
EVENT_TYPES = {
    "registration": tuple(_BALANCE_EVENTS),
    "product": _PRODUCT_EVENTS,
    "subject": _SUBJECT_EVENTS,
}


class Context(msgspec.Struct, kw_only=True, frozen=True):
    """What records need from outside the stream they come from."""

    market_name: str
    lockup_trading_days: int
    """The holding interval between opposite trades (间隔不少于5个交易日): the product's transfer lock-up."""
    subject_positions: Mapping[str, list[int]] = {}
    """Subject object id → log positions of its subject records, to reference the version in force."""
    names: Mapping[str, str] = {}
    """Subject object id → name (issuers' names on product records)."""

    def subject_ref(self, object_id: str, position: int) -> str:
        version = bisect_right(self.subject_positions.get(object_id, []), position)
        return f"{object_id}/{version}" if version else object_id


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _date(e: StoredEvent) -> str:
    return (e.effective_date or business_date(e.recorded_at)).isoformat()


def _yuan(fen: int) -> str:
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def doc(name: str, digest: str | None = None, uri: str | None = None) -> dict[str, str | None]:
    """A document as the model attaches it: off-chain, referenced by its digest and address."""
    return {"file_name": name, "hash": digest, "url": uri}


_ZERO = {"available": 0, "pledged": 0, "frozen": 0}


class _Fold:
    """Folds one stream's events into its records, numbering each object's versions."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.versions: dict[tuple[str, str], int] = {}
        self.out: list[dict[str, Any]] = []
        # series
        self.code = ""
        self.terms: dict[str, Any] = {}
        self.series: dict[str, Any] = {}
        self.balances: dict[str, dict[str, int]] = {}
        self.investors: dict[str, str] = {}
        self.confirmations: dict[str, dict[str, Any]] = {}
        # subjects
        self.subject: dict[str, Any] = {}
        self.qualifications: dict[int, dict[str, Any]] = {}

    def run(self, events: list[StoredEvent]) -> list[dict[str, Any]]:
        for e in events:
            handler = getattr(self, "_" + e.type.replace(".", "_"), None)
            if handler is not None:
                with reading(e.position, e.type):
                    handler(e)
        return self.out

    def _emit(self, kind: str, object_id: str, e: StoredEvent, body: dict[str, Any]) -> None:
        version = self.versions.get((kind, object_id), 0) + 1
        self.versions[(kind, object_id)] = version
        self.out.append({
            "header": {
                "model": {"protocol": PROTOCOL, "version": MODEL_VERSION},
                "content": {"type": kind, "object_id": object_id, "version": version,
                            "operation": "create" if version == 1 else "update",
                            "timestamp": int(e.recorded_at.timestamp())},
                "metadata": {"log_position": e.position, "event_type": e.type, "event_hash": e.hash},
            },
            "body": body,
        })

    # -- registration (登记) -------------------------------------------------------------------

    @property
    def product_ref(self) -> str:
        return f"{self.code}/{self.versions.get(('product', self.code), 0)}"

    def _registration(self, e: StoredEvent, account: str, after: dict[str, int], *, transaction_ref: str | None = None,
                      documents: list[dict[str, Any]] | None = None, note: str | None = None,
                      thaw: tuple[list[dict[str, Any]], str] | None = None) -> None:
        before = self.balances.get(account, _ZERO)
        self.balances[account] = after
        source, label = _BALANCE_EVENTS[e.type]
        subject_ref = self.ctx.subject_ref(self.investors[account], e.position)
        total = sum(after.values())
        ended = self.series.get("status") in ("cancelled", "terminated", "expired")
        rights: dict[str, Any] = {
            "basic_information_description": {
                "register_serial_number": str(e.position),
                "register_time": _time(e.recorded_at),
                "register_create_time": _time(e.recorded_at),
                "register_effective_date": _date(e),
                "register_subject_type": "investor",
                "register_subject_ref": subject_ref,
                "register_subject_account_ref": account,
                "register_asset_type": ASSET_TYPE,
                "register_asset_unit": ASSET_UNIT,
                "register_asset_currency": CURRENCY_NUMERIC,
                "register_product_ref": self.product_ref,
                "register_transaction_ref": transaction_ref,
                "register_description": f"{label}: {self.terms['name']} ({self.code})",
            },
            "authentic_right_record": self.confirmations.get(account, {}),
            "available_registration": {
                "register_asset_balance_before": before["available"],
                "register_asset_balance_change": after["available"] - before["available"],
                "register_asset_balance_after": after["available"],
            },
            "pledge_registration": {
                "register_pledge_balance_before": before["pledged"],
                "register_pledge_balance_change": after["pledged"] - before["pledged"],
                "register_pledge_balance_after": after["pledged"],
            },
            "freezing_registration": {
                "register_frozen_balance_before": before["frozen"],
                "register_frozen_balance": before["frozen"],
                "register_frozen_balance_change": after["frozen"] - before["frozen"],
                "register_frozen_balance_after": after["frozen"],
                "register_thaw_doc": thaw[0] if thaw else [],
                "register_thaw_description": thaw[1] if thaw else None,
            },
            "description_status_information": {
                "register_asset_holding_status": "cancelled" if ended else ("held" if total else "none"),
                "register_asset_holding_status_description":
                    f"available {after['available']}, pledged {after['pledged']}, frozen {after['frozen']}",
                "register_asset_holding_nature": "warrant",
                "register_source_type": source,
                "register_asset_note": note,
                "register_asset_verification_doc": documents or [],
            },
        }
        self._emit("registration", f"{self.code}/{account}", e, {"registration_information": {
            "register_basic_information": {"register_object_type": "权利登记", "register_event_type": label},
            "registration_rights": {"basic_information_rights": rights},
            "roll_records": {"basic_information_roster": {"register_product_ref": self.product_ref,
                                                          "register_subject_ref": subject_ref}},
        }})

    def _warrant_units_issued(self, e: StoredEvent) -> None:
        d = e.data
        self.investors[d["account_id"]] = d["investor_id"]
        documents = [doc(x["name"], x["sha256"], x.get("uri")) for x in self.terms.get("documents", [])]
        self._registration(e, d["account_id"], d["after"], transaction_ref=d["lot_id"], documents=documents,
                           note=f"{d['units']} units at {d['subscription_price_per_unit']} CNY per unit")

    def _warrant_rights_confirmed(self, e: StoredEvent) -> None:
        d = e.data
        account = d["account_id"]
        by_holder = e.meta.role == "investor"
        self.confirmations[account] = {
            "register_authentic_right_recognition_date": _date(e),
            "register_right_recognition_mode": "holder" if by_holder else "operator_on_behalf",
            "register_right_recognition_subject_ref": self.ctx.subject_ref(self.investors[account], e.position),
            "register_right_recognition_agent_subject_name": None if by_holder else d["confirmed_by"],
            "register_right_recognition_doc": [],
            "register_right_recognition_description": f"{d['units']} units confirmed by {d['confirmed_by']} "
                                                      f"({e.meta.role})",
        }
        self._registration(e, account, self.balances.get(account, _ZERO))

    def _warrant_transferred(self, e: StoredEvent) -> None:
        d = e.data
        self.investors[d["to_account"]] = d["to_investor"]
        documents = [doc("转让协议", d["agreement_digest"])] if d.get("agreement_digest") else []
        note = f"{d['units']} units, {d['mode']}, {d['price_per_unit']} CNY per unit, consideration " \
               f"{_yuan(d['consideration_fen'])} CNY; from {d['from_account']} to {d['to_account']}"
        self._registration(e, d["from_account"], d["from_after"], transaction_ref=d["transfer_id"],
                           documents=documents, note=note)
        self._registration(e, d["to_account"], d["to_after"], transaction_ref=d["transfer_id"],
                           documents=documents, note=note)

    def _moved(self, e: StoredEvent) -> None:
        d = e.data
        documents = [doc(d["document_ref"])]
        thaw = (documents, d["reason"]) if e.type in ("warrant.units_frozen", "warrant.units_thawed") else None
        self._registration(e, d["account_id"], d["after"], documents=documents, note=d["reason"], thaw=thaw)

    _warrant_units_frozen = _warrant_units_thawed = _warrant_units_pledged = _warrant_units_released = _moved

    def _warrant_exercised(self, e: StoredEvent) -> None:
        d = e.data
        self._registration(e, d["account_id"], d["after"], transaction_ref=d["exercise_id"],
                           note=f"{d['units']} units exercised ({d['method']}) for {d['amount']}; "
                                f"{_yuan(d['payment_due_fen'])} CNY due to {d['payee']['kind']} {d['payee']['id']}")
        if d["fully_exercised"]:
            self.series["status"] = "exercised"
            self._product(e, delisting={"product_delisting_date": _date(e), "product_delisting_type": "exercised",
                                        "product_delisting_reason": "every unit exercised"})

    def _ended(self, e: StoredEvent, status: str, reason: str) -> None:
        self.series["status"] = status
        for account, balance in list(self.balances.items()):
            if sum(balance.values()):
                self._registration(e, account, dict(_ZERO), note=reason)
        self._product(e, delisting={"product_delisting_date": _date(e), "product_delisting_type": status,
                                    "product_delisting_reason": reason})

    def _warrant_series_cancelled(self, e: StoredEvent) -> None:
        self._ended(e, "cancelled", e.data["reason"])

    def _warrant_series_terminated(self, e: StoredEvent) -> None:
        self._ended(e, "terminated", f"the target's IPO was approved on {e.data['on']}: {e.data['reason']}")

    def _warrant_series_expired(self, e: StoredEvent) -> None:
        self._ended(e, "expired", f"the validity window closed; lapsed on {e.data['on']}")

    # -- product (产品) ------------------------------------------------------------------------

    def _product(self, e: StoredEvent, *, reason: str | None = None,
                 delisting: dict[str, Any] | None = None) -> None:
        t, s = self.terms, self.series
        issuer = t["target_uscc"] if t["issuer_kind"] == "target" else t["issuing_shareholder_id"]
        if delisting is not None:
            s["delisting"] = delisting
        self._emit("product", self.code, e, {"product_information": {
            "essential_information": {"basic_product_information": {
                "product_trading_market_category": "regional_equity_market",
                "product_market_subject_name": self.ctx.market_name,
                "product_plate_trading_name": "认股权",
                "product_issuer_subject_ref": self.ctx.subject_ref(issuer, e.position),
                "product_issuer_name": self.ctx.names.get(issuer),
                "product_issuer_type": t["issuer_kind"],
                "product_code": self.code,
                "product_name": t["name"],
                "product_type": ASSET_TYPE,
                "product_account_number_max": t["max_holders"],
                "product_info_disclosure_way": "non_public",
                "product_scale": s["units_issued"],
                "product_scale_unit": ASSET_UNIT,
                "product_create_time": s["registered_at"],
            }, "product_file_information": [doc(x["name"], x["sha256"], x.get("uri")) for x in t.get("documents", [])]},
            "release_information": {"warrant_issue_information": {
                "product_target_subject_ref": self.ctx.subject_ref(t["target_uscc"], e.position),
                "product_underlying": t["underlying"],
                "product_entitlement_per_unit": s["entitlement_per_unit"],
                "product_exercise_price_per_unit": t["exercise_price_per_unit"],
                "product_exercise_price_currency": CURRENCY_NUMERIC,
                "product_exercise_method": t["exercise_method"],
                "product_valid_from": t["valid_from"],
                "product_valid_until": s["valid_until"],
                "product_anti_dilution": t["anti_dilution"],
            }},
            "transaction_information": {
                "transaction_status": {"product_transaction_status": s["status"]},
                "listing_information": {
                    "product_transaction_scope": "qualified_investors",
                    "product_transfer_modes": t["transfer_modes"],
                    "product_transfer_lockup_days": self.ctx.lockup_trading_days,
                    "product_transaction_unit": ASSET_UNIT,
                    "product_listing_code": self.code,
                    "product_listing_date": s["registered_on"],
                },
                "delisting_information": s.get("delisting", {}),
            },
            "product_status_update_reason": reason,
        }})

    def _warrant_series_registered(self, e: StoredEvent) -> None:
        d = e.data
        self.code, self.terms = d["code"], d["terms"]
        self.series = {"status": "registered", "units_issued": d["units_issued"], "registered_at": _time(e.recorded_at),
                       "registered_on": _date(e), "entitlement_per_unit": self.terms["entitlement_per_unit"],
                       "valid_until": self.terms["valid_until"]}
        self._product(e)

    def _warrant_series_suspended(self, e: StoredEvent) -> None:
        self.series["status"] = "suspended"
        self._product(e, reason=f"suspended from {e.data['since']} (IPO application filed): {e.data['reason']}")

    def _warrant_series_resumed(self, e: StoredEvent) -> None:
        d = e.data
        self.series.update(status="registered", valid_until=d["valid_until_after"])
        self._product(e, reason=f"resumed on {d['on']} ({d['outcome']}); validity extended by {d['suspended_days']} "
                                f"days to {d['valid_until_after']}: {d['reason']}")

    def _warrant_adjusted(self, e: StoredEvent) -> None:
        d = e.data
        self.series["entitlement_per_unit"] = d["entitlement_after"]
        self._product(e, reason=f"{d['kind']} effective {d['effective_date']}: entitlement per unit "
                                f"{d['entitlement_before']} → {d['entitlement_after']}, price per share "
                                f"{d['price_per_share_before']} → {d['price_per_share_after']}: {d['reason']}")

    # -- subject (主体) ------------------------------------------------------------------------

    def _enterprise_registered(self, e: StoredEvent) -> None:
        d = e.data
        self._emit("subject", d["uscc"], e, {"subject": {
            "subject_object_information": {"subject_object_id": d["uscc"], "subject_type": "enterprise"},
            "basic_information_subject": {"general_information_subject": {
                "subject_id": d["uscc"], "subject_type": "enterprise", "subject_create_time": _time(e.recorded_at),
                "subject_main_administrative_region": d["uscc"][2:8]}},
            "organization_subject_information": {"basic_information_of_enterprise": {
                "basic_information_description": {
                    "subject_company_name": d["name"],
                    "subject_document_information": [{"type": "unified_social_credit_code", "code": d["uscc"]}],
                    "subject_company_type": d["legal_form"],
                    "subject_registered_capital": _yuan(d["registered_capital_fen"]),
                    "subject_registered_capital_currency": CURRENCY_NUMERIC,
                    "subject_industry": d["industry"],
                    "subject_specialised_level": d.get("specialised_level", "none"),
                }}},
        }})

    def _investor(self, e: StoredEvent) -> None:
        self._emit("subject", self.subject["investor_id"], e, {"subject": {
            "subject_object_information": {"subject_object_id": self.subject["investor_id"],
                                           "subject_type": "investor"},
            "basic_information_subject": {
                "general_information_subject": {
                    "subject_id": self.subject["investor_id"], "subject_type": "investor",
                    "subject_investor_type": self.subject["kind"], "subject_create_time": self.subject["created"]},
                "subject_qualification_information": [self.qualifications[k] for k in sorted(self.qualifications)],
            },
            "investor_subject_information": {
                "subject_investor_name": self.subject["name"],
                "subject_id_doc": [doc("身份证明文件", self.subject["identity_document_digest"])],
            },
        }})

    def _investor_registered(self, e: StoredEvent) -> None:
        self.subject = {**e.data, "created": _time(e.recorded_at)}
        self._investor(e)

    def _qualification_granted(self, e: StoredEvent) -> None:
        d = e.data
        self.qualifications[d["sequence"]] = {
            "subject_qualification_sequence": d["sequence"],
            "subject_qualification_category": d["category"],
            "subject_qualification_status": "valid",
            "subject_qualification_valid_from": d["valid_from"],
            "subject_qualification_valid_until": d.get("valid_until"),
            "subject_qualification_revoked_on": None,
            "subject_qualification_certifier": e.meta.actor,
            "subject_qualification_time": _time(e.recorded_at),
            "subject_qualification_doc": [doc("合格投资者证明材料", d["evidence_digest"])],
        }
        self._investor(e)

    def _qualification_revoked(self, e: StoredEvent) -> None:
        d = e.data
        entry = self.qualifications.get(d["sequence"])
        if entry is not None:  # a new entry: the earlier version's record keeps what it said then
            self.qualifications[d["sequence"]] = {**entry, "subject_qualification_status": "revoked",
                                                  "subject_qualification_revoked_on": d["revoked_on"]}
        self._investor(e)


def stream_records(events: list[StoredEvent], ctx: Context) -> list[dict[str, Any]]:
    """Every record one stream's events produce (series → registration and product; enterprise and investor →
    subject), in log order, each object's versions numbered from 1."""
    return _Fold(ctx).run(events)


def position_of(record: dict[str, Any]) -> int:
    return record["header"]["metadata"]["log_position"]


# -- loading --------------------------------------------------------------------------------


def _referenced(events: list[StoredEvent]) -> tuple[set[str], set[str]]:
    """Investors and enterprises (or issuing shareholders) a series stream's records refer to."""
    investors: set[str] = set()
    issuers: set[str] = set()
    for e in events:
        d = e.data
        with reading(e.position, e.type):
            if e.type == "warrant.series_registered":
                issuers |= {d["terms"]["target_uscc"],
                            d["terms"].get("issuing_shareholder_id") or d["terms"]["target_uscc"]}
            elif e.type == "warrant.units_issued":
                investors.add(d["investor_id"])
            elif e.type == "warrant.transferred":
                investors |= {d["from_investor"], d["to_investor"]}
    return investors, issuers


async def load_records(conn: asyncpg.Connection, *, after: int | None, limit: int, market_name: str,
                       lockup_trading_days: int, series: str | None = None,
                       kind: str | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """A page of records: those of the next `limit` log events after `after` that produce any (of `kind`, of
    `series`), in log order; and the position to continue after (None on the last page).

    Versions count from the object's first record, so each stream on the page is folded from its start.
    """
    types = list(EVENT_TYPES[kind]) if kind else sorted({t for ts in EVENT_TYPES.values() for t in ts})
    rows = await conn.fetch(
        "SELECT position, stream_id FROM event WHERE position > $1 AND event_type = ANY($2::text[]) "
        "AND ($3::text IS NULL OR stream_id = $3) ORDER BY position LIMIT $4",
        -1 if after is None else after, types, None if series is None else series_stream(series), limit)
    if not rows:
        return [], None
    last = rows[-1]["position"]
    wanted = {r["position"] for r in rows}
    streams = {s: await stream_events(conn, s, last) for s in sorted({r["stream_id"] for r in rows})}
    investors: set[str] = set()
    issuers: set[str] = set()
    for events in streams.values():
        found_investors, found_issuers = _referenced(events)
        investors |= found_investors
        issuers |= found_issuers
    subject_streams = [investor_stream(i) for i in sorted(investors)] + [enterprise_stream(u) for u in sorted(issuers)]
    positions: dict[str, list[int]] = {}
    for r in await conn.fetch(
            "SELECT stream_id, position FROM event WHERE stream_id = ANY($1::text[]) AND event_type = ANY($2::text[]) "
            "AND position <= $3 ORDER BY position", subject_streams, list(_SUBJECT_EVENTS), last):
        positions.setdefault(r["stream_id"].split("-", 1)[1], []).append(r["position"])
    names = {r["uscc"]: r["name"] for r in await conn.fetch(
        "SELECT uscc, name FROM enterprise WHERE uscc = ANY($1::text[])", sorted(issuers))}
    ctx = Context(market_name=market_name, lockup_trading_days=lockup_trading_days, subject_positions=positions,
                  names=names)
    records = [r for events in streams.values() for r in stream_records(events, ctx)
               if position_of(r) in wanted and (kind is None or r["header"]["content"]["type"] == kind)]
    records.sort(key=position_of)  # stable: a stream's records keep their order within one event
    return records, (last if len(rows) == limit else None)
