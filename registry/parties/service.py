"""Parties use cases: each write returns a handler for the writer; reads query the projections."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from registry.eventlog.writer import NO_STREAM, Handler, WriteContext
from registry.parties import domain, projection  # noqa: F401 - projection registers the projectors
from registry.parties.domain import (
    AccountKind,
    AccountNotFound,
    AccountState,
    AccountStatus,
    EnterpriseNotFound,
    InvestorNotFound,
)
from registry.parties.qualification import (
    QualificationCategory,
    QualificationStatus,
    QualificationThresholds,
    is_qualified,
)


def enterprise_stream(uscc: str) -> str:
    return f"enterprise-{uscc}"


def investor_stream(investor_id: str) -> str:
    return f"investor-{investor_id}"


def account_stream(account_id: str) -> str:
    return f"account-{account_id}"


def new_id(prefix: str, position: int) -> str:
    """Ids carry the log position that created them: unique, stable on replay, easy to audit."""
    return f"{prefix}{position:08d}"


# -- views ----------------------------------------------------------------------------------


class EnterpriseView(msgspec.Struct, kw_only=True, frozen=True):
    uscc: str
    name: str
    legal_form: str
    registered_capital_fen: int
    industry: str
    specialised_level: str
    status: str
    registered_at: dt.datetime
    last_position: int


class InvestorView(msgspec.Struct, kw_only=True, frozen=True):
    investor_id: str
    kind: str
    name: str
    identity_document_digest: str
    registered_at: dt.datetime
    last_position: int


class AccountView(msgspec.Struct, kw_only=True, frozen=True):
    account_id: str
    investor_id: str
    kind: str
    status: str
    freeze_basis: str | None
    freeze_document_ref: str | None
    beneficial_owners: list[str]
    opened_at: dt.datetime
    last_position: int


class QualificationView(msgspec.Struct, kw_only=True, frozen=True):
    investor_id: str
    sequence: int
    category: str
    evidence_digest: str
    valid_from: dt.date
    valid_until: dt.date | None
    revoked_on: dt.date | None
    last_position: int


def _view(cls: type, row: asyncpg.Record | None) -> Any:
    return None if row is None else msgspec.convert(dict(row), cls)


# -- reads ----------------------------------------------------------------------------------


async def get_enterprise(conn: asyncpg.Connection, uscc: str) -> EnterpriseView:
    row = await conn.fetchrow("SELECT * FROM enterprise WHERE uscc = $1", uscc)
    if row is None:
        raise EnterpriseNotFound(f"no enterprise {uscc}", uscc=uscc)
    return _view(EnterpriseView, row)


async def list_enterprises(conn: asyncpg.Connection, *, after: str | None, limit: int, status: str | None = None,
                           specialised_level: str | None = None, name_contains: str | None = None
                           ) -> list[EnterpriseView]:
    rows = await conn.fetch(
        "SELECT * FROM enterprise WHERE uscc > $1 AND ($2::text IS NULL OR status = $2) "
        "AND ($3::text IS NULL OR specialised_level = $3) AND ($4::text IS NULL OR strpos(name, $4) > 0) "
        "ORDER BY uscc LIMIT $5",
        after or "", status, specialised_level, name_contains, limit,
    )
    return [_view(EnterpriseView, r) for r in rows]


async def get_investor(conn: asyncpg.Connection, investor_id: str) -> InvestorView:
    row = await conn.fetchrow("SELECT * FROM investor WHERE investor_id = $1", investor_id)
    if row is None:
        raise InvestorNotFound(f"no investor {investor_id}", investor_id=investor_id)
    return _view(InvestorView, row)


async def list_investors(conn: asyncpg.Connection, *, after: str | None, limit: int, kind: str | None = None
                         ) -> list[InvestorView]:
    rows = await conn.fetch(
        "SELECT * FROM investor WHERE investor_id > $1 AND ($2::text IS NULL OR kind = $2) ORDER BY investor_id "
        "LIMIT $3", after or "", kind, limit,
    )
    return [_view(InvestorView, r) for r in rows]


_ACCOUNT_SELECT = (
    "SELECT a.*, coalesce(array_agg(b.investor_id ORDER BY b.investor_id) FILTER (WHERE b.investor_id IS NOT NULL), "
    "'{}') AS beneficial_owners FROM account a LEFT JOIN account_beneficial_owner b USING (account_id) "
)


async def get_account(conn: asyncpg.Connection, account_id: str) -> AccountView:
    row = await conn.fetchrow(_ACCOUNT_SELECT + "WHERE a.account_id = $1 GROUP BY a.account_id", account_id)
    if row is None:
        raise AccountNotFound(f"no account {account_id}", account_id=account_id)
    return _view(AccountView, row)


async def list_accounts(conn: asyncpg.Connection, *, investor_id: str | None, after: str | None, limit: int,
                        status: str | None = None) -> list[AccountView]:
    rows = await conn.fetch(
        _ACCOUNT_SELECT + "WHERE a.account_id > $1 AND ($2::text IS NULL OR a.investor_id = $2) "
        "AND ($3::text IS NULL OR a.status = $3) GROUP BY a.account_id ORDER BY a.account_id LIMIT $4",
        after or "", investor_id, status, limit,
    )
    return [_view(AccountView, r) for r in rows]


async def account_owner(conn: asyncpg.Connection, account_id: str) -> str | None:
    return await conn.fetchval("SELECT investor_id FROM account WHERE account_id = $1", account_id)


async def qualifications(conn: asyncpg.Connection, investor_id: str) -> list[QualificationView]:
    rows = await conn.fetch("SELECT * FROM qualification WHERE investor_id = $1 ORDER BY sequence", investor_id)
    return [_view(QualificationView, r) for r in rows]


async def qualification_statuses(conn: asyncpg.Connection, investor_id: str) -> list[QualificationStatus]:
    return [
        QualificationStatus(investor_id=q.investor_id, category=QualificationCategory(q.category),
                            evidence_digest=q.evidence_digest, valid_from=q.valid_from,
                            valid_until=q.valid_until, revoked_on=q.revoked_on)
        for q in await qualifications(conn, investor_id)
    ]


async def investor_is_qualified(conn: asyncpg.Connection, investor_id: str, as_of: dt.date) -> bool:
    """合格投资者 on `as_of`: the one question every rule that needs "qualified" asks."""
    return is_qualified(await qualification_statuses(conn, investor_id), as_of)


async def _account_state(conn: asyncpg.Connection, account_id: str) -> AccountState:
    row = await conn.fetchrow("SELECT account_id, investor_id, kind, status FROM account WHERE account_id = $1",
                              account_id)
    if row is None:
        raise AccountNotFound(f"no account {account_id}", account_id=account_id)
    return AccountState(account_id=row["account_id"], investor_id=row["investor_id"], kind=AccountKind(row["kind"]),
                        status=AccountStatus(row["status"]))


async def units_held(conn: asyncpg.Connection, account_id: str) -> int:
    """Units of any security on the account (available, pledged or frozen)."""
    return await conn.fetchval(
        "SELECT coalesce(sum(available + pledged + frozen), 0) FROM holding WHERE account_id = $1", account_id)


# -- writes ---------------------------------------------------------------------------------


def register_enterprise(cmd: domain.RegisterEnterprise, *, province_prefix: str) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        stream = enterprise_stream(cmd.uscc)
        exists = await ctx.stream_version(stream) != NO_STREAM
        events = domain.decide_register_enterprise(exists, cmd, province_prefix=province_prefix)
        await ctx.append(stream, NO_STREAM, events)
        return msgspec.to_builtins(await get_enterprise(ctx.conn, cmd.uscc))
    return handler


def register_investor(cmd: domain.RegisterInvestor) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        investor_id = new_id("INV", ctx.next_position)
        events = domain.decide_register_investor(investor_id, cmd)
        await ctx.append(investor_stream(investor_id), NO_STREAM, events)
        return msgspec.to_builtins(await get_investor(ctx.conn, investor_id))
    return handler


def open_account(investor_id: str, cmd: domain.OpenAccount) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        await get_investor(ctx.conn, investor_id)
        known = {r["investor_id"] for r in await ctx.conn.fetch(
            "SELECT investor_id FROM investor WHERE investor_id = ANY($1::text[])", cmd.beneficial_owners)}
        account_id = new_id("ACC", ctx.next_position)
        events = domain.decide_open_account(account_id, investor_id, cmd, known)
        await ctx.append(account_stream(account_id), NO_STREAM, events)
        return msgspec.to_builtins(await get_account(ctx.conn, account_id))
    return handler


def _account_change(account_id: str, decide: Any) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        account = await _account_state(ctx.conn, account_id)
        stream = account_stream(account_id)
        version = await ctx.stream_version(stream)
        events = await decide(ctx, account)
        await ctx.append(stream, version, events)
        return msgspec.to_builtins(await get_account(ctx.conn, account_id))
    return handler


def freeze_account(account_id: str, cmd: domain.FreezeAccount) -> Handler:
    async def decide(ctx: WriteContext, account: AccountState) -> list:
        return domain.decide_freeze_account(account, cmd, ctx.business_date)
    return _account_change(account_id, decide)


def thaw_account(account_id: str, cmd: domain.ThawAccount) -> Handler:
    async def decide(ctx: WriteContext, account: AccountState) -> list:
        return domain.decide_thaw_account(account, cmd, ctx.business_date)
    return _account_change(account_id, decide)


def close_account(account_id: str, cmd: domain.CloseAccount) -> Handler:
    async def decide(ctx: WriteContext, account: AccountState) -> list:
        return domain.decide_close_account(account, cmd, await units_held(ctx.conn, account_id), ctx.business_date)
    return _account_change(account_id, decide)


def grant_qualification(investor_id: str, cmd: domain.GrantQualification,
                        thresholds: QualificationThresholds) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        await get_investor(ctx.conn, investor_id)
        stream = investor_stream(investor_id)
        version = await ctx.stream_version(stream)
        sequence = 1 + await ctx.conn.fetchval(
            "SELECT count(*) FROM qualification WHERE investor_id = $1", investor_id)
        await ctx.append(stream, version, domain.decide_grant_qualification(investor_id, sequence, cmd, thresholds))
        return msgspec.to_builtins((await qualifications(ctx.conn, investor_id))[sequence - 1])
    return handler


def revoke_qualification(investor_id: str, sequence: int, cmd: domain.RevokeQualification) -> Handler:
    async def handler(ctx: WriteContext) -> dict[str, Any]:
        await get_investor(ctx.conn, investor_id)
        statuses = await qualification_statuses(ctx.conn, investor_id)
        status = statuses[sequence - 1] if 1 <= sequence <= len(statuses) else None
        stream = investor_stream(investor_id)
        version = await ctx.stream_version(stream)
        await ctx.append(stream, version, domain.decide_revoke_qualification(status, investor_id, sequence, cmd))
        return msgspec.to_builtins((await qualifications(ctx.conn, investor_id))[sequence - 1])
    return handler
