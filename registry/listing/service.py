"""Listing pipeline use cases: filed facts, stages and moves (four-eyes), rulebook versions, evaluations, overview.

Writes return handlers for the writer; reads query the projections. The rules themselves are in
`domain.py`: this module gathers what they need (facts, stage, rulebooks in force, frozen
positions), calls them, and appends what they decide.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Collection, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg
import msgspec

from registry.approvals import domain as approvals_domain
from registry.approvals.service import approvable, approve, request_approval
from registry.clock import business_date
from registry.errors import RegistryError
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.writer import Handler, Idempotency, WriteContext
from registry.fields import DocumentText, Identifier, Reason
from registry.listing import projection  # noqa: F401 - projection registers the projectors
from registry.listing.domain import (
    DEFAULT_BOARD_PREFIXES,
    FACTS,
    STAGE_NAMES,
    Evaluation,
    Fact,
    FactName,
    FactSheet,
    FileFact,
    Gap,
    Move,
    MoveNotAllowed,
    NoRulebookInForce,
    Rulebook,
    RulebookResult,
    Stage,
    allowed_moves,
    check_board_change,
    check_correction,
    check_move,
    check_override,
    check_publishable,
    check_stage_unchanged,
    evaluate,
    in_force,
    is_board_change,
    missing_for_next_step,
    next_security_code,
    period_key,
    require_reason,
)
from registry.listing.rulebooks import parse_rulebook, shipped_rulebooks
from registry.parties.service import enterprise_stream, get_enterprise
from registry.eventlog.store import position_at


def rulebook_stream(rulebook_id: str) -> str:
    return f"rulebook-{rulebook_id}"


# -- state ------------------------------------------------------------------------------------


class StageState(msgspec.Struct, kw_only=True, frozen=True):
    """Where an enterprise stands: no stage at all until its first application."""

    stage: Stage | None = None
    since: dt.date | None = None
    suspended_from: Stage | None = None
    security_code: str | None = None
    board: Stage | None = None


def _stage(value: str | None) -> Stage | None:
    return None if value is None else Stage(value)


async def current_stage(conn: asyncpg.Connection, uscc: str) -> StageState:
    row = await conn.fetchrow("SELECT stage, since, suspended_from, security_code, board FROM listing_stage "
                              "WHERE uscc = $1", uscc)
    if row is None:
        return StageState()
    return StageState(stage=Stage(row["stage"]), since=row["since"], suspended_from=_stage(row["suspended_from"]),
                      security_code=row["security_code"], board=_stage(row["board"]))


async def stage_on(conn: asyncpg.Connection, uscc: str, day: dt.date) -> StageState:
    """The stage held at the end of `day`, from the dated history of moves."""
    move = await conn.fetchrow("SELECT from_stage, to_stage, moved_on FROM listing_move WHERE uscc = $1 "
                               "AND moved_on <= $2 ORDER BY position DESC LIMIT 1", uscc, day)
    if move is None:
        return StageState()
    code = await conn.fetchrow("SELECT code, board FROM security_code WHERE uscc = $1 AND issued_on <= $2 "
                               "AND (retired_on IS NULL OR retired_on > $2) ORDER BY last_position DESC LIMIT 1",
                               uscc, day)
    to = Stage(move["to_stage"])
    return StageState(stage=to, since=move["moved_on"],
                      suspended_from=_stage(move["from_stage"]) if to is Stage.suspended else None,
                      security_code=None if code is None else code["code"],
                      board=None if code is None else Stage(code["board"]))


async def fact_sheets(conn: asyncpg.Connection, usccs: Sequence[str]) -> dict[str, FactSheet]:
    """Every filing of each enterprise named, in one query (an enterprise with none has an empty sheet)."""
    rows = await conn.fetch("SELECT uscc, position, name, value, fiscal_period, source_document_digest, corrects, "
                            "filed_on FROM listing_fact WHERE uscc = ANY($1::text[]) ORDER BY position", list(usccs))
    facts: dict[str, list[Fact]] = {uscc: [] for uscc in usccs}
    for r in rows:
        facts[r["uscc"]].append(Fact(
            name=FactName(r["name"]), value=msgspec.json.decode(r["value"]), fiscal_period=r["fiscal_period"],
            source_document_digest=r["source_document_digest"], position=r["position"], filed_on=r["filed_on"],
            corrects=r["corrects"]))
    return {uscc: FactSheet(facts=tuple(f)) for uscc, f in facts.items()}


async def fact_sheet(conn: asyncpg.Connection, uscc: str) -> FactSheet:
    return (await fact_sheets(conn, [uscc]))[uscc]


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> Rulebook:
    return parse_rulebook(text, name="published rulebook")


async def known_rulebooks(conn: asyncpg.Connection) -> tuple[Rulebook, ...]:
    """The shipped versions and every version operators published since: evaluations choose among these."""
    rows = await conn.fetch("SELECT text FROM rulebook_version ORDER BY id, version")
    return shipped_rulebooks() + tuple(_parsed(r["text"]) for r in rows)


async def frozen_positions(conn: asyncpg.Connection, uscc: str) -> tuple[int, int]:
    """(frozen holdings, frozen warrant series) of the enterprise's securities: a holding counts when units
    in it are frozen or the account holding it is frozen; a series when any of its units are frozen."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE h.frozen > 0 OR (a.status = 'frozen' AND h.available + h.pledged + h.frozen "
        "> 0)) AS holdings, count(DISTINCT h.series_code) FILTER (WHERE h.frozen > 0) AS series "
        "FROM holding h JOIN warrant_series s ON s.code = h.series_code JOIN account a ON a.account_id = h.account_id "
        "WHERE s.target_uscc = $1", uscc)
    return row["holdings"], row["series"]


