"""What a warrant transfer decides on, remembered by the writer so a transfer reads nothing.

The writer's memo (registry.eventlog.memo) holds, per series, the series' facts, every holding's
balance and holders, the active lots, the holding-interval dates, the holders ever; per account
its investor, kind, status and look-through holders; per investor its qualifications; and the
trading calendar. Each is loaded from the projection tables on first use and then kept in step by
the watchers below, which see every event the writer appends: a transfer updates the series in
place (exactly as its projection does), anything else that touches a series, an account, a
qualification or the calendar makes the writer forget that entry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg

from registry.calendar.service import load_calendar
from registry.calendar.domain import TradingCalendar
from registry.eventlog.memo import Memo, prefetches, watches
from registry.eventlog.projection import EventRecord
from registry.eventlog.writer import WriteContext
from registry.parties.domain import AccountNotFound
from registry.parties.qualification import QualificationCategory, QualificationStatus, is_qualified
from registry.warrants.domain import AccountFacts, Balance, HolderCapBasis, Lot, SeriesFacts, cost_after_leaving

SERIES = "warrant-series"
ACCOUNT = "account"
QUALIFICATIONS = "qualifications"
CALENDAR = ("calendar",)


class HotSeries:
    """One series as its transfers need it; `apply_transfer` mirrors the transfer projection (registry.warrants.projection)."""

    __slots__ = ("facts", "basis", "balances", "costs", "account_holders", "holder_accounts", "holders_ever",
                 "lots", "intervals")

    def __init__(self, facts: SeriesFacts, basis: HolderCapBasis) -> None:
        self.facts = facts
        self.basis = basis
        self.balances: dict[str, Balance] = {}
        self.costs: dict[str, int] = {}
        """Account → cost basis in fen (持仓成本), so a transfer can refuse one that would overflow it."""
        self.account_holders: dict[str, tuple[str, ...]] = {}
        self.holder_accounts: dict[str, int] = {}
        """Holder → accounts holding units that look through to it (the holders now are its keys)."""
        self.holders_ever: set[str] = set()
        self.lots: dict[str, dict[str, tuple[int, Lot]]] = {}
        """Account → active lot id → (position that created it, lot)."""
        self.intervals: dict[str, list[dt.date | None]] = {}
        """Investor → [last buy, last sell] in this series."""

    def holders_now(self) -> frozenset[str]:
        return frozenset(self.holder_accounts)

    def sender_lots(self, account_id: str) -> list[Lot]:
        """Active lots in the order the projection reads them: oldest position first, then lot id."""
        lots = self.lots.get(account_id, {})
        return [lot for _, _, lot in sorted((position, lot_id, lot) for lot_id, (position, lot) in lots.items())]

    def set_holding(self, account_id: str, balance: Balance, holders: tuple[str, ...]) -> None:
        if self.balances.get(account_id, Balance()).total > 0:
            for holder in self.account_holders.get(account_id, ()):
                left = self.holder_accounts[holder] - 1
                if left:
                    self.holder_accounts[holder] = left
                else:
                    del self.holder_accounts[holder]
        self.balances[account_id] = balance
        self.account_holders[account_id] = holders
        if balance.total > 0:
            for holder in holders:
                self.holder_accounts[holder] = self.holder_accounts.get(holder, 0) + 1

    def add_lot(self, lot: Lot, position: int) -> None:
        self.lots.setdefault(lot.account_id, {})[lot.lot_id] = (position, lot)

    def apply_transfer(self, d: dict[str, Any], position: int, day: dt.date | None) -> None:
        sender, receiver = d["from_account"], d["to_account"]
        self.costs[sender] = cost_after_leaving(self.costs.get(sender, 0), d["units"], sum(d["from_before"].values()))
        self.costs[receiver] = self.costs.get(receiver, 0) + d["consideration_fen"]
        self.set_holding(sender, _balance(d["from_after"]), self.account_holders.get(sender, ()))
        self.set_holding(receiver, _balance(d["to_after"]), tuple(d["receiver_holders"]))
        self.holders_ever.update(d["receiver_holders"])
        sender_lots = self.lots.get(sender, {})
        for lot in d["consumed_lots"]:
            sender_lots.pop(lot["lot_id"], None)
        for lot in d["produced_lots"]:
            self.add_lot(Lot(lot_id=lot["lot_id"], account_id=lot["account_id"], units=lot["units"],
                             parent=lot["parent"], origin=lot["origin"]), position)
        if d["from_investor"] != d["to_investor"]:
            self.intervals.setdefault(d["from_investor"], [None, None])[1] = day
            self.intervals.setdefault(d["to_investor"], [None, None])[0] = day


def _balance(d: dict[str, int]) -> Balance:
    return Balance(available=d["available"], pledged=d["pledged"], frozen=d["frozen"])


async def _load_series(conn: asyncpg.Connection, code: str) -> HotSeries:
    from registry.warrants.service import series_facts  # the one reading of a series' facts

    facts = await series_facts(conn, code)
    hot = HotSeries(facts, HolderCapBasis(
        await conn.fetchval("SELECT holder_cap_basis FROM warrant_series WHERE code = $1", code)))
    for r in await conn.fetch("SELECT account_id, available, pledged, frozen, holders, cost_fen FROM holding "
                              "WHERE series_code = $1", code):
        hot.set_holding(r["account_id"], Balance(available=r["available"], pledged=r["pledged"], frozen=r["frozen"]),
                        tuple(r["holders"]))
        hot.costs[r["account_id"]] = r["cost_fen"]
    for r in await conn.fetch("SELECT lot_id, account_id, units, parent, origin, created_position FROM warrant_lot "
                              "WHERE series_code = $1 AND active", code):
        hot.add_lot(Lot(lot_id=r["lot_id"], account_id=r["account_id"], units=r["units"], parent=r["parent"],
                        origin=r["origin"]), r["created_position"])
    for r in await conn.fetch("SELECT investor_id, last_buy, last_sell FROM trade_interval WHERE series_code = $1",
                              code):
        hot.intervals[r["investor_id"]] = [r["last_buy"], r["last_sell"]]
    hot.holders_ever = {r["holder_id"] for r in await conn.fetch(
        "SELECT holder_id FROM series_holder_ever WHERE series_code = $1", code)}
    return hot


async def series(ctx: WriteContext, code: str) -> HotSeries:
    """The series' hot state (raises SeriesNotFound like every other reading of a series)."""
    hot = ctx.memo.get((SERIES, code))
    if hot is None:
        await ctx.read_projections()
        hot = await _load_series(ctx.conn, code)
        ctx.memo.put((SERIES, code), hot)
    return hot


