"""The pages: sign in with the same bearer token as the API, then see what your role may see.

The token is kept in an HttpOnly cookie that is honoured only for GET requests, so a page can
read but a forged cross-site form can never write; the sign-in form itself carries a token
another site cannot forge (`registry.web.security`). Scoping is the API's: the same policies,
the same services.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.plugins.jinja import JinjaTemplateEngine

from registry.access.policy import READ_ALL, TOKEN_COOKIE, allow, ensure_own, identity_of, public
from registry.access.tokens import Role
from registry.approvals import service as approvals
from registry.audit import merkle
from registry.audit import store as audit_store
from registry.clock import SHANGHAI, business_date
from registry.errors import BadRequest, ForeignForm, NotFound, RegistryError, Unauthenticated
from registry.eventlog import store
from registry.http.pagination import MAX_POSITION, position_cursor
from registry.http.problems import EXCEPTION_HANDLERS
from registry.listing import service as listing
from registry.listing.domain import STAGE_NAMES, Stage
from registry.parties import service as parties
from registry.warrants import service as warrants
from registry.warrants.domain import SeriesNotFound
from registry.web import charts, holdings, reads
from registry.web.security import page_cookie

TEMPLATES = TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine)
STYLESHEET = (Path(__file__).parent / "static" / "pages.css").read_text(encoding="utf-8")
HOME_LINKS = {
    Role.investor: [("/ui/positions", "我的账户与持仓", "my accounts and positions")],
    Role.operator: [("/ui/approvals", "待复核事项", "awaiting a second approval"),
                    ("/ui/pipeline", "分层概览", "pipeline overview"),
                    ("/ui/series-attention", "需处理的认股权", "series needing action"),
                    ("/ui/events", "事件浏览", "event browser"),
                    ("/ui/audit", "完整性与证明", "integrity, checkpoints and proofs")],
    Role.regulator: [("/ui/events", "事件浏览", "event browser"),
                     ("/ui/audit", "完整性与证明", "integrity, checkpoints and proofs"),
                     ("/ui/pipeline", "分层概览", "pipeline overview"),
                     ("/ui/series-attention", "需处理的认股权", "series needing action")],
    Role.enterprise: [("/ui/enterprise", "本企业", "my enterprise")],
}
REFUSALS_ZH = {400: "请求有误", 403: "您无权查看此页面", 404: "没有找到", 409: "与当前状态冲突", 422: "业务规则不允许",
               ForeignForm.code: "此表单不是由本站页面提交的（或已失效），请重新打开登录页面",
               503: "数据库暂时无法访问，请稍后重试"}
FUNNEL_STAGES = (Stage.applied, Stage.incubation, Stage.standardisation, Stage.cultivation, Stage.listing_reserve,
                 Stage.neeq_application, Stage.neeq_base, Stage.neeq_innovation, Stage.bse_application,
                 Stage.bse_listed)


def _page(name: str, title_zh: str, title_en: str, request: Request | None, status: int = 200,
          **context: Any) -> Template:
    identity = None
    if request is not None:
        try:
            identity = identity_of(request)
        except Unauthenticated:
            identity = None
    links = HOME_LINKS[identity.role] if identity is not None else []
    return Template(template_name=name, status_code=status,
                    context={"title_zh": title_zh, "title_en": title_en, "identity": identity, "nav": links,
                             **context})


def _today(state: State) -> dt.date:
    return business_date(state.db.writer.clock())


def _date(value: str | None, field: str) -> dt.date | None:
    """A date from a form's date input (empty: none given)."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field} is a date, YYYY-MM-DD", field=field) from None


def _unauthenticated(request: Request, exc: Exception) -> Response[Any]:
    return Redirect(path="/ui/sign-in")


def _refused(request: Request, exc: Exception) -> Template:
    """The problem the API would answer for the same error (status, title, detail), drawn as a page."""
    handler = next(EXCEPTION_HANDLERS[kind] for kind in type(exc).__mro__ if kind in EXCEPTION_HANDLERS)
    problem = handler(request, exc).content
    status = problem["status"]
    return _page("refused.html.j2", "无法显示", "cannot show this page", request, status=status,
                 problem_zh=REFUSALS_ZH.get(problem["code"], REFUSALS_ZH.get(status, "无法完成请求")),
                 problem=f"{problem['title']} — {problem['detail']}")


