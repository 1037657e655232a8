"""The 认股权 (stock warrant) registry, the pure rules: terms, issuance, transfer, freeze and pledge,
exercise, suspension, adjustment, cancellation and expiry.

Each `decide_*` takes the facts it needs (gathered by the service from the projections) and
returns events or raises a domain error naming the rule. `evolve` folds a series' events into
its full state, for as-of-date questions and for checking the projections against the log.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal
from enum import StrEnum
from typing import Annotated, Any

import msgspec

from registry.errors import Conflict, NotFound, RuleViolation
from registry.eventlog.model import NewEvent
from registry.fields import (MAX_FEN, MAX_UNITS, Count, Digest, Factor, Fen, Identifier, Name, Price, Ratio, Reason,
                             Reference, ShareAmount, Uri, Units, within)

ENTITLEMENT_SCALE = Decimal("0.00000001")   # shares (or yuan of capital) per unit: 8 dp
PRICE_SCALE = Decimal("0.000001")           # yuan per share: 6 dp
AMOUNT_SCALE = Decimal("0.0001")            # shares or yuan of capital on the register: 4 dp
LEGAL_HOLDER_CAP = 200
MAX_FIGURE = Decimal("1e12")                # no price, ratio, entitlement or share amount reaches 10^12
MIN_FIGURE = Decimal("1e-12")               # nor is a non-zero one finer than 10^-12
_WIDE = Context(prec=80)                    # rounding to a stated scale never runs out of digits


# -- vocabulary -----------------------------------------------------------------------------


class Underlying(StrEnum):
    shares = "shares"                          # 股份 of a 股份有限公司
    registered_capital = "registered_capital"  # 注册资本 (出资额) of a 有限责任公司


class ExerciseMethod(StrEnum):
    capital_increase = "capital_increase"  # 增资: the target issues new shares / capital
    share_transfer = "share_transfer"      # 受让老股: the issuing shareholder sells existing equity


class TransferMode(StrEnum):
    one_sided_bidding = "one_sided_bidding"     # 单向竞价
    disclosed_agreement = "disclosed_agreement"  # 协议转让 (with disclosure)
    private_agreement = "private_agreement"     # 非公开协议转让


class AntiDilution(StrEnum):
    none = "none"
    full_ratchet = "full_ratchet"
    broad_based_weighted_average = "broad_based_weighted_average"


class SeriesStatus(StrEnum):
    registered = "registered"
    suspended = "suspended"      # validity paused while the target's IPO application is pending
    exercised = "exercised"      # every unit exercised
    expired = "expired"
    cancelled = "cancelled"      # 注销登记
    terminated = "terminated"    # the target's IPO was approved


LIVE = (SeriesStatus.registered, SeriesStatus.suspended)


class AdjustmentKind(StrEnum):
    bonus_issue = "bonus_issue"                                # 送股
    capital_reserve_conversion = "capital_reserve_conversion"  # 资本公积转增
    split = "split"                                            # 拆股
    down_round = "down_round"                                  # 低价增资 under the anti-dilution clause


class HolderCapBasis(StrEnum):
    """How the 200-holder cap counts: holders now, or every holder the series has ever had (累计)."""

    current = "current"
    cumulative = "cumulative"


# -- errors ---------------------------------------------------------------------------------


class TermsInvalid(RuleViolation):
    code = "warrant.terms_invalid"
    title = "The series' terms are not valid"


class ConsiderationMismatch(RuleViolation):
    """转让对价: the consideration is units × the agreed price per unit, rounded half-up to the fen."""

    code = "warrant.consideration_mismatch"
    title = "The consideration is not the units times the price per unit"


class SeriesNotFound(NotFound):
    code = "warrant.series_not_found"
    title = "No such warrant series"


class SeriesNotLive(RuleViolation):
    """Only a registered series (not expired, cancelled, terminated or fully exercised) changes."""

    code = "warrant.series_not_live"
    title = "The series is no longer live"


class SeriesSuspended(RuleViolation):
    code = "warrant.series_suspended"
    title = "The series is suspended while the target's IPO application is pending"


class IpoDateInvalid(RuleViolation):
    code = "warrant.ipo_date_invalid"
    title = "The IPO filing or outcome date is not possible"


class OutsideValidity(RuleViolation):
    code = "warrant.outside_validity_window"
    title = "The date is outside the series' validity window"


class TransferModeNotAllowed(RuleViolation):
    code = "warrant.transfer_mode_not_allowed"
    title = "The series does not allow this transfer mode"


class NotQualified(RuleViolation):
    """Only qualified investors (合格投资者) with a valid status may receive warrants."""

    code = "warrant.investor_not_qualified"
    title = "The receiving investor is not a qualified investor on this date"


class HolderLimitExceeded(RuleViolation):
    """At most the series' maximum number of holders (≤ 200), looking through nominee accounts (穿透)."""

    code = "warrant.holder_limit_exceeded"
    title = "The series would exceed its maximum number of holders"


class HoldingIntervalNotElapsed(RuleViolation):
    """The same investor may not sell within 5 trading days of buying, nor buy within 5 of selling."""

    code = "warrant.holding_interval"
    title = "The 5-trading-day interval between opposite trades has not elapsed"


class InsufficientAvailable(RuleViolation):
    """Only the available balance moves; pledged and frozen units neither transfer nor exercise."""

    code = "warrant.insufficient_available_units"
    title = "Not enough available units"


