"""`registry bench transfers`: validated warrant transfers over HTTP, with baselines from the same run.

A throwaway cluster is filled with a log of at least a million events and a market of thousands
of qualified holders across many series (200 holders each, the legal cap); the real `registry
serve` process then takes authenticated transfer requests from a small keep-alive HTTP client.
Beside the figures it prints, measured in the same run: the same server's trivial endpoint, and
pgbench's serialized hash-chained append.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.access.tokens import Role, TokenService
from registry.approvals import domain as approvals_domain
from registry.approvals import service as approvals
from registry.audit import store as audit_store
from registry.bench.cluster import migrated_cluster, percentile, say
from registry.bench.eventlog import CHAIN, _prepare_scripts, _SETUP_SQL, PGBENCH_DATABASE, run_pgbench
from registry.calendar.service import ensure_seeded, publish_weekdays_through
from registry.clock import business_date, market_moment
from registry.db.database import APP_ROLE, Database
from registry.db.embedded import DATABASE, SUPERUSER
from registry.eventlog.model import EventMeta, NewEvent
from registry.eventlog.store import verify_log
from registry.parties import domain as parties
from registry.parties import service as party_service
from registry.parties.qualification import QualificationCategory
from registry.parties.uscc import uscc_check_character
from registry.settings import Settings

OP1 = EventMeta(actor="bench-op-1", role="operator", command="bench")
OP2 = EventMeta(actor="bench-op-2", role="operator", command="bench")
DIGEST = "0" * 64
UNITS_PER_HOLDER = 10_000
TARGET = "91120116MA05BENCH"[:17]
TARGET = TARGET + uscc_check_character(TARGET)


async def _gather_chunks(coros: Sequence, chunk: int = 256) -> list:
    out = []
    for i in range(0, len(coros), chunk):
        out += await asyncio.gather(*coros[i:i + chunk])
    return out


async def prefill(db: Database, events: int) -> None:
    """Fill the log with `events` small events from 64 concurrent writers (all guarantees on)."""
    done = 0
    started = time.perf_counter()

    async def writer(w: int, count: int) -> None:
        nonlocal done
        for version in range(count):
            await db.writer.append(f"bench-filler-{w}", version - 1,
                                   [NewEvent(type="bench.filler", data={"w": w, "n": version})], OP1)
            done += 1
            if done % 100_000 == 0:
                say(f"  prefill: {done:,} events ({done / (time.perf_counter() - started):,.0f}/s)")

    per = events // 64
    await asyncio.gather(*(writer(w, per + (1 if w < events % 64 else 0)) for w in range(64)))


async def build_market(db: Database, holders: int, settings: Settings) -> dict[str, list[str]]:
    """One target; `holders` qualified investors with accounts; series of 200 holders each, issued
    ten trading days ago so the 5-trading-day interval does not refuse the first sales."""
    await ensure_seeded(db.writer)
    today = business_date(db.writer.clock())
    calendar = await publish_weekdays_through(db, today + dt.timedelta(days=30), requester=OP1,
                                              approver=OP2, reason="bench")
    issued_on = calendar.add_trading_days(today, -10)
    with db.writer.clock_at(market_moment(issued_on)):
        await db.writer.execute(party_service.register_enterprise(parties.RegisterEnterprise(
            uscc=TARGET, name="天津压测科技股份有限公司", legal_form=parties.LegalForm.joint_stock,
            registered_capital_fen=10**11, industry="软件"), province_prefix=settings.province_prefix), OP1)

        async def holder(i: int) -> tuple[str, str]:
            investor = (await db.writer.execute(party_service.register_investor(parties.RegisterInvestor(
                kind=parties.InvestorKind.natural_person, name=f"压测投资者{i}", identity_document_digest=DIGEST)),
                OP1)).response["investor_id"]
            await db.writer.execute(party_service.grant_qualification(investor, parties.GrantQualification(
                category=QualificationCategory.NATURAL_PERSON, evidence_digest=DIGEST,
                valid_from=dt.date(2020, 1, 1), figures=parties.QualificationFigures(
                    financial_assets_fen=10**8, investment_experience_years=5)), settings.qualification_thresholds),
                OP1)
            account = (await db.writer.execute(party_service.open_account(investor, parties.OpenAccount()), OP1)
                       ).response["account_id"]
            return investor, account

        pairs = await _gather_chunks([holder(i) for i in range(holders)])
        say(f"  {holders:,} qualified investors with accounts")
        market: dict[str, list[str]] = {}
        investors: dict[str, str] = {}
        for start in range(0, holders, 200):
            group = pairs[start:start + 200]
            terms = {"target_uscc": TARGET, "name": f"压测认股权{start // 200 + 1}", "underlying": "shares",
                     "entitlement_per_unit": "1", "exercise_price_per_unit": "5",
                     "valid_from": issued_on.isoformat(), "valid_until": (today + dt.timedelta(days=365)).isoformat(),
                     "exercise_method": "capital_increase", "transfer_modes": ["private_agreement"],
                     "allocations": [{"account_id": a, "units": UNITS_PER_HOLDER} for _, a in group]}
            request = approvals_domain.RequestApproval(action="warrant.register", payload=terms, reason="bench")
            approval = (await db.writer.execute(approvals.request_approval(request), OP1)).response["approval_id"]
            code = (await db.writer.execute(approvals.approve(approval, approvals_domain.Decide()), OP2)
                    ).response["outcome"]["code"]
            market[code] = [a for _, a in group]
            investors.update({a: i for i, a in group})
        say(f"  {len(market)} warrant series of up to 200 holders each")
        market["_investors"] = list(investors.values())
        return market


# -- a small keep-alive HTTP/1.1 client: cheap enough not to be what is measured --------------


class Client:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def http_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", *(f"{k}: {v}" for k, v in headers.items())]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Round(msgspec.Struct, kw_only=True):
    name: str
    clients: int
    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]


async def load(ports: int | Sequence[int], clients: int, seconds: float, make_request, name: str) -> Round:
    """`clients` connections, each sending requests back to back for `seconds`; with several
    service instances (`ports`), the connections are spread over them in turn."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds

    async def connection(c: int) -> None:
        client = Client("127.0.0.1", ports[c % len(ports)])
        n = 0
        try:
            while time.perf_counter() < deadline:
                raw = make_request(c, n)
                t = time.perf_counter()
                status, _ = await client.request(raw)
                latencies.append(time.perf_counter() - t)
                statuses[status] += 1
                n += 1
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(c) for c in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return Round(name=name, clients=clients, requests=len(latencies), seconds=elapsed,
                 rate=len(latencies) / elapsed, p50_ms=percentile(latencies, 50) * 1000,
                 p99_ms=percentile(latencies, 99) * 1000, statuses=dict(statuses))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(base: Path, owner_dsn: str, app_dsn: str, key_pem: str,
                 name: str = "serve") -> tuple[subprocess.Popen, int]:
    """`registry serve` on a free port (folder and log `base/<name>`), once it answers ready."""
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(DATABASE_URL=app_dsn, DATABASE_OWNER_URL=owner_dsn, REGISTRY_TOKEN_KEY=key_pem,
               REGISTRY_DATA_DIR=str(base / name), REGISTRY_EXPIRY_SWEEP_SECONDS="3600")
    log = open(base / f"{name}.log", "w")  # noqa: SIM115 - the process writes it until stopped
    proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start; see {base / f'{name}.log'}")
        time.sleep(0.2)