# -- judging a move -----------------------------------------------------------------------------

_UPLISTING = frozenset({Stage.neeq_base, Stage.neeq_innovation, Stage.bse_listed})
_LEAVES_THE_MARKET = frozenset({Stage.neeq_base, Stage.neeq_innovation, Stage.bse_listed, Stage.exited})


def rekeys(state: StageState, to_stage: Stage) -> bool:
    """场内转板 (between two of the market's boards, a new code) or uplisting to NEEQ or the BSE: both are
    refused while anything of the enterprise's is frozen (the regulator chain's test platform refuses
    a board change while assets are frozen [S2]; applying it to uplisting is the operator's choice [I])."""
    return (state.board is not None and is_board_change(state.board, to_stage)) or to_stage in _UPLISTING


class Judgement(msgspec.Struct, kw_only=True, frozen=True):
    """A move judged on a date. The first application (into `applied`) is governed by no rulebook."""

    uscc: str
    from_stage: Stage | None
    to_stage: Stage
    on_date: dt.date
    evaluation: Evaluation | None
    rekeys: bool

    @property
    def passed(self) -> bool:
        return self.evaluation is None or self.evaluation.passed


async def judge(conn: asyncpg.Connection, uscc: str, state: StageState, to_stage: Stage, on_date: dt.date
                ) -> Judgement:
    """Evaluate `state.stage → to_stage` on `on_date` against the rulebooks in force then; refuses a move
    that is not allowed, naming the allowed ones."""
    if state.stage is None:
        if to_stage is not Stage.applied:
            raise MoveNotAllowed(
                f"{uscc} is in no stage yet: its first move is to applied ({STAGE_NAMES[Stage.applied]}), "
                f"not {to_stage} ({STAGE_NAMES[to_stage]})",
                from_stage=None, to_stage=str(to_stage), allowed=[str(Stage.applied)])
        evaluation = None
    else:
        evaluation = evaluate(await known_rulebooks(conn), Move(from_stage=state.stage, to_stage=to_stage),
                              await fact_sheet(conn, uscc), on_date, suspended_from=state.suspended_from)
    return Judgement(uscc=uscc, from_stage=state.stage, to_stage=to_stage, on_date=on_date, evaluation=evaluation,
                     rekeys=state.stage is not None and rekeys(state, to_stage))


def failed_criteria(evaluation: Evaluation | None) -> list[str]:
    """`rulebook:criterion`, or `rulebook:group/standard/criterion` inside an unmet group of alternatives."""
    if evaluation is None:
        return []
    return [f"{g.rulebook_id}:{g.group + '/' + g.standard + '/' if g.group else ''}{g.criterion.id}"
            for g in evaluation.gaps()]


def standards_met(evaluation: Evaluation | None) -> list[str]:
    """`rulebook:group/standard` for every alternative standard met (e.g. `bse_listing:financial_standard/1`)."""
    if evaluation is None:
        return []
    return [f"{rb.rulebook_id}:{g.id}/{s}" for rb in evaluation.rulebooks for g in rb.any_of for s in g.met]


def rulebooks_used(evaluation: Evaluation | None) -> list[str]:
    return [] if evaluation is None else [f"{rb.rulebook_id} v{rb.version}" for rb in evaluation.rulebooks]


def _summary(j: Judgement) -> dict[str, Any]:
    """What the log keeps of an evaluation: verdicts and versions (the full figures are recomputable)."""
    ev = j.evaluation
    return {
        "on": j.on_date.isoformat(), "passed": j.passed, "fiscal_year": None if ev is None else ev.fiscal_year,
        "rulebooks_used": rulebooks_used(ev), "failed": failed_criteria(ev), "standards_met": standards_met(ev),
    }