class PageController(Controller):
    path = "/ui"
    tags = ["pages"]
    include_in_schema = False
    # every refusal a page can meet, including a query parameter of the wrong type or out of range
    exception_handlers = {Unauthenticated: _unauthenticated, RegistryError: _refused,  # noqa: RUF012
                          HTTPException: _refused, OverflowError: _refused, asyncpg.DataError: _refused}

    @get("/sign-in", opt=public())
    async def sign_in_form(self, request: Request) -> Template:
        return _page("sign_in.html.j2", "登录", "sign in", None)

    @get("/pages.css", opt=public(), media_type="text/css; charset=utf-8")
    async def stylesheet(self) -> str:
        return STYLESHEET

    @post("/sign-in", opt=public(), status_code=303)
    async def sign_in(self, request: Request, state: State,
                      data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response[Any]:
        token = (data.get("token") or "").strip()
        try:
            state.tokens.verify(token)
        except Unauthenticated as exc:
            # the form is redrawn with the reason; 400: what was pasted is not a usable token
            return _page("sign_in.html.j2", "登录", "sign in", None, status=400, problem=exc.detail)
        return Redirect(path="/ui/", status_code=303,
                        cookies=[page_cookie(request.scope, state.settings, TOKEN_COOKIE, token)])

    @get("/sign-out", opt=public())
    async def sign_out(self, request: Request, state: State) -> Response[Any]:
        return Redirect(path="/ui/sign-in",
                        cookies=[page_cookie(request.scope, state.settings, TOKEN_COOKIE, "", max_age=0)])

    @get("/", opt=allow(*Role))
    async def home(self, request: Request) -> Template:
        identity = identity_of(request)
        return _page("home.html.j2", "首页", "home", request, links=HOME_LINKS[identity.role])

    @get("/positions", opt=allow(*READ_ALL, Role.investor))
    async def positions(self, request: Request, state: State,
                        investor: Annotated[str | None, QueryParameter(description="investor id")] = None) -> Template:
        identity = identity_of(request)
        if identity.role is Role.investor:
            investor = identity.subject  # an investor sees its own positions, whatever the URL says
        if not investor:
            raise BadRequest("name the investor: /ui/positions?investor=INV…", field="investor")
        today = _today(state)
        async with state.db.connection() as conn:
            person = await parties.get_investor(conn, investor)
            accounts = await parties.list_accounts(conn, investor_id=investor, after=None, limit=500)
            items = await warrants.positions(conn, investor, after=None, limit=500, today=today,
                                             stale_after_days=state.settings.valuation_stale_after_days)
            options = await holdings.options_for(
                conn, ((p.code, p.account_id) for p in items), today=today,
                interval_days=state.settings.holding_interval_trading_days,
                t_plus_allowed=state.settings.holding_interval_t_plus_allowed)
        return _page("positions.html.j2", "账户与持仓", "accounts and positions", request, investor=person,
                     investor_id=investor, accounts=accounts, positions=items, options=options, today=today)

    @get("/holdings/{code:str}/{account_id:str}", opt=allow(*READ_ALL, own=(Role.investor,)))
    async def holding(self, request: Request, state: State, code: FromPath[str], account_id: FromPath[str]) -> Template:
        identity = identity_of(request)
        today = _today(state)
        async with state.db.connection() as conn:
            if identity.role is Role.investor:  # before any lookup: a refusal reveals nothing
                await warrants.ensure_holder_of_account(conn, identity.subject, account_id)
            series = await warrants.get_series(conn, code)
            account = await parties.get_account(conn, account_id)
            position = next((p for p in await warrants.positions(
                conn, account.investor_id, after=None, limit=500, today=today,
                stale_after_days=state.settings.valuation_stale_after_days)
                if p.code == code and p.account_id == account_id), None)
            options = await holdings.holding_options(
                conn, code, account_id, today=today, interval_days=state.settings.holding_interval_trading_days,
                t_plus_allowed=state.settings.holding_interval_t_plus_allowed)
            history = await reads.holding_history(conn, code, account_id)
        return _page("holding.html.j2", "持仓明细", "holding", request, series=series, account=account,
                     position=position, options=options, history=history, today=today)

    @get("/enterprise", opt=allow(*READ_ALL, Role.enterprise))
    async def enterprise(self, request: Request, state: State,
                         uscc: Annotated[str | None, QueryParameter(description="enterprise USCC")] = None,
                         as_of: Annotated[str | None, QueryParameter(description="cap table date")] = None,
                         ) -> Template:
        identity = identity_of(request)
        if identity.role is Role.enterprise:
            uscc = identity.subject  # an enterprise sees itself, whatever the URL says
        if not uscc:
            raise BadRequest("name the enterprise: /ui/enterprise?uscc=…", field="uscc")
        today = _today(state)
        day = _date(as_of, "as_of") or today
        async with state.db.connection() as conn:
            record = await parties.get_enterprise(conn, uscc)
            stage = await listing.stage_view(conn, uscc)
            next_step = await listing.next_step(conn, uscc, today)
            series = await warrants.list_series(conn, after=None, limit=500, target_uscc=uscc, status=None)
            table = await warrants.cap_table(conn, uscc, await store.position_at(conn, day, None))
            names = await reads.investor_names(conn, (line.holder_id for line in table.lines))
        label = {line.holder_id: line.holder_name or names.get(line.holder_id) or line.holder_id for line in table.lines}
        largest_first = sorted(table.lines, key=lambda line: (-line.fully_diluted, line.holder_id))
        chart = charts.cap_table_chart([charts.Holding(label=label[line.holder_id], shares=line.amount,
                                                       warrants=line.warrant_amount) for line in table.lines])
        return _page("enterprise.html.j2", "企业", "enterprise", request, enterprise=record, stage=stage,
                     next_step=next_step, series=series, cap_table=table, lines=largest_first, labels=label, chart=chart,
                     as_of=day,
                     percent=charts.percent)

    @get("/series/{code:str}", opt=allow(*READ_ALL, own=(Role.enterprise,)))
    async def series_register(self, request: Request, state: State, code: FromPath[str],
                              as_of: Annotated[str | None, QueryParameter(description="register date")] = None,
                              ) -> Template:
        identity = identity_of(request)
        day = _date(as_of, "as_of") or _today(state)
        async with state.db.connection() as conn:
            if identity.role is Role.enterprise:  # only series on itself; another's looks like a missing one
                ensure_own(identity, Role.enterprise, await warrants.series_target(conn, code) or "")
            series = await warrants.get_series(conn, code)
            try:
                register = await warrants.holder_register(conn, code, await store.position_at(conn, day, None))
            except SeriesNotFound:
                register = None  # not yet registered on that day
            names = await reads.investor_names(conn, (h for line in (register.lines if register else [])
                                                      for h in line.holders))
        return _page("series.html.j2", "持有人名册", "holder register", request, series=series, register=register,
                     names=names, as_of=day)

    @get("/pipeline", opt=allow(*READ_ALL))
    async def pipeline(self, request: Request, state: State,
                       as_of: Annotated[str | None, QueryParameter(description="overview date")] = None) -> Template:
        day = _date(as_of, "as_of") or _today(state)
        async with state.db.connection() as conn:
            overview = await listing.overview(conn, day)
        counts = {s.stage: s.enterprises for s in overview.stages}
        steps = [charts.FunnelStep(label_zh=STAGE_NAMES[s], label_en=str(s), at_stage=counts.get(s, 0),
                                   reached=sum(counts.get(t, 0) for t in FUNNEL_STAGES[i:]))
                 for i, s in enumerate(FUNNEL_STAGES)]
        off_path = [s for s in overview.stages if s.stage not in FUNNEL_STAGES]
        return _page("pipeline.html.j2", "分层概览", "pipeline overview", request, overview=overview,
                     chart=charts.funnel_chart(steps), off_path=off_path, as_of=day)

    @get("/series-attention", opt=allow(*READ_ALL))
    async def series_attention(self, request: Request, state: State,
                               days: Annotated[int, QueryParameter(ge=0, le=3650)] = 30) -> Template:
        today = _today(state)
        async with state.db.connection() as conn:
            items = await reads.series_needing_action(conn, today, days)
        return _page("attention.html.j2", "需处理的认股权", "series needing action", request, items=items, days=days,
                     today=today)

    @get("/events", opt=allow(*READ_ALL))
    async def events(self, request: Request, state: State,
                     after: Annotated[str | None, QueryParameter()] = None,
                     stream: Annotated[str | None, QueryParameter()] = None,
                     event_type: Annotated[str | None, QueryParameter(name="type")] = None,
                     actor: Annotated[str | None, QueryParameter()] = None,
                     since: Annotated[str | None, QueryParameter(description="from this date (Asia/Shanghai)")] = None,
                     until: Annotated[str | None, QueryParameter(description="up to this date, inclusive")] = None,
                     highlight: Annotated[int | None, QueryParameter(ge=0, le=MAX_POSITION)] = None) -> Template:
        filters = {"stream": stream or None, "type": event_type or None, "actor": actor or None,
                   "since": since or None, "until": until or None}
        start, end = _date(since, "since"), _date(until, "until")
        async with state.db.connection() as conn:
            items = await store.read_events(
                conn, after=position_cursor(after), stream=filters["stream"], event_type=filters["type"],
                actor=filters["actor"], limit=100,
                since=None if start is None else dt.datetime.combine(start, dt.time(), SHANGHAI),
                until=None if end is None else dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), SHANGHAI))
        next_cursor = items[-1].position if len(items) == 100 else None
        return _page("events.html.j2", "事件浏览", "event browser", request, events=items, filters=filters,
                     next=next_cursor, highlight=highlight)

    @get("/audit", opt=allow(*READ_ALL))
    async def audit(self, request: Request, state: State,
                    start: Annotated[int, QueryParameter(name="from", ge=0, le=MAX_POSITION)] = 0,
                    to: Annotated[int | None, QueryParameter(ge=0, le=MAX_POSITION)] = None,
                    position: Annotated[int | None, QueryParameter(ge=0, le=MAX_POSITION)] = None) -> Template:
        signer = state.checkpoint_signer
        async with state.db.primary() as conn:  # extends the Merkle tree: a write
            report = await audit_store.integrity(conn, start, to, signer)
            checkpoint = await audit_store.latest_checkpoint(conn)
            proof = None if position is None else await audit_store.inclusion_proof(conn, position)
        proof_ok = proof is not None and merkle.verify_inclusion(proof.leaf_hash, proof.position, proof.tree_size,
                                                                 proof.proof, proof.root_hash)
        return _page("audit.html.j2", "完整性与证明", "integrity, checkpoints and proofs", request, report=report,
                     checkpoint=checkpoint, vkey=signer.vkey, proof=proof, proof_ok=proof_ok, position=position)

    @get("/audit/checkpoint.txt", opt=allow(*READ_ALL), media_type="text/plain; charset=utf-8")
    async def checkpoint_file(self, state: State) -> str:
        async with state.db.connection() as conn:
            checkpoint = await audit_store.latest_checkpoint(conn)
        if checkpoint is None:
            raise NotFound("no checkpoint has been signed yet")
        return checkpoint.note

    @get("/audit/checkpoint-key.txt", opt=allow(*READ_ALL), media_type="text/plain; charset=utf-8")
    async def checkpoint_key(self, state: State) -> str:
        """The verifier key (C2SP vkey) that checks the checkpoints, for `registry verify --key`."""
        return state.checkpoint_signer.vkey + "\n"

    @get("/approvals", opt=allow(Role.operator))
    async def approvals_queue(self, request: Request, state: State) -> Template:
        async with state.db.connection() as conn:
            items = await approvals.list_approvals(conn, after=None, limit=500, status="pending", action=None)
        return _page("approvals.html.j2", "待复核事项", "awaiting a second approval", request, approvals=items)