class _Account:
    __slots__ = ("account_id", "investor_id", "status", "holders")

    def __init__(self, account_id: str, investor_id: str, status: str, holders: frozenset[str]) -> None:
        self.account_id, self.investor_id, self.status, self.holders = account_id, investor_id, status, holders


_ACCOUNTS_SQL = (
    "SELECT a.account_id, a.investor_id, a.kind, a.status, coalesce(array_agg(b.investor_id) "
    "FILTER (WHERE b.investor_id IS NOT NULL), '{}') AS owners FROM account a "
    "LEFT JOIN account_beneficial_owner b USING (account_id) WHERE a.account_id = k.id GROUP BY a.account_id")


def _remember_account(memo: Memo, row: Any) -> None:
    holders = frozenset(row["owners"]) if row["kind"] == "nominee" else frozenset([row["investor_id"]])
    known = _Account(row["account_id"], row["investor_id"], row["status"], holders)
    memo.put((ACCOUNT, row["account_id"]), known)


@prefetches
async def _prefetch_accounts(conn: asyncpg.Connection, memo: Memo, handlers: Any) -> None:
    """The accounts a batch's transfers name, and their holders' qualifications: two queries in all."""
    await _load_accounts(conn, memo, {a for h in handlers for a in getattr(h, "accounts", ())})


async def accounts(ctx: WriteContext, account_ids: list[str], as_of: dt.date) -> dict[str, AccountFacts]:
    """Many accounts' facts on `as_of` (a series' initial allocation): what the memo lacks in two queries."""
    await ctx.read_projections()
    await _load_accounts(ctx.conn, ctx.memo, set(account_ids))
    return {a: await account(ctx, a, as_of) for a in account_ids}


async def account(ctx: WriteContext, account_id: str, as_of: dt.date) -> AccountFacts:
    """An account's facts on `as_of`, qualification of every look-through holder included."""
    known: _Account | None = ctx.memo.get((ACCOUNT, account_id))
    if known is None or any(ctx.memo.get((QUALIFICATIONS, i)) is None for i in known.holders | {known.investor_id}):
        await ctx.read_projections()
        await _load_accounts(ctx.conn, ctx.memo, {account_id})
    return _facts(ctx.memo, account_id, as_of)


