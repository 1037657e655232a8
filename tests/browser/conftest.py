"""The pages in a real browser: Debian's Chromium driven by Playwright, against the real `registry serve`
on a database of its own (the per-worker embedded cluster) holding the demo market.

One server and one browser per test module; each role signs in through the sign-in page in a context
of its own. Every page visited is saved as a full-page PNG under tests/output/screenshots/.

Chromium is never downloaded: Playwright launches /usr/bin/chromium (`.ci/run` installs it with
apt-get). Without it these tests fail, saying so — unless REGISTRY_SKIP_BROWSER=1, which skips them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from registry.access.tokens import Role
from registry.db.database import APP_ROLE
from registry.db.embedded import DATABASE, SUPERUSER, EmbeddedPostgres
from registry.demo import load_demo
from support import TEST_KEY_PEM, TOKENS, free_port, subprocess_env

CHROMIUM = Path(os.environ.get("REGISTRY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "output" / "screenshots"


def _require_browser() -> None:
    if os.environ.get("REGISTRY_SKIP_BROWSER") == "1":
        pytest.skip("REGISTRY_SKIP_BROWSER=1: browser tests skipped")
    problems = []
    if not CHROMIUM.exists():
        problems.append(f"Chromium is not installed at {CHROMIUM}: apt-get install -y --no-install-recommends "
                        "chromium fonts-noto-cjk (the README's test command does this)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        problems.append("the `playwright` package is missing: pip install -e '.[test]'")
    if problems:
        pytest.fail("browser tests cannot run — " + "; ".join(problems) + ". Set REGISTRY_SKIP_BROWSER=1 to skip "
                    "them.", pytrace=False)


class Served:
    """The running service: its URL, its database (owner DSN for tampering like an insider) and tokens."""

    def __init__(self, url: str, owner_dsn: str) -> None:
        self.url = url
        self.owner_dsn = owner_dsn

    def token(self, role: Role, subject: str) -> str:
        return TOKENS.issue(subject, role)

    def api(self, role: Role = Role.regulator, subject: str = "examiner-1") -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30,
                                 headers={"Authorization": f"Bearer {self.token(role, subject)}"})


@pytest.fixture(scope="module")
async def served(pg_server: EmbeddedPostgres, settings) -> AsyncIterator[Served]:
    """A fresh database with the demo market, and `registry serve` on it (tokens signed by the test key)."""
    _require_browser()
    name = f"b_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(pg_server.dsn(SUPERUSER, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{DATABASE}" STRATEGY FILE_COPY')
    app_dsn, owner_dsn = pg_server.dsn(APP_ROLE, name), pg_server.dsn(SUPERUSER, name)
    await load_demo(settings, app_dsn)
    keys = Path(tempfile.mkdtemp(prefix="registry-browser-"))
    port = free_port()
    env = {**subprocess_env(), "DATABASE_URL": app_dsn, "DATABASE_OWNER_URL": owner_dsn, "REGISTRY_DATA_DIR": str(keys),
           "REGISTRY_TOKEN_KEY": TEST_KEY_PEM, "REGISTRY_CHECKPOINT_KEY": TEST_KEY_PEM,
           "REGISTRY_CLOCK": settings.clock.isoformat()}  # the market the demo was loaded into
    log = keys / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=1) as probe:
            while True:
                try:
                    if (await probe.get(f"{url}/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the server did not start: {log.read_text()}")
                await asyncio.sleep(0.1)
        yield Served(url, owner_dsn)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(keys, ignore_errors=True)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
async def browser(served: Served) -> AsyncIterator[object]:
    """One headless Chromium for the module (Debian's, never a downloaded one)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
    # a warning is what reaches the run's summary from an xdist worker: it says where the pictures are
    warnings.warn(f"browser screenshots saved in {SCREENSHOTS}", UserWarning, stacklevel=1)


class Visitor:
    """One signed-in person in a browser context of their own; every page they see is saved."""

    def __init__(self, page, served: Served, prefix: str) -> None:
        self.page = page
        self.served = served
        self.prefix = prefix

    async def open(self, path: str, shot: str, *, status: int = 200) -> str:
        response = await self.page.goto(self.served.url + path)
        assert response is not None and response.status == status, (path, response and response.status)
        await self.screenshot(shot)
        return await self.page.content()

    async def screenshot(self, shot: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOTS / f"{self.prefix}-{shot}.png"), full_page=True)


@pytest.fixture(scope="module")
def sign_in(browser, served: Served):
    """sign_in(role, subject) → a Visitor who pasted their token into the sign-in form."""
    contexts = []

    async def sign_in(role: Role, subject: str) -> Visitor:
        context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        contexts.append(context)
        page = await context.new_page()
        visitor = Visitor(page, served, f"{role}")
        await page.goto(f"{served.url}/ui/sign-in")
        await page.fill("textarea[name=token]", served.token(role, subject))
        await visitor.screenshot(f"sign-in-{subject}")
        async with page.expect_navigation():
            await page.click("button[type=submit]")
        assert page.url == f"{served.url}/ui/", page.url
        assert subject in await page.inner_text("#who")
        await visitor.screenshot(f"home-{subject}")
        return visitor

    return sign_in