class EvaluationReport(msgspec.Struct, kw_only=True, frozen=True):
    """A move tested on a date: every criterion with its figure, period, sources and threshold, and which
    alternative standards are met, under the rulebook versions in force that day."""

    uscc: str
    from_stage: Stage | None
    to_stage: Stage
    on_date: dt.date
    passed: bool
    fiscal_year: int | None
    rekeys_security: bool
    """A board change or uplisting: refused while the enterprise's holdings or warrant series are frozen."""
    rulebooks_used: list[str]
    failed: list[str]
    standards_met: list[str]
    rulebooks: tuple[RulebookResult, ...]


def report(j: Judgement) -> EvaluationReport:
    ev = j.evaluation
    return EvaluationReport(
        uscc=j.uscc, from_stage=j.from_stage, to_stage=j.to_stage, on_date=j.on_date, passed=j.passed,
        fiscal_year=None if ev is None else ev.fiscal_year, rekeys_security=j.rekeys,
        rulebooks_used=rulebooks_used(ev), failed=failed_criteria(ev), standards_met=standards_met(ev),
        rulebooks=() if ev is None else ev.rulebooks)


async def evaluation_on(conn: asyncpg.Connection, uscc: str, to_stage: Stage, on_date: dt.date) -> EvaluationReport:
    await get_enterprise(conn, uscc)
    return report(await judge(conn, uscc, await stage_on(conn, uscc, on_date), to_stage, on_date))


class NextStepView(msgspec.Struct, kw_only=True, frozen=True):
    to_stage: Stage
    to_stage_name: str
    passed: bool
    rulebooks_used: list[str]
    missing: tuple[Gap, ...]
    """Every failed criterion, with its figure (None when nothing was filed) and threshold."""


class NextStepReport(msgspec.Struct, kw_only=True, frozen=True):
    """"What is missing for my next step?" — each forward move from the stage held on `on_date`."""

    uscc: str
    stage: Stage | None
    on_date: dt.date
    steps: list[NextStepView]


def _next_steps(facts: FactSheet, stage: Stage | None, on_date: dt.date,
                books: Sequence[Rulebook]) -> list[NextStepView]:
    if stage is None:
        return [NextStepView(to_stage=Stage.applied, to_stage_name=STAGE_NAMES[Stage.applied], passed=True,
                             rulebooks_used=[], missing=())]
    steps = missing_for_next_step(books, stage, facts, on_date)
    return [NextStepView(to_stage=s.to_stage, to_stage_name=s.to_stage_name, passed=s.passed,
                         rulebooks_used=rulebooks_used(s.evaluation), missing=s.gaps) for s in steps]


async def next_step(conn: asyncpg.Connection, uscc: str, on_date: dt.date) -> NextStepReport:
    await get_enterprise(conn, uscc)
    state = await stage_on(conn, uscc, on_date)
    facts = FactSheet() if state.stage is None else await fact_sheet(conn, uscc)
    return NextStepReport(uscc=uscc, stage=state.stage, on_date=on_date,
                          steps=_next_steps(facts, state.stage, on_date, await known_rulebooks(conn)))


# -- facts --------------------------------------------------------------------------------------


class FactView(msgspec.Struct, kw_only=True, frozen=True):
    """One filing as recorded; `in_force` unless a later filing of the same fact and period superseded it."""

    position: int
    uscc: str
    name: FactName
    label: str
    value: int | bool | str
    fiscal_period: str
    source_document_digest: str
    filed_on: dt.date
    filed_by: str
    corrects: int | None
    superseded_by: int | None
    in_force: bool


class FactPage(msgspec.Struct, kw_only=True, frozen=True):
    uscc: str
    as_of: dt.date | None
    """Only filings made by the end of this business date (all when null)."""
    items: list[FactView]
    next: str | None


async def fact_views(conn: asyncpg.Connection, uscc: str, as_of: dt.date | None) -> list[FactView]:
    rows = await conn.fetch("SELECT * FROM listing_fact WHERE uscc = $1 AND ($2::date IS NULL OR filed_on <= $2) "
                            "ORDER BY position", uscc, as_of)
    later: dict[tuple[str, tuple[dt.date, dt.date]], int] = {}
    superseded_by: dict[int, int] = {}
    for r in reversed(rows):
        key = (r["name"], period_key(r["fiscal_period"]))
        if key in later:
            superseded_by[r["position"]] = later[key]
        later[key] = r["position"]
    return [_fact_view(r, superseded_by.get(r["position"])) for r in rows]


def _fact_view(r: asyncpg.Record, superseded_by: int | None) -> FactView:
    return FactView(position=r["position"], uscc=r["uscc"], name=FactName(r["name"]),
                    label=FACTS[FactName(r["name"])].label, value=msgspec.json.decode(r["value"]),
                    fiscal_period=r["fiscal_period"], source_document_digest=r["source_document_digest"],
                    filed_on=r["filed_on"], filed_by=r["filed_by"], corrects=r["corrects"],
                    superseded_by=superseded_by, in_force=superseded_by is None)


