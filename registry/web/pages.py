"""The pages: sign in with the same bearer token as the API, then see what your role may see.

The token is kept in an HttpOnly cookie that is honoured only for GET requests, so a page can
read but a forged cross-site form can never write. Scoping is the API's: the same policies,
the same services.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.plugins.jinja import JinjaTemplateEngine

from registry.access.policy import READ_ALL, TOKEN_COOKIE, allow, identity_of, public
from registry.access.tokens import Role
from registry.approvals import service as approvals
from registry.audit import merkle
from registry.audit import store as audit_store
from registry.clock import business_date
from registry.errors import BadRequest, Forbidden, NotFound, RegistryError, Unauthenticated
from registry.eventlog import store
from registry.http.pagination import MAX_POSITION, position_cursor
from registry.listing import service as listing
from registry.parties import service as parties
from registry.warrants import service as warrants

TEMPLATES = TemplateConfig(directory=Path(__file__).parent / "templates", engine=JinjaTemplateEngine)
HOME_LINKS = {
    Role.investor: [("/ui/positions", "我的持仓", "my positions")],
    Role.operator: [("/ui/approvals", "待复核事项", "awaiting a second approval"),
                    ("/ui/events", "事件浏览", "event browser")],
    Role.regulator: [("/ui/events", "事件浏览", "event browser"),
                     ("/ui/audit", "完整性与证明", "integrity, checkpoints and proofs")],
    Role.enterprise: [("/ui/enterprise", "本企业", "my enterprise")],
}


def _page(name: str, title_zh: str, title_en: str, request: Request | None, status: int = 200,
          **context: Any) -> Template:
    identity = None
    if request is not None:
        try:
            identity = identity_of(request)
        except Unauthenticated:
            identity = None
    return Template(template_name=name, status_code=status,
                    context={"title_zh": title_zh, "title_en": title_en, "identity": identity, **context})


def _unauthenticated(request: Request, exc: Exception) -> Response[Any]:
    return Redirect(path="/ui/sign-in")


def _refused(request: Request, exc: RegistryError) -> Template:
    status = 403 if isinstance(exc, Forbidden) else 400 if isinstance(exc, BadRequest) else 422
    if isinstance(exc, RegistryError) and exc.code.endswith("not_found"):
        status = 404
    return _page("sign_in.html.j2", "无法显示", "cannot show this page", request, status=status,
                 problem=f"{exc.title} — {exc.detail}")


class PageController(Controller):
    path = "/ui"
    tags = ["pages"]
    include_in_schema = False
    exception_handlers = {Unauthenticated: _unauthenticated, RegistryError: _refused}  # noqa: RUF012

    @get("/sign-in", opt=public())
    async def sign_in_form(self, request: Request) -> Template:
        return _page("sign_in.html.j2", "登录", "sign in", None)

    @post("/sign-in", opt=public(), status_code=303)
    async def sign_in(self, state: State,
                      data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Response[Any]:
        token = (data.get("token") or "").strip()
        try:
            state.tokens.verify(token)
        except Unauthenticated as exc:
            # the form is redrawn with the reason; 400: what was pasted is not a usable token
            return _page("sign_in.html.j2", "登录", "sign in", None, status=400, problem=exc.detail)
        return Redirect(path="/ui/", status_code=303, cookies=[
            Cookie(key=TOKEN_COOKIE, value=token, httponly=True, samesite="strict", path="/ui")])

    @get("/sign-out", opt=public())
    async def sign_out(self) -> Response[Any]:
        return Redirect(path="/ui/sign-in", cookies=[Cookie(key=TOKEN_COOKIE, value="", max_age=0, path="/ui")])

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
        async with state.db.connection() as conn:
            items = await warrants.positions(conn, investor, after=None, limit=500,
                                             today=business_date(dt.datetime.now(dt.timezone.utc)),
                                             stale_after_days=state.settings.valuation_stale_after_days)
        return _page("positions.html.j2", "持仓", "positions", request, investor_id=investor, positions=items)

    @get("/enterprise", opt=allow(*READ_ALL, Role.enterprise))
    async def enterprise(self, request: Request, state: State,
                         uscc: Annotated[str | None, QueryParameter(description="enterprise USCC")] = None) -> Template:
        identity = identity_of(request)
        if identity.role is Role.enterprise:
            uscc = identity.subject  # an enterprise sees itself, whatever the URL says
        if not uscc:
            raise BadRequest("name the enterprise: /ui/enterprise?uscc=…", field="uscc")
        today = business_date(state.db.writer.clock())
        async with state.db.connection() as conn:
            record = await parties.get_enterprise(conn, uscc)
            stage = await listing.stage_view(conn, uscc)
            next_step = await listing.next_step(conn, uscc, today)
            series = await warrants.list_series(conn, after=None, limit=500, target_uscc=uscc, status=None)
        return _page("enterprise.html.j2", "企业", "enterprise", request, enterprise=record, stage=stage,
                     next_step=next_step, series=series)

    @get("/events", opt=allow(*READ_ALL))
    async def events(self, request: Request, state: State,
                     after: Annotated[str | None, QueryParameter()] = None,
                     stream: Annotated[str | None, QueryParameter()] = None,
                     event_type: Annotated[str | None, QueryParameter(name="type")] = None,
                     actor: Annotated[str | None, QueryParameter()] = None) -> Template:
        filters = {"stream": stream or None, "type": event_type or None, "actor": actor or None}
        async with state.db.connection() as conn:
            items = await store.read_events(conn, after=position_cursor(after), stream=filters["stream"],
                                            event_type=filters["type"], actor=filters["actor"], limit=100)
        next_cursor = items[-1].position if len(items) == 100 else None
        return _page("events.html.j2", "事件浏览", "event browser", request, events=items, filters=filters,
                     next=next_cursor)

    @get("/audit", opt=allow(*READ_ALL))
    async def audit(self, request: Request, state: State,
                    start: Annotated[int, QueryParameter(name="from", ge=0, le=MAX_POSITION)] = 0,
                    to: Annotated[int | None, QueryParameter(ge=0, le=MAX_POSITION)] = None,
                    position: Annotated[int | None, QueryParameter(ge=0, le=MAX_POSITION)] = None) -> Template:
        signer = state.checkpoint_signer
        async with state.db.connection() as conn:
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

    @get("/approvals", opt=allow(Role.operator))
    async def approvals_queue(self, request: Request, state: State) -> Template:
        async with state.db.connection() as conn:
            items = await approvals.list_approvals(conn, after=None, limit=500, status="pending", action=None)
        return _page("approvals.html.j2", "待复核事项", "awaiting a second approval", request, approvals=items)
