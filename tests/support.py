"""Helpers tests import: tokens for each role, valid USCCs, digests."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path

from registry.clock import fixed_clock, market_moment

TEST_TODAY = dt.date(2026, 11, 26)
"""The business date the tests' market stands on, whatever the wall clock says: a Thursday inside
the seeded trading calendar, with trading days after it to move forward into."""

TEST_MOMENT = market_moment(TEST_TODAY)
"""10:00 in Tianjin on TEST_TODAY: where the tests' market clock starts (`Settings.clock`, and
`REGISTRY_CLOCK` for a server a test starts)."""


def pin_clock(database, day: dt.date = TEST_TODAY) -> None:
    """Make a Database's writer record every command at 10:00 (Asia/Shanghai) on `day`."""
    database.writer.clock = fixed_clock(market_moment(day))


@asynccontextmanager
async def serving(settings, dsn: str):
    """The service in process on a migrated database of the test's own, its calendar seeded and its clock pinned:
    an httpx client whose `database` is the service's Database."""
    import httpx

    from registry.app import create_app
    from registry.calendar.service import ensure_seeded
    from registry.db.database import Database

    async with Database(dsn, settings) as database:
        pin_clock(database)
        await ensure_seeded(database.writer)
        app = create_app(settings, database=database)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test",
                                     timeout=30) as client:
            client.database = database
            yield client


# -- identities -----------------------------------------------------------------------------

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.access.tokens import Role, TokenService
from registry.parties.uscc import uscc_check_character

TEST_KEY = Ed25519PrivateKey.generate()
TEST_KEY_PEM = TEST_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
TOKENS = TokenService(TEST_KEY)


def auth(role: str, subject: str, key: str | None = None) -> dict[str, str]:
    """Headers for a caller; `key` adds an Idempotency-Key."""
    headers = {"Authorization": f"Bearer {TOKENS.issue(subject, Role(role))}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def log_size(client) -> int:
    """How many events the log holds, as readiness tells an operator or a regulator (never an anonymous caller)."""
    return (await client.get("/health/ready", headers=auth("regulator", "examiner-health"))).json()["log_size"]


def sse_ids(text: str) -> list[int]:
    """The event ids (log positions) of a server-sent event stream, in the order they were sent."""
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


async def sign_in_form(client) -> str:
    """Open the sign-in form as a browser would (a fresh cookie jar): the form's hidden anti-forgery token."""
    client.cookies.clear()
    form = await client.get("/ui/sign-in")
    assert form.status_code == 200, form.text
    return form_token(form.text)


def form_token(page: str) -> str:
    """The anti-forgery token in a page's sign-in form."""
    return re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)


async def sign_in(client, role: Role, subject: str):
    """Sign in to the pages as `subject` in `role` through the form; the response is the redirect."""
    form_token = await sign_in_form(client)
    response = await client.post("/ui/sign-in", data={"token": TOKENS.issue(subject, role), "_csrf_token": form_token})
    assert response.status_code == 303, response.text
    return response


def tianjin_uscc(n: int) -> str:
    """A valid Tianjin (division 120116, 滨海新区) 统一社会信用代码, distinct per n."""
    first17 = f"91120116MA{n:07d}"
    return first17 + uscc_check_character(first17)


DIGEST = "ab" * 32


def free_port() -> int:
    """A TCP port nobody listens on right now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, proc: "subprocess.Popen[bytes]", log: Path | None = None, timeout: float = 60) -> None:
    """Returns once `registry serve` at `url` answers /health/ready; fails, with its log, if it exits or stalls."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server did not start: {log.read_text() if log else ''}")
        time.sleep(0.1)


def subprocess_env() -> dict[str, str]:
    """The environment for a `registry` process a test starts: none of the runner's REGISTRY_* or DATABASE_URL."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "DATABASE_URL"}


async def rewrite_and_rechain(conn, position: int, **data_changes) -> None:
    """An insider changes one event's data and recomputes every later hash and link as the schema
    owner: the chain is whole again, and only the Merkle tree or a signed checkpoint can tell."""
    import msgspec

    from registry.eventlog import canonical

    rows = await conn.fetch("SELECT position, canonical, prev_hash FROM event WHERE position >= $1 ORDER BY position",
                            position)
    previous = bytes(rows[0]["prev_hash"])
    for row in rows:
        doc = canonical.decode(bytes(row["canonical"]))
        data = dict(doc.data, **data_changes) if row["position"] == position else doc.data
        raw = canonical.encode(msgspec.structs.replace(doc, data=data, prev_hash=previous.hex()))
        digest = canonical.digest(raw)
        await conn.execute("UPDATE event SET canonical = $2, hash = $3, prev_hash = $4 WHERE position = $1",
                           row["position"], raw, digest, previous)
        previous = digest