async def list_facts(conn: asyncpg.Connection, uscc: str, *, as_of: dt.date | None, in_force_only: bool,
                     name: FactName | None, after: int | None, limit: int) -> FactPage:
    await get_enterprise(conn, uscc)
    views = [v for v in await fact_views(conn, uscc, as_of)
             if (after is None or v.position > after) and (not in_force_only or v.in_force)
             and (name is None or v.name == name)][:limit]
    return FactPage(uscc=uscc, as_of=as_of, items=views,
                    next=str(views[-1].position) if len(views) == limit and views else None)


def file_fact(uscc: str, cmd: FileFact) -> Handler:
    """File a fact with its source document; a correction is a new filing that supersedes the earlier one."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        await get_enterprise(ctx.conn, uscc)
        if cmd.corrects is not None:
            row = await ctx.conn.fetchrow("SELECT name, fiscal_period FROM listing_fact WHERE position = $1 "
                                          "AND uscc = $2", cmd.corrects, uscc)
            check_correction(uscc, cmd, None if row is None else (row["name"], row["fiscal_period"]))
        stream = enterprise_stream(uscc)
        position = ctx.next_position
        await ctx.append(stream, await ctx.stream_version(stream), [NewEvent(
            type="listing.fact_filed", effective_date=ctx.business_date, data={
                "uscc": uscc, "name": str(cmd.name), "value": cmd.value, "fiscal_period": cmd.fiscal_period,
                "source_document_digest": cmd.source_document_digest, "corrects": cmd.corrects})])
        # the newest filing: nothing supersedes it yet
        view = _fact_view(await ctx.conn.fetchrow("SELECT * FROM listing_fact WHERE position = $1", position), None)
        return msgspec.to_builtins(view)
    return handler


# -- moves --------------------------------------------------------------------------------------


class MoveRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Ask to move an enterprise (移板/转层); a second operator's approval carries it out."""

    to_stage: Stage
    reason: Reason
    override_reason: Reason | None = None
    """Required when the move fails its criteria: why it should happen anyway (shown to regulators)."""