async def account_facts(conn: asyncpg.Connection, account_ids: Iterable[str], as_of: dt.date) -> dict[str, AccountFacts]:
    """Accounts' facts on `as_of` read outside the writer (the pages): the same two queries and rules,
    through a memory of their own."""
    memo = Memo()
    wanted = list(dict.fromkeys(account_ids))
    await _load_accounts(conn, memo, set(wanted))
    return {a: _facts(memo, a, as_of) for a in wanted}


def _facts(memo: Memo, account_id: str, as_of: dt.date) -> AccountFacts:
    known: _Account | None = memo.get((ACCOUNT, account_id))
    if known is None:
        raise AccountNotFound(f"no account {account_id}", account_id=account_id)
    qualified = all(is_qualified(memo.get((QUALIFICATIONS, i)), as_of) for i in sorted(known.holders | {known.investor_id}))
    return AccountFacts(account_id=account_id, investor_id=known.investor_id, status=known.status,
                        holders=known.holders, qualified=qualified)


async def _load_accounts(conn: asyncpg.Connection, memo: Memo, account_ids: set[str]) -> None:
    """Remember the accounts (and their look-through holders' qualifications) the memo lacks."""
    wanted = sorted(a for a in account_ids if memo.get((ACCOUNT, a)) is None)
    if wanted:
        # LATERAL ... OFFSET 0: a primary-key lookup per account whatever plan the statement cache holds
        for r in await conn.fetch(
                "SELECT x.* FROM unnest($1::text[]) AS k(id) CROSS JOIN LATERAL (" + _ACCOUNTS_SQL
                + " OFFSET 0) AS x", wanted):
            _remember_account(memo, r)
    known = [memo.get((ACCOUNT, a)) for a in account_ids]
    investors = sorted({i for k in known if k is not None for i in k.holders | {k.investor_id}
                        if memo.get((QUALIFICATIONS, i)) is None})
    if not investors:
        return
    statuses: dict[str, list[QualificationStatus]] = {i: [] for i in investors}
    for q in await conn.fetch(
            "SELECT q.* FROM unnest($1::text[]) AS k(id) CROSS JOIN LATERAL (SELECT investor_id, sequence, category, "
            "evidence_digest, valid_from, valid_until, revoked_on FROM qualification WHERE investor_id = k.id "
            "OFFSET 0) AS q ORDER BY q.investor_id, q.sequence", investors):
        statuses[q["investor_id"]].append(QualificationStatus(
            investor_id=q["investor_id"], category=QualificationCategory(q["category"]),
            evidence_digest=q["evidence_digest"], valid_from=q["valid_from"], valid_until=q["valid_until"],
            revoked_on=q["revoked_on"]))
    for investor, found in statuses.items():
        memo.put((QUALIFICATIONS, investor), found)


async def calendar(ctx: WriteContext) -> TradingCalendar:
    known = ctx.memo.get(CALENDAR)
    if known is None:
        await ctx.read_projections()
        known = await load_calendar(ctx.conn)
        ctx.memo.put(CALENDAR, known)
    return known


# -- keeping it right: every appended event passes here ------------------------------------


@watches("")
def _series_events(memo: Memo, event: EventRecord) -> None:
    if not event.stream.startswith("series-"):
        return
    key = (SERIES, event.stream.removeprefix("series-"))
    if event.type == "warrant.transferred":
        hot: HotSeries | None = memo.get(key)
        if hot is not None:
            hot.apply_transfer(event.data, event.position, event.effective_date)
    else:
        memo.forget(key)


@watches("account.", "investor.")
def _account_events(memo: Memo, event: EventRecord) -> None:
    account_id = event.data.get("account_id")
    if account_id is None:
        memo.forget_all(ACCOUNT)
    else:
        memo.forget((ACCOUNT, account_id))


@watches("qualification.")
def _qualification_events(memo: Memo, event: EventRecord) -> None:
    investor_id = event.data.get("investor_id")
    if investor_id is None:
        memo.forget_all(QUALIFICATIONS)
    else:
        memo.forget((QUALIFICATIONS, investor_id))


@watches("calendar.")
def _calendar_events(memo: Memo, event: EventRecord) -> None:
    memo.forget(CALENDAR)
