"""Four-eyes use cases and the table of approvable actions each feature registers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from registry.approvals import domain, projection  # noqa: F401 - projection registers the projectors
from registry.approvals.domain import ApprovalNotFound, ApprovalState, ApprovalStatus, PayloadInvalid
from registry.eventlog.writer import NO_STREAM, Handler, WriteContext
from registry.fields import FieldInvalid, decode

Execute = Callable[[WriteContext, Any, str], Awaitable[dict[str, Any]]]
"""Runs an approved action: (context, payload, approval id) → outcome."""
Precheck = Callable[[Any], None]


class ApprovableAction(msgspec.Struct, kw_only=True, frozen=True):
    name: str
    title: str
    payload_type: type
    execute: Execute
    precheck: Precheck | None = None


ACTIONS: dict[str, ApprovableAction] = {}


def approvable(name: str, title: str, payload_type: type, precheck: Precheck | None = None
               ) -> Callable[[Execute], Execute]:
    """Register an operator action that runs only when a second operator approves it."""
    def register(fn: Execute) -> Execute:
        ACTIONS[name] = ApprovableAction(name=name, title=title, payload_type=payload_type, execute=fn,
                                         precheck=precheck)
        return fn
    return register


def approval_stream(approval_id: str) -> str:
    return f"approval-{approval_id}"


class ApprovalView(msgspec.Struct, kw_only=True, frozen=True):
    approval_id: str
    action: str
    payload: dict[str, Any]
    reason: str
    status: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    decision_reason: str | None
    last_position: int


def _view(row: asyncpg.Record) -> ApprovalView:
    values = dict(row)
    values["payload"] = msgspec.json.decode(values["payload"])
    return msgspec.convert(values, ApprovalView)


async def get_approval(conn: asyncpg.Connection, approval_id: str) -> ApprovalView:
    row = await conn.fetchrow("SELECT * FROM approval_request WHERE approval_id = $1", approval_id)
    if row is None:
        raise ApprovalNotFound(f"no approval request {approval_id}", approval_id=approval_id)
    return _view(row)


async def list_approvals(conn: asyncpg.Connection, *, after: str | None, limit: int, status: str | None,
                         action: str | None) -> list[ApprovalView]:
    rows = await conn.fetch(
        "SELECT * FROM approval_request WHERE approval_id > $1 AND ($2::text IS NULL OR status = $2) "
        "AND ($3::text IS NULL OR action = $3) ORDER BY approval_id LIMIT $4",
        after or "", status, action, limit,
    )
    return [_view(r) for r in rows]


def _payload(action: ApprovableAction, payload: dict[str, Any]) -> Any:
    try:
        value = decode(payload, action.payload_type)
    except FieldInvalid as exc:
        raise PayloadInvalid(f"payload for {action.name}: {exc}", action=action.name, field=exc.path) from None
    if action.precheck is not None:
        action.precheck(value)
    return value


def request_approval(cmd: domain.RequestApproval) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        approval_id = f"APR{ctx.next_position:08d}"
        events = domain.decide_request(approval_id, ctx.meta.actor, cmd, set(ACTIONS))
        # a bad payload is refused now, not at approval time; the log keeps it in its one canonical spelling
        payload = msgspec.to_builtins(_payload(ACTIONS[cmd.action], cmd.payload))
        events = [msgspec.structs.replace(e, data={**e.data, "payload": payload}) for e in events]
        await ctx.append(approval_stream(approval_id), NO_STREAM, events)
        return msgspec.to_builtins(await get_approval(ctx.conn, approval_id))
    return handler


async def _state(ctx: WriteContext, approval_id: str) -> ApprovalState:
    view = await get_approval(ctx.conn, approval_id)
    return ApprovalState(approval_id=view.approval_id, action=view.action, payload=view.payload,
                         requested_by=view.requested_by, status=ApprovalStatus(view.status))


def approve(approval_id: str, cmd: domain.Decide) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        state = await _state(ctx, approval_id)
        stream = approval_stream(approval_id)
        await ctx.append(stream, await ctx.stream_version(stream), domain.decide_approve(state, ctx.meta.actor, cmd))
        action = ACTIONS[state.action]
        outcome = await action.execute(ctx, _payload(action, state.payload), approval_id)
        return {**msgspec.to_builtins(await get_approval(ctx.conn, approval_id)), "outcome": outcome}
    return handler


def reject(approval_id: str, cmd: domain.Decide) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        state = await _state(ctx, approval_id)
        stream = approval_stream(approval_id)
        await ctx.append(stream, await ctx.stream_version(stream), domain.decide_reject(state, ctx.meta.actor, cmd))
        return msgspec.to_builtins(await get_approval(ctx.conn, approval_id))
    return handler