async def measure(events: int, holders: int, seconds: float, clients: Sequence[int], base: Path,
                  instances: int = 1) -> dict:
    """The rounds on one service instance; with `instances` > 1, the transfer round again on that many
    instances sharing the database (each with its own writer), in the same run."""
    settings = Settings.from_env()
    results: dict = {"rounds": [], "facts": {}}
    procs: list[subprocess.Popen] = []
    async with migrated_cluster(base, settings) as server:
        try:
            owner_dsn, app_dsn = server.dsn(SUPERUSER, DATABASE), server.dsn(APP_ROLE, DATABASE)

            say("pgbench baseline: serialized hash-chained append, 16 clients ...")
            server.psql(f"CREATE DATABASE {PGBENCH_DATABASE}", database="postgres")
            server.psql(_SETUP_SQL, database=PGBENCH_DATABASE)
            scripts = _prepare_scripts(base)
            chain = await asyncio.to_thread(run_pgbench, server, scripts[CHAIN], CHAIN, 16, max(1, round(seconds)))
            results["pgbench_chain_tps"] = chain.tps

            async with Database(app_dsn, settings) as db:
                say(f"building the market: {holders:,} holders ...")
                market = await build_market(db, holders, settings)
                say(f"prefilling the log to {events:,} events ...")
                async with db.primary() as conn:
                    have = await conn.fetchval("SELECT count(*) FROM event")
                await prefill(db, max(0, events - have))
                say("extending the Merkle tree over the prefilled log (a running service keeps it current) ...")
                async with db.primary() as conn:
                    await audit_store.extend(conn)
            investors = market.pop("_investors")
            say("VACUUM ANALYZE and CHECKPOINT, so autovacuum of the fresh million rows does not run during the rounds")
            server.psql("VACUUM (ANALYZE)")
            server.psql("CHECKPOINT")

            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
            tokens = TokenService(key)
            say("starting `registry serve` against the filled database ...")
            proc, port = await asyncio.to_thread(start_server, base, owner_dsn, app_dsn, pem)
            procs.append(proc)
            operator = f"Bearer {tokens.issue('bench-op-1', Role.operator)}"
            codes = list(market)
            sequence = iter(range(10**12))

            def trivial(c: int, n: int) -> bytes:
                return http_request("GET", "/health/live", {})

            def transfer(c: int, n: int) -> bytes:
                code = random.choice(codes)
                accounts = market[code]
                half = len(accounts) // 2  # first half only sells, second half only buys: no interval refusals
                body = msgspec.json.encode({"from_account": random.choice(accounts[:half]),
                                            "to_account": random.choice(accounts[half:]), "units": 1,
                                            "mode": "private_agreement", "price_per_unit": "1.00",
                                            "consideration_fen": 100})
                return http_request("POST", f"/warrant-series/{code}/transfers",
                                    {"Authorization": operator, "Idempotency-Key": f"bench-{next(sequence)}"}, body)

            sample = random.sample(investors, min(500, len(investors)))
            investor_tokens = {i: f"Bearer {tokens.issue(i, Role.investor, ttl=dt.timedelta(hours=2))}" for i in sample}

            def positions(c: int, n: int) -> bytes:
                investor = random.choice(sample)
                return http_request("GET", f"/investors/{investor}/positions",
                                    {"Authorization": investor_tokens[investor]})

            # The writer remembers the series and accounts it has seen; a service that has run for a while has
            # its active accounts in memory. The first round meets 10,000 accounts cold: shown, not judged.
            results["rounds"].append(await load(port, 32, seconds, transfer, "warm-up: transfers, cold start"))
            say(f"  warm-up transfers (cold start), 32 clients: {results['rounds'][-1].rate:,.0f} req/s")
            for count in clients:
                results["rounds"].append(await load(port, count, seconds, trivial, "trivial GET /health/live"))
                say(f"  trivial, {count} clients: {results['rounds'][-1].rate:,.0f} req/s")
                results["rounds"].append(await load(port, count, seconds, transfer, "transfer POST (validated)"))
                say(f"  transfers, {count} clients: {results['rounds'][-1].rate:,.0f} req/s")
            results["rounds"].append(await load(port, 32, seconds, positions, "positions GET (investor)"))
            if instances > 1:
                ports = [port]
                for i in range(2, instances + 1):
                    say(f"starting instance {i} of `registry serve` on the same database ...")
                    more, more_port = await asyncio.to_thread(start_server, base, owner_dsn, app_dsn, pem, f"serve-{i}")
                    procs.append(more)
                    ports.append(more_port)
                count = max(clients)
                for n, where in ((1, [port]), (instances, ports)):  # one instance again, then all: same conditions
                    results["rounds"].append(await load(where, count, seconds, transfer,
                                                        f"transfer POST, {n} instance{'s' if n > 1 else ''}"))
                    say(f"  transfers on {n} instance(s), {count} clients: {results['rounds'][-1].rate:,.0f} req/s")
            async with Database(app_dsn, settings) as db, db.primary() as conn:
                results["log_size"] = await conn.fetchval("SELECT count(*) FROM event")
                say("verifying the whole log's chain ...")
                results["verify"] = (await verify_log(conn)).ok
            return results
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def format_results(r: dict, clients: Sequence[int]) -> str:
    lines = [f"log: {r['log_size']:,} events; chain verified: {r['verify']}",
             f"baseline pgbench serialized hash-chain append (16 clients): {r['pgbench_chain_tps']:,.0f} tps", "",
             f"{'measurement':<30} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses"]
    for x in r["rounds"]:
        lines.append(f"{x.name:<30} {x.clients:>7} {x.rate:>9,.0f} {x.p50_ms:>8.2f} {x.p99_ms:>8.2f}  {x.statuses}")
    lines.append("")
    trivial = {x.clients: x for x in r["rounds"] if x.name.startswith("trivial")}
    verdicts = []
    for x in r["rounds"]:
        if x.name.startswith("transfer POST (validated)"):
            ok = x.statuses.get(201, 0) / x.seconds
            t = trivial[x.clients]
            lines.append(f"transfers at {x.clients} clients: {ok:,.0f} accepted/s = {ok / t.rate:.1%} of the trivial "
                         f"endpoint ({t.rate:,.0f}/s), {ok / r['pgbench_chain_tps']:.2f}x pgbench's serialized append")
            verdicts.append(ok >= 1500 and ok >= 0.10 * t.rate)
    shared = {x.name.split(", ")[1]: x.statuses.get(201, 0) / x.seconds
              for x in r["rounds"] if x.name.startswith("transfer POST, ")}
    if len(shared) == 2:
        (one, single), (many, several) = shared.items()
        lines.append(f"transfers on {many} sharing the database: {several:,.0f} accepted/s against {single:,.0f}/s "
                     f"on {one} in the same run ({several / single:.2f}x)")
    pos = [x for x in r["rounds"] if x.name.startswith("positions")][0]
    lines.append(f"positions query p99: {pos.p99_ms:.2f} ms at {r['log_size']:,} events")
    holds = all(verdicts) and pos.p99_ms <= 20
    lines.append(f"TARGET (>= 1,500 validated transfers/s and >= 10% of the trivial endpoint; positions p99 <= 20 ms): "
                 f"{'HOLDS' if holds else 'NOT MET'}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    clients = [int(x) for x in args.clients.split(",")]
    base = Path(tempfile.mkdtemp(prefix="registry-bench-transfers-"))
    try:
        # The load generator shares the two cores with the server: libuv's loop keeps its own cost down.
        import uvloop

        results = uvloop.run(measure(args.events, args.holders, args.seconds, clients, base,
                                     instances=args.instances))
    except Exception as exc:  # noqa: BLE001 - a measurement that failed says why
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    print(format_results(results, clients))
    return 0


__all__ = ["main", "measure", "Decimal"]