class MovePayload(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The approval's payload: the stage the request was decided on, so a stale approval is refused."""

    uscc: Identifier
    from_stage: Stage | None
    to_stage: Stage
    reason: Reason
    override_reason: Reason | None = None


def _precheck_move(p: MovePayload) -> None:
    require_reason(p.reason, "say why the enterprise should move")
    if p.from_stage is not None:
        check_move(p.from_stage, p.to_stage)


def request_move(uscc: str, cmd: MoveRequest) -> Handler:
    """Evaluate the move today; a failing one needs an override reason. Then queue it for a second operator."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        await get_enterprise(ctx.conn, uscc)
        state = await current_stage(ctx.conn, uscc)
        judgement = await judge(ctx.conn, uscc, state, cmd.to_stage, ctx.business_date)
        if judgement.evaluation is not None:
            check_override(judgement.evaluation, cmd.override_reason)
        if judgement.rekeys:
            await _check_nothing_frozen(ctx.conn, judgement)
        payload = MovePayload(uscc=uscc, from_stage=state.stage, to_stage=cmd.to_stage, reason=cmd.reason,
                              override_reason=cmd.override_reason)
        request = approvals_domain.RequestApproval(action="listing.move", payload=msgspec.to_builtins(payload),
                                                   reason=cmd.reason)
        approval = await request_approval(request)(ctx)
        return {**approval, "evaluation": _summary(judgement)}
    return handler


async def _check_nothing_frozen(conn: asyncpg.Connection, j: Judgement) -> None:
    holdings, series = await frozen_positions(conn, j.uscc)
    assert j.from_stage is not None
    check_board_change(j.from_stage, j.to_stage, frozen_holdings=holdings, frozen_warrant_series=series)


def code_changes(state: StageState, to_stage: Stage, used_codes: Collection[str]) -> tuple[str | None, str | None]:
    """(code retired, code issued). Entering a board without a code issues one; a board change (场内转板)
    issues a new code and retires the old one; leaving the market (uplisting to NEEQ, 退板) retires it
    (the regulator model records these as delisting with a destination [S2]). Codes are never reused."""
    retired = None
    if state.security_code is not None and (
            to_stage in _LEAVES_THE_MARKET or (state.board is not None and is_board_change(state.board, to_stage))):
        retired = state.security_code
    issued = None
    if to_stage in DEFAULT_BOARD_PREFIXES and (state.security_code is None or retired is not None):
        issued = next_security_code(to_stage, used_codes)
    return retired, issued


@approvable("listing.move", "Move an enterprise to another stage (移板/转层)", MovePayload, _precheck_move)
async def execute_move(ctx: WriteContext, p: MovePayload, approval_id: str) -> dict[str, Any]:
    """On approval: re-evaluate on the approval date, check the override and frozen positions, record the move
    and any security code issued or retired."""
    state = await current_stage(ctx.conn, p.uscc)
    check_stage_unchanged(p.uscc, p.from_stage, state.stage)
    today = ctx.business_date
    judgement = await judge(ctx.conn, p.uscc, state, p.to_stage, today)
    if judgement.evaluation is not None:
        check_override(judgement.evaluation, p.override_reason)
    if judgement.rekeys:
        await _check_nothing_frozen(ctx.conn, judgement)
    used = {r["code"] for r in await ctx.conn.fetch("SELECT code FROM security_code")}
    retired, issued = code_changes(state, p.to_stage, used)
    requested_by = await ctx.conn.fetchval("SELECT requested_by FROM approval_request WHERE approval_id = $1",
                                           approval_id)
    events = [NewEvent(type="listing.moved", effective_date=today, data={
        "uscc": p.uscc, "from_stage": None if state.stage is None else str(state.stage), "to_stage": str(p.to_stage),
        "on": today.isoformat(), "reason": p.reason,
        "override_reason": None if judgement.passed else p.override_reason, "overridden": not judgement.passed,
        "approval_id": approval_id, "requested_by": requested_by, "approved_by": ctx.meta.actor,
        "rekeys_security": judgement.rekeys, "evaluation": _summary(judgement)})]
    if retired is not None:
        events.append(NewEvent(type="listing.security_code_retired", effective_date=today, data={
            "uscc": p.uscc, "code": retired, "board": str(state.board), "on": today.isoformat(),
            "to_stage": str(p.to_stage)}))
    if issued is not None:
        events.append(NewEvent(type="listing.security_code_issued", effective_date=today, data={
            "uscc": p.uscc, "code": issued, "board": str(p.to_stage), "on": today.isoformat(),
            "replaces": retired}))
    stream = enterprise_stream(p.uscc)
    await ctx.append(stream, await ctx.stream_version(stream), events)
    return {"uscc": p.uscc, "from_stage": events[0].data["from_stage"], "to_stage": str(p.to_stage),
            "on": today.isoformat(), "security_code": issued or (None if retired else state.security_code),
            "security_code_retired": retired, "evaluation": events[0].data["evaluation"],
            "override_reason": events[0].data["override_reason"]}


class MoveView(msgspec.Struct, kw_only=True, frozen=True):
    position: int
    from_stage: Stage | None
    to_stage: Stage
    moved_on: dt.date
    approval_id: str
    requested_by: str
    approved_by: str
    reason: str
    override_reason: str | None
    passed: bool
    rulebooks: list[str]


class SecurityCodeView(msgspec.Struct, kw_only=True, frozen=True):
    code: str
    board: Stage
    issued_on: dt.date
    retired_on: dt.date | None


class StageView(msgspec.Struct, kw_only=True, frozen=True):
    """An enterprise's place in the pipeline, its moves, and every security code it has held."""

    uscc: str
    stage: Stage | None
    stage_name: str | None
    since: dt.date | None
    suspended_from: Stage | None
    security_code: str | None
    board: Stage | None
    allowed_moves: list[Stage]
    moves: list[MoveView]
    security_codes: list[SecurityCodeView]


async def stage_view(conn: asyncpg.Connection, uscc: str) -> StageView:
    await get_enterprise(conn, uscc)
    s = await current_stage(conn, uscc)
    moves = [msgspec.convert(dict(r), MoveView) for r in await conn.fetch(
        "SELECT position, from_stage, to_stage, moved_on, approval_id, requested_by, approved_by, reason, "
        "override_reason, passed, rulebooks FROM listing_move WHERE uscc = $1 ORDER BY position", uscc)]
    codes = [msgspec.convert(dict(r), SecurityCodeView) for r in await conn.fetch(
        "SELECT code, board, issued_on, retired_on FROM security_code WHERE uscc = $1 ORDER BY last_position", uscc)]
    allowed = [Stage.applied] if s.stage is None else allowed_moves(s.stage, suspended_from=s.suspended_from)
    return StageView(uscc=uscc, stage=s.stage, stage_name=None if s.stage is None else STAGE_NAMES[s.stage],
                     since=s.since, suspended_from=s.suspended_from, security_code=s.security_code, board=s.board,
                     allowed_moves=allowed, moves=moves, security_codes=codes)


# -- rulebooks ----------------------------------------------------------------------------------


class PublishRulebook(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A new rulebook version as TOML text (the shipped files' format), and why it is published."""

    text: DocumentText
    reason: Reason


def _precheck_publication(p: PublishRulebook) -> None:
    require_reason(p.reason, "say why this rulebook version is published")
    _parsed(p.text)


def request_publication(cmd: PublishRulebook) -> Handler:
    """Check the version now (next number, not backdated) and queue it for a second operator."""
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        _precheck_publication(cmd)
        candidate = _parsed(cmd.text)
        check_publishable(await known_rulebooks(ctx.conn), candidate, ctx.business_date)
        request = approvals_domain.RequestApproval(action="listing.publish_rulebook",
                                                   payload=msgspec.to_builtins(cmd), reason=cmd.reason)
        approval = await request_approval(request)(ctx)
        return {**approval, "rulebook_id": candidate.id, "version": candidate.version,
                "effective_from": candidate.effective_from.isoformat()}
    return handler


@approvable("listing.publish_rulebook", "Publish a new rulebook version (上市/分层标准新版本)", PublishRulebook,
            _precheck_publication)
async def publish_rulebook(ctx: WriteContext, p: PublishRulebook, approval_id: str) -> dict[str, Any]:
    """On approval: the next version, effective no earlier than today; earlier evaluations stay reproducible."""
    candidate = _parsed(p.text)
    check_publishable(await known_rulebooks(ctx.conn), candidate, ctx.business_date)
    stream = rulebook_stream(candidate.id)
    await ctx.append(stream, await ctx.stream_version(stream), [NewEvent(
        type="listing.rulebook_published", effective_date=candidate.effective_from, data={
            "rulebook_id": candidate.id, "version": candidate.version,
            "effective_from": candidate.effective_from.isoformat(), "title": candidate.title, "text": p.text,
            "reason": p.reason, "approval_id": approval_id, "published_by": ctx.meta.actor})])
    return {"rulebook_id": candidate.id, "version": candidate.version,
            "effective_from": candidate.effective_from.isoformat()}


class RulebookVersionView(msgspec.Struct, kw_only=True, frozen=True):
    version: int
    effective_from: dt.date
    title: str
    source: str
    """`shipped` with the service, or `published` by operators through four-eyes."""
    in_force: bool
    published_at: dt.datetime | None = None
    approval_id: str | None = None
    reason: str | None = None
    rulebook: Rulebook | None = None
    """The whole version (criteria, thresholds, provenance, notes): in the detail view only."""


class RulebookSummary(msgspec.Struct, kw_only=True, frozen=True):
    id: str
    title: str
    owner: str
    on_date: dt.date
    in_force_version: int | None
    """The version in force on `on_date`; null before the first takes effect."""
    versions: list[RulebookVersionView]


async def rulebook_summaries(conn: asyncpg.Connection, on_date: dt.date, *, only: str | None = None,
                             detail: bool = False) -> list[RulebookSummary]:
    books = await known_rulebooks(conn)
    published = {(r["id"], r["version"]): r for r in await conn.fetch(
        "SELECT id, version, published_at, approval_id, reason FROM rulebook_version")}
    summaries = []
    for rid in sorted({rb.id for rb in books}):
        if only is not None and rid != only:
            continue
        versions = sorted((rb for rb in books if rb.id == rid), key=lambda rb: rb.version)
        try:
            current: Rulebook | None = in_force(versions, rid, on_date)
        except NoRulebookInForce:
            current = None
        views = []
        for rb in versions:
            row = published.get((rb.id, rb.version))
            views.append(RulebookVersionView(
                version=rb.version, effective_from=rb.effective_from, title=rb.title,
                source="shipped" if row is None else "published", in_force=rb is current,
                published_at=None if row is None else row["published_at"],
                approval_id=None if row is None else row["approval_id"], reason=None if row is None else row["reason"],
                rulebook=rb if detail else None))
        latest = versions[-1]
        summaries.append(RulebookSummary(id=rid, title=latest.title, owner=str(latest.owner), on_date=on_date,
                                         in_force_version=None if current is None else current.version,
                                         versions=views))
    return summaries


# -- overview -----------------------------------------------------------------------------------


class StageCount(msgspec.Struct, kw_only=True, frozen=True):
    stage: Stage
    stage_name: str
    enterprises: int


class MonthMoves(msgspec.Struct, kw_only=True, frozen=True):
    month: str
    """YYYY-MM."""
    moves: int


class StageDuration(msgspec.Struct, kw_only=True, frozen=True):
    stage: Stage
    stage_name: str
    stints: int
    """Times an enterprise entered the stage (a stay still going counts up to `as_of`)."""
    average_days: Decimal
    """Calendar days, 2 decimal places, rounded half to even."""


class ReserveEntry(msgspec.Struct, kw_only=True, frozen=True):
    uscc: str
    name: str
    since: dt.date
    next_steps: list[NextStepView]


class Overview(msgspec.Struct, kw_only=True, frozen=True):
    """The pipeline at the end of `as_of`: who is where, how fast they move, and what the reserve lacks."""

    as_of: dt.date
    at_position: int
    stages: list[StageCount]
    moves_per_month: list[MonthMoves]
    days_per_stage: list[StageDuration]
    reserve: list[ReserveEntry]


_DAYS = Decimal("0.01")


async def overview(conn: asyncpg.Connection, as_of: dt.date) -> Overview:
    at = await conn.fetch(
        "SELECT DISTINCT ON (m.uscc) m.uscc, m.to_stage, m.moved_on, e.name FROM listing_move m "
        "JOIN enterprise e USING (uscc) WHERE m.moved_on <= $1 ORDER BY m.uscc, m.position DESC", as_of)
    counts: dict[Stage, int] = {}
    for r in at:
        counts[Stage(r["to_stage"])] = counts.get(Stage(r["to_stage"]), 0) + 1
    months = await conn.fetch("SELECT to_char(moved_on, 'YYYY-MM') AS month, count(*) AS moves FROM listing_move "
                              "WHERE moved_on <= $1 GROUP BY 1 ORDER BY 1", as_of)
    stints = await conn.fetch(
        "SELECT to_stage, count(*) AS stints, sum(coalesce(left_on, $1) - moved_on) AS days FROM ("
        "SELECT to_stage, moved_on, lead(moved_on) OVER (PARTITION BY uscc ORDER BY position) AS left_on "
        "FROM listing_move WHERE moved_on <= $1) s GROUP BY to_stage", as_of)
    books = await known_rulebooks(conn)
    in_reserve = [r for r in at if r["to_stage"] == Stage.listing_reserve]
    sheets = await fact_sheets(conn, [r["uscc"] for r in in_reserve])
    reserve = [ReserveEntry(uscc=r["uscc"], name=r["name"], since=r["moved_on"],
                            next_steps=_next_steps(sheets[r["uscc"]], Stage.listing_reserve, as_of, books))
               for r in in_reserve]
    order = list(Stage).index
    return Overview(
        as_of=as_of, at_position=await position_at(conn, as_of, None),
        stages=[StageCount(stage=s, stage_name=STAGE_NAMES[s], enterprises=counts[s])
                for s in sorted(counts, key=order)],
        moves_per_month=[MonthMoves(month=r["month"], moves=r["moves"]) for r in months],
        days_per_stage=sorted((StageDuration(
            stage=Stage(r["to_stage"]), stage_name=STAGE_NAMES[Stage(r["to_stage"])], stints=r["stints"],
            average_days=(Decimal(r["days"]) / r["stints"]).quantize(_DAYS, rounding=ROUND_HALF_EVEN))
            for r in stints), key=lambda d: order(d.stage)),
        reserve=reserve)


# -- demo ---------------------------------------------------------------------------------------


def _demo_digest(text: str) -> str:
    return hashlib.sha256(f"演示材料:{text}".encode()).hexdigest()


def _demo_facts(y: int) -> list[list[tuple[str, int | bool | str, str]]]:
    """The demo enterprises' filings, for fiscal years `y - 1` and `y` (the last full year)."""
    clean = [("penalties", 0, f"{y}-12-31"), ("governance_rules_adopted", True, f"{y}-12-31"),
             ("audit_opinion", "standard_unqualified", f"FY{y}")]
    return [
        # 海河智芯: a 小巨人 with patents — admitted to 孵化层, then promoted to 规范层 (a board change: new code).
        [("invention_patents", 5, f"{y}-12-31"), ("specialised_level", "little_giant", f"{y}-12-31"),
         ("rd_spend", 1_200_000_000, f"FY{y}"), *clean],
        # 滨海生物医药: straight into 规范层, then 培育层 and the listing reserve; its NEEQ financials fall short.
        [("specialised_level", "provincial", f"{y}-12-31"), ("joint_stock_converted", True, f"{y}-12-31"),
         ("sponsor_broker_engaged", True, f"{y}-12-31"), ("operating_years", 8, f"{y}-12-31"), *clean,
         ("revenue", 2_800_000_000, f"FY{y - 1}"), ("revenue", 3_300_000_000, f"FY{y}"),
         ("net_profit", 300_000_000, f"FY{y - 1}"), ("net_profit", 450_000_000, f"FY{y}"),
         ("share_capital", 3_000_000_000, f"{y}-12-31"), ("net_assets", 6_500_000_000, f"FY{y}")],
        # 南开数智: an 创新型中小企业 in 孵化层.
        [("specialised_level", "innovative_sme", f"{y}-12-31"), ("invention_patents", 1, f"{y}-12-31"),
         ("penalties", 0, f"{y}-12-31")],
        # 津沽新能源: applied; its move to 孵化层 awaits a second operator.
        [("specialised_level", "provincial", f"{y}-12-31"), ("penalties", 0, f"{y}-12-31")],
        # 西青精密: no technology attribute on file — admitted to 孵化层 by override, with the reason on record.
        [("penalties", 0, f"{y}-12-31"), ("rd_spend", 0, f"FY{y}")],
    ]


_OVERRIDE = "经专板评审委员会认定具有科技属性(演示)"
_DEMO_MOVES: list[list[tuple[Stage, str | None]]] = [
    [(Stage.applied, None), (Stage.incubation, None), (Stage.standardisation, None)],
    [(Stage.applied, None), (Stage.standardisation, None), (Stage.cultivation, None), (Stage.listing_reserve, None)],
    [(Stage.applied, None), (Stage.incubation, None)],
    [(Stage.applied, None)],
    [(Stage.applied, None), (Stage.incubation, _OVERRIDE)],
]


async def load_listing_demo(db: Any, settings: Any, *, usccs: Sequence[str] | None = None) -> str:
    """The demo market's pipeline: facts filed (one corrected), enterprises moved through the tiers by
    request and second-operator approval, one override, one request left pending. Idempotent: every
    command has a fixed key, so a second run replays and appends nothing.

    `usccs`: the demo enterprises, in order; by default the first five enterprises ever registered.
    `settings` is taken for symmetry with the other demo loaders; the pipeline needs none.
    """
    counts = {"applied": 0, "replayed": 0, "refused": 0}

    async def run(key: str, command: str, body: Any, handler: Handler, actor: str = "op-zhang",
                  role: str = "operator") -> Any:
        meta = EventMeta(actor=actor, role=role, command=command, idempotency_key=key, reason="demo market")
        result = await db.writer.execute(handler, meta, idempotency=Idempotency.of(
            f"{role}:{actor}", key, command, msgspec.to_builtins(body, order="sorted")))
        counts["replayed" if result.replayed else "applied"] += 1
        return result.response

    if usccs is None:
        async with db.primary() as conn:
            usccs = [r["stream_id"].removeprefix("enterprise-") for r in await conn.fetch(
                "SELECT stream_id FROM event WHERE event_type = 'enterprise.registered' ORDER BY position LIMIT 5")]
    for n, (uscc, facts, moves) in enumerate(zip(usccs, _demo_facts(business_date(db.writer.clock()).year - 1), _DEMO_MOVES), start=1):
        tag = f"demo-listing-e{n}"
        try:
            for i, (name, value, period) in enumerate(facts):
                cmd = FileFact(name=FactName(name), value=value, fiscal_period=period,
                               source_document_digest=_demo_digest(f"{uscc}:{name}:{period}"))
                filed = await run(f"{tag}-fact-{i}", "FileFact", {"uscc": uscc, **msgspec.to_builtins(cmd)},
                                  file_fact(uscc, cmd))
                if n == 1 and name == "invention_patents":  # a correction: 5 patents on file, 6 granted
                    fix = FileFact(name=FactName(name), value=6, fiscal_period=period, corrects=filed["position"],
                                   source_document_digest=_demo_digest(f"{uscc}:{name}:{period}:更正"))
                    await run(f"{tag}-fact-{i}-correction", "FileFact",
                              {"uscc": uscc, **msgspec.to_builtins(fix)}, file_fact(uscc, fix))
            for to_stage, override in moves:
                first = to_stage is Stage.applied
                move = MoveRequest(to_stage=to_stage, reason=f"申请进入{STAGE_NAMES[to_stage]}(演示)",
                                   override_reason=override)
                requested = await run(f"{tag}-move-{to_stage}", "RequestMove",
                                      {"uscc": uscc, **msgspec.to_builtins(move)}, request_move(uscc, move),
                                      actor=uscc if first else "op-zhang", role="enterprise" if first else "operator")
                decide = approvals_domain.Decide(reason="材料齐备, 同意(演示)")
                await run(f"{tag}-approve-{to_stage}", "ApproveRequest",
                          {"approval_id": requested["approval_id"], **msgspec.to_builtins(decide)},
                          approve(requested["approval_id"], decide), actor="op-li")
            if n == 4:  # a request left for a second operator: the approval queue shows a pipeline move
                move = MoveRequest(to_stage=Stage.incubation, reason="申请进入孵化层(演示)")
                await run(f"{tag}-move-incubation-pending", "RequestMove",
                          {"uscc": uscc, **msgspec.to_builtins(move)}, request_move(uscc, move))
        except RegistryError:  # e.g. frozen warrants block a board change: the rest of this enterprise waits
            counts["refused"] += 1
    return (f"listing demo: {counts['applied']} commands applied, {counts['replayed']} already present, "
            f"{counts['refused']} refused")
