"""create_app(settings): the Litestar application — controllers, error handling, lifespan. No import-time effects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware

from registry import __version__
from registry.access.policy import authorize
from registry.access.tokens import TokenService, load_or_create_key
from registry.db.database import Database
from registry.eventlog.api import EventController
from registry.eventlog.model import EventMeta
from registry.health.api import HealthController
from registry.health.metrics import Metrics, MetricsController
from registry.approvals.api import ApprovalController
from registry.audit.api import AuditController, CheckpointController
from registry.audit.checkpoint import CheckpointSigner
from registry.audit.checkpoint import load_or_create_key as load_checkpoint_key
from registry.audit.store import sign_checkpoints_periodically
from registry.calendar.api import CalendarController
from registry.calendar.service import ensure_seeded
from registry.parties.api import AccountController, EnterpriseController, InvestorController, ThresholdController
from registry.http.allow import HeadAsGet, allow_every_method
from registry.http.body import StrictRequest
from registry.http.nul import RefuseNulMiddleware
from registry.http.openapi import RouteCatalog, openapi_config
from registry.http.problems import EXCEPTION_HANDLERS
from registry.http.read_position import ReadPositionMiddleware
from registry.http.root import entrance
from registry.http.request_id import RequestIdMiddleware, add_request_id_header
from registry.settings import Settings
from registry.web.pages import TEMPLATES, PageController
from registry.web.security import PageFormProtection, add_page_headers, csrf_secret, form_protection_config
from registry.warrants.api import EnterpriseWarrantController, PositionController, WarrantSeriesController
from registry.exports.api import EnterpriseExportController, RegistrationRecordController
from registry.listing.api import EnterpriseListingController, ListingController, RulebookController
from registry.valuation.api import PortfolioValuationController, SeriesValuationController, ValuationController
from registry.warrants.service import expire_due

log = logging.getLogger(__name__)

CONTROLLERS = [
    entrance, HealthController, MetricsController, EventController, EnterpriseController, InvestorController,
    AccountController,
    ApprovalController, CalendarController, ThresholdController,
    WarrantSeriesController, EnterpriseWarrantController, PositionController,
    AuditController, CheckpointController,  # the regulator's proofs and signed tree heads
    SeriesValuationController, ValuationController, PortfolioValuationController,
    EnterpriseListingController, RulebookController, ListingController,
    EnterpriseExportController, RegistrationRecordController,
    PageController,
]


async def sweep_expiries(db: Database, every_seconds: float) -> None:
    """Expire series whose window closed — at start (also windows that closed while we were down) and
    then periodically. Each expiry is decided in the writer, so it happens exactly once."""
    meta = EventMeta(actor="system", role="system", command="ExpireSeries")
    while True:
        try:
            await db.writer.execute(expire_due(), meta)  # type: ignore[union-attr]
        except Exception:  # keep sweeping; the next round retries
            log.exception("expiry sweep failed")
        await asyncio.sleep(every_seconds)


def create_app(settings: Settings, *, dsn: str | None = None, database: Database | None = None,
               embedded: object | None = None) -> Litestar:
    """The service. Pass an open `database` (tests) or a `dsn` the app opens and closes itself; `embedded`
    is the embedded PostgreSQL server the service runs on, if any (its restarts are a metric)."""
    if (dsn is None) == (database is None):
        raise ValueError("give exactly one of dsn or database")
    owned = database is None
    token_key = load_or_create_key(settings.data_dir, settings.token_key)
    tokens = TokenService(token_key)
    checkpoint_signer = CheckpointSigner(load_checkpoint_key(settings.data_dir, settings.checkpoint_key),
                                         origin=settings.market_origin)
    db = database if database is not None else Database(dsn, settings)  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.watch(db, embedded)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if owned:
            await db.open()
            metrics.watch(db, embedded)  # the writer exists from now on
            await ensure_seeded(db.writer)  # type: ignore[arg-type]
        background = [
            asyncio.create_task(sweep_expiries(db, settings.expiry_sweep_seconds)),
            asyncio.create_task(sign_checkpoints_periodically(db, checkpoint_signer,
                                                              settings.checkpoint_interval_seconds)),
        ] if owned else []
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            if owned:
                await db.close()

    routes = RouteCatalog()
    app = Litestar(
        route_handlers=CONTROLLERS,
        state=State({"db": db, "settings": settings, "tokens": tokens, "checkpoint_signer": checkpoint_signer,
                     "metrics": metrics}),
        guards=[authorize],
        lifespan=[lifespan],
        middleware=[metrics.middleware(), RequestIdMiddleware, RefuseNulMiddleware, ReadPositionMiddleware,
                    DefineMiddleware(PageFormProtection, config=form_protection_config(csrf_secret(token_key)),
                                     settings=settings)],
        before_send=[add_request_id_header, add_page_headers, allow_every_method],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        request_max_body_size=settings.max_body_bytes,
        request_class=StrictRequest,
        template_config=TEMPLATES,
        plugins=[routes],
        openapi_config=openapi_config(
            routes,
            title="registry — 区域性股权市场登记系统",
            version=__version__,
            description=(
                "System of record for a regional equity market: the listing pipeline "
                "(孵化层 → 规范层 → 培育层 → 上市后备库 → 新三板 → 北交所) and the 认股权 (stock warrant) registry. "
                "Every fact is an event in an append-only, hash-chained log. Errors are RFC 9457 problems "
                "whose `type` is `urn:registry:problem:<code>`."
            ),
        ),
        debug=False,
    )
    app.asgi_handler = HeadAsGet(app.asgi_handler)
    return app


__all__ = ["create_app"]
