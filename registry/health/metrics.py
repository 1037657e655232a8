"""Prometheus metrics at `/metrics`: requests by route template, the writer's batches, the log and its checkpoints.

Labels never carry ids, subjects or paths as sent: a request is counted under its route's template
(`/warrant-series/{code}/transfers`), so the number of series is the same however many series exist.
Requests that match no route are not counted (the router answers them before any middleware runs).

Who may read it: anyone who can reach the port, unless `REGISTRY_METRICS_TOKEN` is set; then a scrape
must send `Authorization: Bearer <that token>` (Prometheus' `authorization` setting), because the API
port — and so `/metrics` — may be reachable from outside the cluster through an ingress.

Each app has its own collector registry (several apps live in one test process). What the database
knows (head position, latest checkpoint) is read once per scrape, not kept up to date per request.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hmac
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from registry.access.policy import public
from registry.audit import store as audit_store
from registry.errors import Unauthenticated
from registry.eventlog import store

log = logging.getLogger(__name__)

PATH = "/metrics"
TEXT_FORMAT = "text/plain; version=0.0.4"
"""Prometheus' text format, which every scraper reads (Litestar adds the charset)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BOUND_LABELS = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """One app's metrics: per-request counters, the writer's batch histograms, and scrape-time readings."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.batch_size = Histogram("registry_writer_batch_size", "Commands the single writer committed in one batch",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.commit_latency = Histogram("registry_writer_commit_seconds",
                                        "Time from a writer batch's start to its commit", buckets=LATENCY_BUCKETS,
                                        registry=self.registry)
        self.requests = RequestCollector()
        self.service = ServiceCollector()
        self.registry.register(self.requests)
        self.registry.register(self.service)

    def observe_batch(self, commands: int, seconds: float) -> None:
        """The writer's hook, called after every committed batch."""
        self.batch_size.observe(commands)
        self.commit_latency.observe(seconds)

    def watch(self, db: Any, embedded: Any = None) -> None:
        """Read the writer's queue and counters (and the embedded server's restarts) at each scrape."""
        self.service.db = db
        self.service.embedded = embedded
        if db.writer is not None:
            db.writer.on_batch = self.observe_batch

    def middleware(self) -> DefineMiddleware:
        return DefineMiddleware(RequestMetricsMiddleware, requests=self.requests)


class RequestCollector(Collector):
    """Requests by (method, route template, status): a latency sum and bucket counts in a plain list each.

    The per-request work is a dict lookup, a bisection and two additions — no label resolution, no lock
    (requests are answered on the event loop's one thread, which also serves the scrape). The families
    are built when Prometheus scrapes.
    """

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, int], list[float]] = {}
        """(method, route, status) → [latency sum, count in bucket 0, …, count above the last bound]."""

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        cell = self.cells.get((method, route, status))
        if cell is None:
            cell = self.cells[(method, route, status)] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        cell[0] += seconds
        cell[1 + bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily("registry_http_requests", "HTTP requests answered, by route template and status",
                                       labels=("method", "route", "status"))
        latency = HistogramMetricFamily("registry_http_request_duration_seconds",
                                        "Time to answer an HTTP request, by route template", labels=("method", "route"))
        by_route: dict[tuple[str, str], list[float]] = {}
        for (method, route, status), cell in sorted(self.cells.items()):
            requests.add_metric((method, route, str(status)), sum(cell[1:]))
            total = by_route.setdefault((method, route), [0.0] * len(cell))
            for i, v in enumerate(cell):
                total[i] += v
        for (method, route), total in by_route.items():
            cumulative = list(itertools.accumulate(total[1:]))
            latency.add_metric((method, route), list(zip(_BOUND_LABELS, cumulative)), sum_value=total[0])
        yield requests
        yield latency


class ServiceCollector(Collector):
    """Values read when Prometheus scrapes: the writer's queue and counters, the log head and checkpoint age."""

    def __init__(self) -> None:
        self.db: Any = None
        self.embedded: Any = None
        self.log_size: int | None = None
        self.checkpoint: tuple[int, dt.datetime] | None = None
        self.database_up = False

    async def refresh(self) -> None:
        """Read the log head and the latest signed checkpoint (two index lookups)."""
        try:
            async with self.db.primary() as conn:
                self.log_size = (await store.head(conn))[0]
                latest = await audit_store.latest_checkpoint(conn)
        except Exception as exc:  # a scrape still answers, saying the database is down
            log.warning("metrics: the database is not reachable: %s", exc)
            self.database_up = False
            return
        self.database_up = True
        self.checkpoint = None if latest is None else (latest.tree_size, latest.signed_at)

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("registry_database_up", "Whether the last scrape reached the database",
                                value=1 if self.database_up else 0)
        writer = None if self.db is None else self.db.writer
        if writer is not None:
            yield GaugeMetricFamily("registry_writer_queue_depth", "Commands waiting for the single writer",
                                    value=writer.queue_depth)
            yield CounterMetricFamily("registry_writer_reconnects", "Times the writer opened a new database session",
                                      value=getattr(writer, "reconnects", 0))
        replica = getattr(self.db, "replica", None)
        if replica is not None:
            yield GaugeMetricFamily("registry_read_replica_up", "Whether the read replica answered the last read "
                                    "that tried it", value=0 if replica.unavailable else 1)
            yield CounterMetricFamily("registry_read_replica_fallbacks", "Reads the primary answered because the "
                                      "replica could not be reached or had not replayed Min-Position in time",
                                      value=replica.fallbacks)
        if self.embedded is not None:
            yield CounterMetricFamily("registry_embedded_postgres_restarts",
                                      "Times the embedded PostgreSQL was restarted after it stopped",
                                      value=getattr(self.embedded, "restarts", 0))
        if self.database_up and self.log_size is not None:
            yield GaugeMetricFamily("registry_log_head_position", "Position of the last committed event (-1: empty)",
                                    value=self.log_size - 1)
            if self.checkpoint is not None:
                size, signed_at = self.checkpoint
                # checkpoints are stamped with the market's clock (the writer's): their age is measured on it too
                now = writer.clock() if writer is not None else dt.datetime.now(dt.timezone.utc)
                age = (now - signed_at).total_seconds()
                yield GaugeMetricFamily("registry_checkpoint_age_seconds", "Age of the latest signed checkpoint",
                                        value=max(age, 0.0))
                yield GaugeMetricFamily("registry_checkpoint_unsigned_events",
                                        "Events committed after the latest signed checkpoint",
                                        value=self.log_size - size)


class RequestMetricsMiddleware:
    """Counts every routed request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, requests: RequestCollector) -> None:
        self.app = app
        self.observe = requests.observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # a response never started is what the client sees as a failure

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.observe(scope["method"], scope.get("path_template", "?"), status,  # type: ignore[arg-type]
                         time.perf_counter() - started)


class MetricsController(Controller):
    path = PATH
    tags = ["health"]

    @get("", summary="Prometheus metrics (anonymous unless REGISTRY_METRICS_TOKEN is set)", opt=public(),
         include_in_schema=False)
    async def metrics(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        expected = state.settings.metrics_token
        if expected:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
                raise Unauthenticated("metrics need the scrape token: Authorization: Bearer <REGISTRY_METRICS_TOKEN>")
        metrics: Metrics = state.metrics
        await metrics.service.refresh()
        return Response(generate_latest(metrics.registry), media_type=TEXT_FORMAT)