class InsufficientUnits(RuleViolation):
    code = "warrant.insufficient_units"
    title = "Not enough units in that balance"


class AccountFrozen(RuleViolation):
    code = "warrant.account_frozen"
    title = "A frozen account can neither send nor receive"


class AccountNotUsable(RuleViolation):
    code = "warrant.account_not_open"
    title = "The account is not open"


class SameAccount(RuleViolation):
    code = "warrant.same_account"
    title = "A transfer needs two different accounts"


class ExerciseNotFound(NotFound):
    code = "warrant.exercise_not_found"
    title = "No such exercise"


class ExerciseAlreadyConfirmed(Conflict):
    code = "warrant.exercise_already_confirmed"
    title = "This exercise was already confirmed"


class SellerLacksShares(RuleViolation):
    code = "warrant.issuing_shareholder_lacks_shares"
    title = "The issuing shareholder does not hold enough shares for this exercise"


class AdjustmentInvalid(RuleViolation):
    code = "warrant.adjustment_invalid"
    title = "The adjustment's inputs are not valid"


class FrozenUnitsPresent(RuleViolation):
    code = "warrant.frozen_units_present"
    title = "The series has frozen units"


class NothingToDo(RuleViolation):
    code = "warrant.no_change"
    title = "The command would change nothing"


# -- commands and terms ---------------------------------------------------------------------


def check_figures(struct: msgspec.Struct) -> None:
    """A request's decimals are finite and within 10^-12..10^12 in magnitude (or zero): anything else is a
    malformed request, refused while it is decoded (msgspec turns the ValueError into a 400)."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if isinstance(value, Decimal) and not (value.is_finite() and (value == 0
                                                                      or MIN_FIGURE <= abs(value) < MAX_FIGURE)):
            raise ValueError(f"{name} must be a finite decimal, zero or between 1e-12 and 1e12 in magnitude")


class Document(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    name: Name
    sha256: Digest
    uri: Uri | None = None


class Allocation(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    account_id: Identifier
    units: Units
    subscription_price_per_unit: Price = Decimal("0")
    """What the holder paid per unit at issuance (often 0 for warrants granted with a loan)."""

    def __post_init__(self) -> None:
        check_figures(self)


class SeriesTerms(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The issuance plan (非公开发行认股权方案)."""

    target_uscc: Identifier
    name: Name
    issuer_kind: Identifier = "target"
    """`target` (the company itself; exercise is 增资) or `shareholder` (exercise buys its equity)."""
    issuing_shareholder_id: Identifier | None = None
    underlying: Underlying
    entitlement_per_unit: Ratio
    """Shares (or yuan of registered capital) one unit entitles to."""
    exercise_price_per_unit: Price
    """Yuan payable per unit exercised."""
    valid_from: dt.date
    valid_until: dt.date
    exercise_method: ExerciseMethod
    transfer_modes: Annotated[list[TransferMode], msgspec.Meta(max_length=len(TransferMode))]
    max_holders: Count = LEGAL_HOLDER_CAP
    anti_dilution: AntiDilution = AntiDilution.none
    documents: Annotated[list[Document], msgspec.Meta(max_length=100)] = []
    allocations: Annotated[list[Allocation], msgspec.Meta(max_length=10 * LEGAL_HOLDER_CAP)]

    def __post_init__(self) -> None:
        check_figures(self)


class Transfer(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """转让 of `units` to one named counterparty. `consideration_fen` (转让对价) is the total the transferee
    pays, in fen; `price_per_unit` is the agreed price per unit in yuan, and the two must agree: units ×
    price, rounded half-up to the fen, is the consideration (a gift states a price and consideration of 0)."""

    from_account: Identifier
    to_account: Identifier
    units: Units
    mode: TransferMode
    price_per_unit: Price
    consideration_fen: Fen
    agreement_digest: Digest | None = None

    def __post_init__(self) -> None:
        check_figures(self)


class BalanceChange(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    units: Units
    document_ref: Reference
    reason: Reason


class Exercise(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    account_id: Identifier
    units: Units


class Adjustment(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A dated change of entitlement and price, with the formula's inputs.

    bonus_issue / capital_reserve_conversion: `ratio` new shares per existing share (10送3 → 0.3);
    split: `ratio` shares after per share before (1拆2 → 2);
    down_round: `new_issue_price` per share, and for the weighted average `shares_outstanding_before`,
    `new_shares_issued`.
    """

    kind: AdjustmentKind
    effective_date: dt.date
    reason: Reason
    ratio: Factor | None = None
    new_issue_price: Price | None = None
    shares_outstanding_before: ShareAmount | None = None
    new_shares_issued: ShareAmount | None = None

    def __post_init__(self) -> None:
        check_figures(self)


# -- state ----------------------------------------------------------------------------------


class Balance(msgspec.Struct, kw_only=True, frozen=True):
    available: int = 0
    pledged: int = 0
    frozen: int = 0

    @property
    def total(self) -> int:
        return self.available + self.pledged + self.frozen


class Lot(msgspec.Struct, kw_only=True, frozen=True):
    """Units with lineage: where they came from (issuance, or a parent lot split by a transfer)."""

    lot_id: str
    account_id: str
    units: int
    parent: str | None
    origin: str


class SeriesFacts(msgspec.Struct, kw_only=True, frozen=True):
    """What the rules need to know about a series right now."""

    code: str
    target_uscc: str
    status: SeriesStatus
    terms: SeriesTerms
    entitlement_per_unit: Decimal
    valid_until: dt.date
    """Expiry, pushed back by any suspension."""
    suspended_since: dt.date | None
    units_issued: int
    units_outstanding: int
    units_exercised: int
    units_cancelled: int
    units_expired: int
    frozen_units: int = 0


class AccountFacts(msgspec.Struct, kw_only=True, frozen=True):
    account_id: str
    investor_id: str
    status: str
    holders: frozenset[str]
    """Look-through holders: the investor, or a nominee account's beneficial owners."""
    qualified: bool
    """Every look-through holder (and the account's investor) is qualified on the date."""


class IntervalFacts(msgspec.Struct, kw_only=True, frozen=True):
    """For one investor and series: last buy and sell dates, and the trading days since each."""

    last_buy: dt.date | None = None
    last_sell: dt.date | None = None
    trading_days_since_buy: int | None = None
    trading_days_since_sell: int | None = None


# -- helpers --------------------------------------------------------------------------------


def _q(value: Decimal, scale: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    return value.quantize(scale, rounding=rounding, context=_WIDE)


def price_per_share(price_per_unit: Decimal, entitlement: Decimal) -> Decimal:
    return _q(price_per_unit / entitlement, PRICE_SCALE)


def payment_due_fen(units: int, price_per_unit: Decimal) -> int:
    """Units × price per unit, in fen, rounded half up (四舍五入到分)."""
    return int(_q(Decimal(units) * price_per_unit * 100, Decimal("1"), ROUND_HALF_UP))


def cost_after_leaving(cost_fen: int, units_leaving: int, units_before: int) -> int:
    """持仓成本 once units leave a holding (sold or exercised): they take their share of its cost, rounded
    down, and the units that stay keep the rest."""
    return cost_fen - cost_fen * units_leaving // units_before if units_before > 0 else cost_fen


def _event(type_: str, data: dict[str, Any], effective_date: dt.date | None = None) -> NewEvent:
    return NewEvent(type=type_, data=msgspec.to_builtins(data, order="sorted"), effective_date=effective_date)


def _bal(b: Balance) -> dict[str, int]:
    return {"available": b.available, "pledged": b.pledged, "frozen": b.frozen}


def _is_digest(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# -- decisions ------------------------------------------------------------------------------


def check_terms(terms: SeriesTerms, *, legal_form: str, today: dt.date) -> None:
    """Every problem with an issuance plan, reported together."""
    problems: list[str] = []
    if terms.issuer_kind not in ("target", "shareholder"):
        problems.append("issuer_kind must be `target` or `shareholder`")
    if terms.issuer_kind == "shareholder" and not terms.issuing_shareholder_id:
        problems.append("a shareholder-issued series names the issuing shareholder")
    if terms.issuer_kind == "target" and terms.exercise_method is not ExerciseMethod.capital_increase:
        problems.append("a series issued by the target company is exercised by capital increase (增资)")
    if terms.issuer_kind == "shareholder" and terms.exercise_method is not ExerciseMethod.share_transfer:
        problems.append("a series issued by a shareholder is exercised by buying its equity (受让老股)")
    expected = Underlying.shares if legal_form == "joint_stock" else Underlying.registered_capital
    if terms.underlying is not expected:
        problems.append(f"a {legal_form} target's underlying is {expected}")
    if terms.entitlement_per_unit <= 0:
        problems.append("entitlement_per_unit must be positive")
    if terms.exercise_price_per_unit <= 0:
        problems.append("exercise_price_per_unit must be positive")
    if terms.valid_until < terms.valid_from:
        problems.append("valid_until is before valid_from")
    if terms.valid_until < today:
        problems.append("the validity window has already closed")
    if not terms.transfer_modes:
        problems.append("at least one transfer mode is allowed")
    if not 1 <= terms.max_holders <= LEGAL_HOLDER_CAP:
        problems.append(f"max_holders must be between 1 and {LEGAL_HOLDER_CAP}")
    if not terms.allocations:
        problems.append("the initial allocation names at least one holder")
    if any(a.units <= 0 for a in terms.allocations):
        problems.append("every allocation is a positive number of units")
    if any(a.subscription_price_per_unit < 0 for a in terms.allocations):
        problems.append("subscription prices are not negative")
    units = sum(a.units for a in terms.allocations)  # at most MAX_UNITS: check_terms refused more
    if units * terms.exercise_price_per_unit * 100 > MAX_FEN or any(
            a.units * a.subscription_price_per_unit * 100 > MAX_FEN for a in terms.allocations):
        problems.append(f"the payments for the units exceed what the register records ({MAX_FEN} fen)")
    if len({a.account_id for a in terms.allocations}) != len(terms.allocations):
        problems.append("each account appears once in the allocation")
    bad_docs = [d.name for d in terms.documents if not _is_digest(d.sha256)]
    if bad_docs:
        problems.append(f"documents need SHA-256 digests: {', '.join(bad_docs)}")
    if not terms.name.strip():
        problems.append("name is empty")
    if problems:
        raise TermsInvalid("; ".join(problems), problems=problems)


def holders_after(current: frozenset[str], leaving: frozenset[str], arriving: frozenset[str]) -> frozenset[str]:
    return (current - leaving) | arriving


def check_holder_cap(count_after: int, max_holders: int, basis: HolderCapBasis) -> None:
    if count_after > max_holders:
        raise HolderLimitExceeded(
            f"the series would have {count_after} holders (look-through, {basis}); its maximum is {max_holders}",
            holders_after=count_after, max_holders=max_holders, basis=str(basis),
        )


def decide_register(code: str, terms: SeriesTerms, accounts: dict[str, AccountFacts], *, approval_id: str,
                    today: dt.date, legal_form: str, basis: HolderCapBasis, position: int) -> list[NewEvent]:
    """初始登记: the series gets its code; each initial holder's units are registered as a first lot."""
    check_terms(terms, legal_form=legal_form, today=today)
    for allocation in terms.allocations:
        account = accounts.get(allocation.account_id)
        if account is None:
            raise TermsInvalid(f"allocation to unknown account {allocation.account_id}",
                               account_id=allocation.account_id)
        check_can_receive(account, today)
    holders = frozenset().union(*(accounts[a.account_id].holders for a in terms.allocations))
    check_holder_cap(len(holders), terms.max_holders, basis)
    units = sum(a.units for a in terms.allocations)
    if units > MAX_UNITS:
        problems.append(f"the allocations issue {units} units; a series issues at most {MAX_UNITS}")
    terms_data = msgspec.to_builtins(terms)
    events = [_event("warrant.series_registered", {
        "code": code, "approval_id": approval_id, "terms": terms_data, "units_issued": units,
        "holder_cap_basis": str(basis),
    }, today)]
    for i, allocation in enumerate(terms.allocations):
        account = accounts[allocation.account_id]
        events.append(_event("warrant.units_issued", {
            "code": code, "account_id": account.account_id, "investor_id": account.investor_id,
            "units": allocation.units, "lot_id": f"{code}-L{position}-{i}",
            "subscription_price_per_unit": str(allocation.subscription_price_per_unit),
            "cost_fen": payment_due_fen(allocation.units, allocation.subscription_price_per_unit),
            "holders": sorted(account.holders),
            "before": _bal(Balance()), "after": _bal(Balance(available=allocation.units)),
        }, today))
    return events


def check_live(series: SeriesFacts, *, allow_suspended: bool = False) -> None:
    if series.status not in LIVE:
        raise SeriesNotLive(f"series {series.code} is {series.status}", series_status=str(series.status))
    if series.status is SeriesStatus.suspended and not allow_suspended:
        raise SeriesSuspended(f"series {series.code} is suspended since {series.suspended_since}",
                              suspended_since=str(series.suspended_since))


def check_window(series: SeriesFacts, today: dt.date) -> None:
    if not series.terms.valid_from <= today <= series.valid_until:
        raise OutsideValidity(
            f"{today} is outside {series.terms.valid_from}..{series.valid_until}",
            date=today.isoformat(), valid_from=series.terms.valid_from.isoformat(),
            valid_until=series.valid_until.isoformat(),
        )


def check_can_send(account: AccountFacts) -> None:
    if account.status == "frozen":
        raise AccountFrozen(f"account {account.account_id} is frozen", account_id=account.account_id)
    if account.status != "open":
        raise AccountNotUsable(f"account {account.account_id} is {account.status}", account_id=account.account_id)


def check_can_receive(account: AccountFacts, today: dt.date) -> None:
    check_can_send(account)
    if not account.qualified:
        raise NotQualified(f"account {account.account_id}'s holders are not all qualified investors on {today}",
                           account_id=account.account_id, investor_id=account.investor_id, date=today.isoformat())


def check_interval(interval: IntervalFacts, side: str, *, minimum: int, t_plus_allowed: bool) -> None:
    """间隔不少于5个交易日: `side` is this investor's side (`sell` or `buy`) of the new transfer.

    With `t_plus_allowed` the opposite trade may happen on the 5th trading day after (T+5);
    otherwise only from the 6th.
    """
    since = interval.trading_days_since_buy if side == "sell" else interval.trading_days_since_sell
    last = interval.last_buy if side == "sell" else interval.last_sell
    if since is None or last is None:
        return
    needed = minimum if t_plus_allowed else minimum + 1
    if since < needed:
        raise HoldingIntervalNotElapsed(
            f"this investor {'bought' if side == 'sell' else 'sold'} on {last}; only {since} trading day(s) "
            f"have passed, {needed} are required",
            side=side, last_opposite_trade=last.isoformat(), trading_days_elapsed=since, trading_days_required=needed,
        )


def consume_lots(lots: list[Lot], units: int, *, prefix: str, to_account: str | None,
                 origin: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Take `units` from lots first-in first-out: consumed lots, and the resulting and remaining lots."""
    consumed, produced = [], []
    left = units
    for i, lot in enumerate(lots):
        if left == 0:
            break
        take = min(left, lot.units)
        left -= take
        consumed.append({"lot_id": lot.lot_id, "units": lot.units})
        if to_account is not None:
            produced.append({"lot_id": f"{prefix}-{i}r", "account_id": to_account, "units": take,
                             "parent": lot.lot_id, "origin": origin})
        if take < lot.units:
            produced.append({"lot_id": f"{prefix}-{i}b", "account_id": lot.account_id, "units": lot.units - take,
                             "parent": lot.lot_id, "origin": "balance"})
    if left:
        raise InsufficientUnits(f"lots hold {units - left} units, {units} needed", units=units)
    return consumed, produced


def decide_transfer(series: SeriesFacts, cmd: Transfer, *, transfer_id: str, sender: AccountFacts,
                    receiver: AccountFacts, sender_balance: Balance, receiver_balance: Balance,
                    sender_interval: IntervalFacts, receiver_interval: IntervalFacts, holders_now: frozenset[str],
                    holders_ever: frozenset[str], sender_lots: list[Lot], today: dt.date, basis: HolderCapBasis,
                    interval_days: int, t_plus_allowed: bool, receiver_cost_fen: int) -> list[NewEvent]:
    """转让: bilateral, one named counterparty, in an allowed mode, between qualified investors.

    The consideration (转让对价) is what the transferee pays in all: units × price per unit, rounded half-up
    to the fen (a gift states 0 for both). It joins the receiver's cost basis, which must stay within what
    the register holds."""
    check_live(series)
    check_window(series, today)
    if cmd.units <= 0:
        raise InsufficientUnits("a transfer moves a positive number of units", units=cmd.units)
    if cmd.from_account == cmd.to_account:
        raise SameAccount("sender and receiver are the same account", account_id=cmd.from_account)
    if cmd.mode not in series.terms.transfer_modes:
        raise TransferModeNotAllowed(f"{cmd.mode} is not allowed for series {series.code}", mode=str(cmd.mode),
                                     allowed_modes=[str(m) for m in series.terms.transfer_modes])
    if cmd.price_per_unit < 0 or cmd.consideration_fen < 0:
        raise TermsInvalid("price and consideration are not negative", price_per_unit=str(cmd.price_per_unit),
                           consideration_fen=cmd.consideration_fen)
    due = payment_due_fen(cmd.units, cmd.price_per_unit)
    if due != cmd.consideration_fen:
        raise ConsiderationMismatch(
            f"{cmd.units} units at {cmd.price_per_unit} yuan per unit come to {due} fen, not {cmd.consideration_fen}",
            units=cmd.units, price_per_unit=str(cmd.price_per_unit), consideration_fen=cmd.consideration_fen,
            units_times_price_fen=due)
    within("the receiver's cost basis (cost_fen)", receiver_cost_fen + cmd.consideration_fen,
           account_id=cmd.to_account, cost_fen=receiver_cost_fen, consideration_fen=cmd.consideration_fen)
    if cmd.agreement_digest is not None and not _is_digest(cmd.agreement_digest):
        raise TermsInvalid("agreement_digest must be a SHA-256 digest", field="agreement_digest")
    check_can_send(sender)
    check_can_receive(receiver, today)
    if sender_balance.available < cmd.units:
        raise InsufficientAvailable(
            f"account {sender.account_id} has {sender_balance.available} available units, {cmd.units} requested",
            available=sender_balance.available, pledged=sender_balance.pledged, frozen=sender_balance.frozen,
            requested=cmd.units)
    if sender.investor_id != receiver.investor_id:
        check_interval(sender_interval, "sell", minimum=interval_days, t_plus_allowed=t_plus_allowed)
        check_interval(receiver_interval, "buy", minimum=interval_days, t_plus_allowed=t_plus_allowed)
    leaving = sender.holders if sender_balance.total == cmd.units else frozenset()
    if basis is HolderCapBasis.current:
        count_after = len(holders_after(holders_now, leaving, receiver.holders))
    else:
        count_after = len(holders_ever | receiver.holders)
    check_holder_cap(count_after, series.terms.max_holders, basis)
    consumed, produced = consume_lots(sender_lots, cmd.units, prefix=f"{series.code}-{transfer_id}",
                                      to_account=receiver.account_id, origin="transfer")
    s_after = msgspec.structs.replace(sender_balance, available=sender_balance.available - cmd.units)
    r_after = msgspec.structs.replace(receiver_balance, available=receiver_balance.available + cmd.units)
    return [_event("warrant.transferred", {
        "code": series.code, "transfer_id": transfer_id, "from_account": sender.account_id,
        "from_investor": sender.investor_id, "to_account": receiver.account_id, "to_investor": receiver.investor_id,
        "units": cmd.units, "mode": str(cmd.mode), "price_per_unit": str(cmd.price_per_unit),
        "consideration_fen": cmd.consideration_fen, "agreement_digest": cmd.agreement_digest,
        "from_before": _bal(sender_balance), "from_after": _bal(s_after),
        "to_before": _bal(receiver_balance), "to_after": _bal(r_after),
        "consumed_lots": consumed, "produced_lots": produced, "receiver_holders": sorted(receiver.holders),
        "holders_after": count_after,
    }, today)]


_MOVES = {
    # kind: (from balance, to balance, event type)
    "freeze": ("available", "frozen", "warrant.units_frozen"),
    "thaw": ("frozen", "available", "warrant.units_thawed"),
    "pledge": ("available", "pledged", "warrant.units_pledged"),
    "release": ("pledged", "available", "warrant.units_released"),
}


def decide_balance_move(series: SeriesFacts, kind: str, account_id: str, balance: Balance, cmd: BalanceChange,
                        today: dt.date) -> list[NewEvent]:
    """冻结/解冻, 质押/解除质押 of units on a holding, with the document each rests on."""
    check_live(series, allow_suspended=True)
    source, target, event_type = _MOVES[kind]
    if cmd.units <= 0:
        raise InsufficientUnits("a positive number of units", units=cmd.units)
    if not cmd.document_ref.strip() or not cmd.reason.strip():
        raise TermsInvalid("a document reference and a reason are required", field="document_ref")
    have = getattr(balance, source)
    if have < cmd.units:
        raise InsufficientUnits(f"the holding has {have} {source} units, {cmd.units} requested",
                                balance=source, held=have, requested=cmd.units)
    after = msgspec.structs.replace(balance, **{source: have - cmd.units, target: getattr(balance, target) + cmd.units})
    return [_event(event_type, {
        "code": series.code, "account_id": account_id, "units": cmd.units, "document_ref": cmd.document_ref,
        "reason": cmd.reason, "before": _bal(balance), "after": _bal(after),
    }, today)]


def decide_exercise(series: SeriesFacts, cmd: Exercise, *, exercise_id: str, account: AccountFacts,
                    balance: Balance, lots: list[Lot], today: dt.date) -> list[NewEvent]:
    """行权: inside the window, not suspended, only available units; the payment due is recorded."""
    check_live(series)
    check_window(series, today)
    check_can_send(account)
    if cmd.units <= 0:
        raise InsufficientUnits("exercise a positive number of units", units=cmd.units)
    if balance.available < cmd.units:
        raise InsufficientAvailable(
            f"account {account.account_id} has {balance.available} available units, {cmd.units} requested",
            available=balance.available, pledged=balance.pledged, frozen=balance.frozen, requested=cmd.units)
    consumed, produced = consume_lots(lots, cmd.units, prefix=f"{series.code}-{exercise_id}", to_account=None,
                                      origin="exercise")
    after = msgspec.structs.replace(balance, available=balance.available - cmd.units)
    amount = _q(Decimal(cmd.units) * series.entitlement_per_unit, AMOUNT_SCALE, ROUND_DOWN)
    terms = series.terms
    due = within("the payment due on exercise (payment_due_fen)",
                 payment_due_fen(cmd.units, terms.exercise_price_per_unit), units=cmd.units,
                 exercise_price_per_unit=str(terms.exercise_price_per_unit))
    payee = ({"kind": "target", "id": series.target_uscc} if terms.issuer_kind == "target"
             else {"kind": "shareholder", "id": terms.issuing_shareholder_id})
    return [_event("warrant.exercised", {
        "code": series.code, "exercise_id": exercise_id, "account_id": account.account_id,
        "investor_id": account.investor_id, "units": cmd.units, "amount": str(amount),
        "underlying": str(terms.underlying), "method": str(terms.exercise_method),
        "entitlement_per_unit": str(series.entitlement_per_unit),
        "payment_due_fen": due, "payee": payee,
        "before": _bal(balance), "after": _bal(after), "consumed_lots": consumed, "produced_lots": produced,
        "fully_exercised": series.units_outstanding == cmd.units,
    }, today)]


def decide_confirm_exercise(series_code: str, exercise: dict[str, Any], *, confirmed: bool,
                            register: dict[str, Decimal], today: dt.date, confirmed_by: str) -> list[NewEvent]:
    """The issuer confirms the capital increase or share transfer; the share register (股东名册) changes."""
    if confirmed:
        raise ExerciseAlreadyConfirmed(f"exercise {exercise['exercise_id']} was already confirmed",
                                       exercise_id=exercise["exercise_id"])
    amount = Decimal(exercise["amount"])
    holder = exercise["investor_id"]
    changes = [{"holder_id": holder, "before": str(register.get(holder, Decimal(0))), "change": str(amount),
                "after": str(register.get(holder, Decimal(0)) + amount)}]
    if exercise["method"] == ExerciseMethod.share_transfer:
        seller = exercise["payee"]["id"]
        held = register.get(seller, Decimal(0))
        if held < amount:
            raise SellerLacksShares(f"{seller} holds {held}, the exercise needs {amount}",
                                    issuing_shareholder_id=seller, held=str(held), needed=str(amount))
        changes.append({"holder_id": seller, "before": str(held), "change": str(-amount), "after": str(held - amount)})
    return [_event("warrant.exercise_confirmed", {
        "code": series_code, "exercise_id": exercise["exercise_id"], "confirmed_by": confirmed_by,
        "method": exercise["method"], "register_changes": changes,
    }, today)]


def decide_suspend(series: SeriesFacts, *, filed_on: dt.date, reason: str, today: dt.date) -> list[NewEvent]:
    """The target filed for an IPO (not a NEEQ listing): validity pauses from the filing date, or from
    the start of the series' validity if the filing came first (no days before it are given back)."""
    if series.status is SeriesStatus.suspended:
        raise NothingToDo(f"series {series.code} is already suspended", suspended_since=str(series.suspended_since))
    check_live(series)
    if filed_on > today:
        raise IpoDateInvalid(f"the filing is dated {filed_on}, after today's business date {today}",
                             filed_on=filed_on.isoformat(), business_date=today.isoformat())
    if filed_on > series.valid_until:
        raise IpoDateInvalid(f"series {series.code}'s validity ended on {series.valid_until}, before the filing on "
                             f"{filed_on}: it expires rather than pauses", filed_on=filed_on.isoformat(),
                             valid_until=series.valid_until.isoformat())
    since = max(filed_on, series.terms.valid_from)
    return [_event("warrant.series_suspended", {"code": series.code, "since": since.isoformat(),
                                                "filed_on": filed_on.isoformat(), "reason": reason}, since)]


def decide_ipo_outcome(series: SeriesFacts, *, outcome: str, on: dt.date, reason: str,
                       today: dt.date) -> list[NewEvent]:
    """Approval ends the series; rejection, withdrawal or non-acceptance resume it, expiry pushed back."""
    if series.status is not SeriesStatus.suspended or series.suspended_since is None:
        raise NothingToDo(f"series {series.code} is not suspended", series_status=str(series.status))
    if on > today:
        raise IpoDateInvalid(f"the outcome is dated {on}, after today's business date {today}",
                             on=on.isoformat(), business_date=today.isoformat())
    if on < series.suspended_since:
        raise IpoDateInvalid("the outcome predates the suspension it ends", on=on.isoformat(),
                             suspended_since=series.suspended_since.isoformat())
    if outcome == "approved":
        return [_event("warrant.series_terminated", {
            "code": series.code, "on": on.isoformat(), "reason": reason,
            "units_cancelled": series.units_outstanding}, on)]
    days = (on - series.suspended_since).days
    if series.valid_until > dt.date.max - dt.timedelta(days=days):
        raise TermsInvalid("the expiry pushed back by the suspension would fall past the calendar's end",
                           on=on.isoformat(), valid_until=series.valid_until.isoformat())
    return [_event("warrant.series_resumed", {
        "code": series.code, "on": on.isoformat(), "outcome": outcome, "reason": reason, "suspended_days": days,
        "valid_until_before": series.valid_until.isoformat(),
        "valid_until_after": (series.valid_until + dt.timedelta(days=days)).isoformat()}, on)]


def decide_adjustment(series: SeriesFacts, cmd: Adjustment) -> list[NewEvent]:
    """除权调整 and anti-dilution: entitlement and price per share change together; the price per unit
    (what a holder pays per unit exercised) stays, so the aggregate exercise payment is unchanged."""
    check_live(series, allow_suspended=True)
    if not cmd.reason.strip():
        raise AdjustmentInvalid("an adjustment states its reason", field="reason")
    old_entitlement = series.entitlement_per_unit
    old_price = price_per_share(series.terms.exercise_price_per_unit, old_entitlement)
    inputs: dict[str, str] = {}
    if cmd.kind in (AdjustmentKind.bonus_issue, AdjustmentKind.capital_reserve_conversion):
        if cmd.ratio is None or cmd.ratio <= 0:
            raise AdjustmentInvalid("ratio (new shares per existing share) must be positive", field="ratio")
        factor = 1 + cmd.ratio
        inputs = {"ratio": str(cmd.ratio), "formula": "entitlement × (1 + ratio)"}
    elif cmd.kind is AdjustmentKind.split:
        if cmd.ratio is None or cmd.ratio <= 0 or cmd.ratio == 1:
            raise AdjustmentInvalid("ratio (shares after per share before) must be positive and not 1", field="ratio")
        factor = cmd.ratio
        inputs = {"ratio": str(cmd.ratio), "formula": "entitlement × ratio"}
    else:
        clause = series.terms.anti_dilution
        if clause is AntiDilution.none:
            raise AdjustmentInvalid("the series has no anti-dilution clause", anti_dilution=str(clause))
        if cmd.new_issue_price is None or cmd.new_issue_price <= 0:
            raise AdjustmentInvalid("new_issue_price must be positive", field="new_issue_price")
        if cmd.new_issue_price >= old_price:
            raise AdjustmentInvalid("not a down-round: the new price is not below the exercise price per share",
                                    new_issue_price=str(cmd.new_issue_price), price_per_share=str(old_price))
        if clause is AntiDilution.full_ratchet:
            new_price = cmd.new_issue_price
            inputs = {"new_issue_price": str(new_price), "formula": "CP2 = new issue price"}
        else:
            a, c = cmd.shares_outstanding_before, cmd.new_shares_issued
            if a is None or c is None or a <= 0 or c <= 0:
                raise AdjustmentInvalid("shares_outstanding_before and new_shares_issued must be positive",
                                        field="shares_outstanding_before")
            b = c * cmd.new_issue_price / old_price
            new_price = old_price * (a + b) / (a + c)
            inputs = {"new_issue_price": str(cmd.new_issue_price), "A": str(a), "B": str(_q(b, AMOUNT_SCALE)),
                      "C": str(c), "CP1": str(old_price), "formula": "CP2 = CP1 × (A + B) / (A + C)"}
        factor = old_price / new_price
    new_entitlement = _q(old_entitlement * factor, ENTITLEMENT_SCALE)
    if not 0 < new_entitlement < MAX_FIGURE:
        raise AdjustmentInvalid(f"the entitlement per unit would become {new_entitlement}",
                                entitlement_before=str(old_entitlement), entitlement_after=str(new_entitlement))
    return [_event("warrant.adjusted", {
        "code": series.code, "kind": str(cmd.kind), "reason": cmd.reason, "effective_date": cmd.effective_date.isoformat(),
        "inputs": inputs, "entitlement_before": str(old_entitlement), "entitlement_after": str(new_entitlement),
        "price_per_share_before": str(old_price),
        "price_per_share_after": str(price_per_share(series.terms.exercise_price_per_unit, new_entitlement)),
    }, cmd.effective_date)]


def decide_cancel(series: SeriesFacts, *, reason: str, today: dt.date) -> list[NewEvent]:
    """注销登记 of every outstanding unit; refused while units are frozen (a court's hold stands)."""
    check_live(series, allow_suspended=True)
    if series.frozen_units:
        raise FrozenUnitsPresent(f"{series.frozen_units} units of series {series.code} are frozen",
                                 frozen_units=series.frozen_units)
    if not reason.strip():
        raise TermsInvalid("a cancellation states its reason", field="reason")
    return [_event("warrant.series_cancelled", {"code": series.code, "reason": reason,
                                                "units_cancelled": series.units_outstanding}, today)]


def decide_expire(series: SeriesFacts, today: dt.date) -> list[NewEvent]:
    """Expiry happens by itself the day after the window (net of suspension) closes — once."""
    if series.status is not SeriesStatus.registered or today <= series.valid_until:
        return []
    return [_event("warrant.series_expired", {"code": series.code, "on": (series.valid_until + dt.timedelta(days=1))
                                              .isoformat(), "units_expired": series.units_outstanding},
                   series.valid_until + dt.timedelta(days=1))]


# -- evolve: the full state of a series from its events -------------------------------------


class SeriesState(msgspec.Struct, kw_only=True):
    """A series folded from its events: counters, balances, holders and lots at any position."""

    code: str = ""
    status: str = ""
    entitlement_per_unit: Decimal = Decimal(0)
    valid_until: dt.date | None = None
    units_issued: int = 0
    units_outstanding: int = 0
    units_exercised: int = 0
    units_cancelled: int = 0
    units_expired: int = 0
    balances: dict[str, Balance] = {}
    account_holders: dict[str, list[str]] = {}
    holders_ever: set[str] = set()
    lots: dict[str, Lot] = {}
    confirmed: set[str] = set()

    def holders_now(self) -> set[str]:
        return {h for account, b in self.balances.items() if b.total > 0 for h in self.account_holders[account]}


def _balance(d: dict[str, int]) -> Balance:
    return Balance(available=d["available"], pledged=d["pledged"], frozen=d["frozen"])


def evolve(state: SeriesState, event_type: str, d: dict[str, Any]) -> SeriesState:
    if event_type == "warrant.series_registered":
        state.code, state.status = d["code"], SeriesStatus.registered
        state.entitlement_per_unit = Decimal(d["terms"]["entitlement_per_unit"])
        state.valid_until = dt.date.fromisoformat(d["terms"]["valid_until"])
    elif event_type == "warrant.units_issued":
        state.units_issued += d["units"]
        state.units_outstanding += d["units"]
        state.balances[d["account_id"]] = _balance(d["after"])
        state.account_holders[d["account_id"]] = d["holders"]
        state.holders_ever |= set(d["holders"])
        state.lots[d["lot_id"]] = Lot(lot_id=d["lot_id"], account_id=d["account_id"], units=d["units"], parent=None,
                                      origin="issuance")
    elif event_type == "warrant.rights_confirmed":
        state.confirmed.add(d["account_id"])
    elif event_type == "warrant.transferred":
        state.balances[d["from_account"]] = _balance(d["from_after"])
        state.balances[d["to_account"]] = _balance(d["to_after"])
        state.account_holders[d["to_account"]] = d["receiver_holders"]
        state.holders_ever |= set(d["receiver_holders"])
        _apply_lots(state, d)
    elif event_type in ("warrant.units_frozen", "warrant.units_thawed", "warrant.units_pledged",
                        "warrant.units_released"):
        state.balances[d["account_id"]] = _balance(d["after"])
    elif event_type == "warrant.exercised":
        state.balances[d["account_id"]] = _balance(d["after"])
        state.units_outstanding -= d["units"]
        state.units_exercised += d["units"]
        _apply_lots(state, d)
        if state.units_outstanding == 0:
            state.status = SeriesStatus.exercised
    elif event_type == "warrant.series_suspended":
        state.status = SeriesStatus.suspended
    elif event_type == "warrant.series_resumed":
        state.status = SeriesStatus.registered
        state.valid_until = dt.date.fromisoformat(d["valid_until_after"])
    elif event_type == "warrant.adjusted":
        state.entitlement_per_unit = Decimal(d["entitlement_after"])
    elif event_type in ("warrant.series_cancelled", "warrant.series_terminated", "warrant.series_expired"):
        units = d["units_cancelled"] if "units_cancelled" in d else d["units_expired"]
        if event_type == "warrant.series_expired":
            state.units_expired += units
            state.status = SeriesStatus.expired
        else:
            state.units_cancelled += units
            state.status = SeriesStatus.cancelled if event_type.endswith("cancelled") else SeriesStatus.terminated
        state.units_outstanding = 0
        state.balances = {a: Balance() for a in state.balances}
        state.lots = {}
    return state


def _apply_lots(state: SeriesState, d: dict[str, Any]) -> None:
    for lot in d["consumed_lots"]:
        state.lots.pop(lot["lot_id"], None)
    for lot in d["produced_lots"]:
        state.lots[lot["lot_id"]] = Lot(lot_id=lot["lot_id"], account_id=lot["account_id"], units=lot["units"],
                                        parent=lot["parent"], origin=lot["origin"])


def check_invariants(state: SeriesState, max_holders: int, basis: HolderCapBasis) -> list[str]:
    """Every broken invariant of a series state (an empty list when all hold)."""
    broken = []
    if state.units_issued != state.units_outstanding + state.units_exercised + state.units_cancelled \
            + state.units_expired:
        broken.append("issued ≠ outstanding + exercised + cancelled + expired")
    if any(v < 0 for b in state.balances.values() for v in (b.available, b.pledged, b.frozen)):
        broken.append("a balance is negative")
    if sum(b.total for b in state.balances.values()) != state.units_outstanding:
        broken.append("balances do not add up to the outstanding units")
    if sum(lot.units for lot in state.lots.values()) != state.units_outstanding:
        broken.append("lots do not add up to the outstanding units")
    holders = len(state.holders_ever) if basis is HolderCapBasis.cumulative else len(state.holders_now())
    if holders > max_holders:
        broken.append("more holders than the maximum")
    return broken
