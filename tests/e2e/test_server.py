"""The real `registry serve` process on its embedded PostgreSQL: start, stop, crash, restart, verify."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from registry.db.embedded import EmbeddedPostgres
from support import DIGEST, free_port, subprocess_env, wait_until_ready

pytestmark = pytest.mark.slow


def registry(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, check=check, env=subprocess_env())


class Server:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(data_dir.parent / f"serve-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve", "--port", str(self.port), "--data-dir", str(data_dir)],
            stdout=self.log, stderr=subprocess.STDOUT, env={**subprocess_env(), **env})
        wait_until_ready(self.url, self.proc, Path(self.log.name))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def kill_postgres(self) -> int:
        """kill -9 the embedded postmaster; returns its pid."""
        pid = EmbeddedPostgres(self.data_dir).running_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return pid

    def write_until_accepted(self, headers: dict[str, str], key: str, within: float) -> float:
        """POST one investor until it is accepted; only 201 or a 503 with Retry-After is an answer. Seconds taken."""
        started = time.monotonic()
        while True:
            try:
                r = httpx.post(f"{self.url}/investors", headers={**headers, "Idempotency-Key": key}, timeout=10,
                               json={"kind": "natural_person", "name": key, "identity_document_digest": DIGEST})
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 201:
                return time.monotonic() - started
            if r is not None:
                assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.text
            assert time.monotonic() - started < within, f"no write accepted within {within} s:\n{self.output()}"
            time.sleep(0.1)


@pytest.fixture
def data_dir() -> Path:
    # outside pytest's temp root, which pytest keeps private to root while PostgreSQL runs as another user
    d = Path(tempfile.mkdtemp(prefix="registry-e2e-")) / "var"
    yield d
    EmbeddedPostgres(d).destroy()
    shutil.rmtree(d.parent, ignore_errors=True)


def operator_token(data_dir: Path) -> dict[str, str]:
    token = registry("token", "issue", "--role", "operator", "--subject", "op-e2e", data_dir=data_dir).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def test_serve_answers_then_stops_cleanly_with_its_database_on_sigterm(data_dir: Path) -> None:
    server = Server(data_dir)
    assert httpx.get(f"{server.url}/health/live").json() == {"status": "ok"}
    assert "X-Request-Id" in httpx.get(f"{server.url}/schema/openapi.json").headers
    assert server.stop(signal.SIGTERM) == 0
    assert EmbeddedPostgres(data_dir).running_pid() is None
    printed = Path(server.log.name).read_text()
    assert f"is serving Tianjin OTC 天津滨海柜台交易市场 at {server.url}" in printed
    assert f"{server.url}/ui/sign-in" in printed and f"{server.url}/schema" in printed


async def _burst(url: str, headers: dict[str, str], n: int, acknowledged: dict[str, str]) -> None:
    limits = asyncio.Semaphore(16)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        async with limits:
            try:
                r = await client.post("/investors", headers={**headers, "Idempotency-Key": f"burst-{i}"},
                                      json={"kind": "natural_person", "name": f"投资者{i}",
                                            "identity_document_digest": DIGEST})
            except httpx.HTTPError:
                return  # the server died mid-request: not acknowledged
            if r.status_code == 201:
                acknowledged[f"burst-{i}"] = r.json()["investor_id"]

    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        await asyncio.gather(*(one(client, i) for i in range(n)))


@pytest.mark.parametrize("kill_postgres_too", [False, True], ids=["service", "service-and-postgres"])
def test_a_killed_server_restarts_with_every_acknowledged_write_and_an_intact_chain(
        data_dir: Path, kill_postgres_too: bool) -> None:
    server = Server(data_dir)
    headers = operator_token(data_dir)
    acknowledged: dict[str, str] = {}

    async def crash_during_burst() -> None:
        burst = asyncio.create_task(_burst(server.url, headers, 3000, acknowledged))
        while len(acknowledged) < 150 and not burst.done():
            await asyncio.sleep(0.005)
        os.kill(server.proc.pid, signal.SIGKILL)
        if kill_postgres_too:
            pid = EmbeddedPostgres(data_dir).running_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        await burst

    asyncio.run(crash_during_burst())
    server.proc.wait(timeout=30)
    assert 150 <= len(acknowledged) < 3000

    restarted = Server(data_dir)  # adopts (or restarts) the database the crash left behind
    try:
        with httpx.Client(base_url=restarted.url, headers=headers) as client:
            for key, investor_id in acknowledged.items():
                assert client.get(f"/investors/{investor_id}").status_code == 200, investor_id
            # a retried acknowledged request gets its original answer and writes nothing
            key, investor_id = next(iter(acknowledged.items()))
            retry = client.post("/investors", headers={"Idempotency-Key": key}, json={
                "kind": "natural_person", "name": f"投资者{key.split('-')[1]}", "identity_document_digest": DIGEST})
            assert retry.status_code == 201 and retry.json()["investor_id"] == investor_id
            assert retry.json()["log"]["replayed"] is True
            # no command is half written: every investor event has its projection row and vice versa
            regulator = {"Authorization": headers["Authorization"]}
            events, after = 0, ""
            while True:
                page = client.get(f"/events?type=investor.registered&limit=500&after={after}",
                                  headers=regulator).json()
                events += len(page["items"])
                if page["next"] is None:
                    break
                after = page["next"]
            investors, after = 0, ""
            while True:
                page = client.get(f"/investors?limit=500&after={after}").json()
                investors += len(page["items"])
                if page["next"] is None:
                    break
                after = page["next"]
            assert events == investors >= len(acknowledged)
    finally:
        assert restarted.stop() == 0
    verified = registry("verify", "--quiet", data_dir=data_dir)
    assert verified.stdout.startswith("OK:"), verified.stderr


def test_verify_exits_non_zero_naming_the_first_altered_position(data_dir: Path) -> None:
    registry("demo", data_dir=data_dir)
    assert registry("verify", "--quiet", data_dir=data_dir).returncode == 0
    server = EmbeddedPostgres(data_dir)
    server.start()
    server.psql("ALTER TABLE event DISABLE TRIGGER event_refuse_change; "
                "UPDATE event SET actor = 'someone-else' WHERE position = 7;")
    result = registry("verify", "--quiet", data_dir=data_dir, check=False)
    assert result.returncode == 1
    assert "position 7" in result.stderr and "actor" in result.stderr


def test_a_regulator_verifies_an_exported_log_offline_against_a_signed_checkpoint(data_dir: Path) -> None:
    registry("demo", data_dir=data_dir)
    out = data_dir.parent
    registry("export", "log", "--out", str(out / "log.jsonl"), "-q", data_dir=data_dir)
    registry("checkpoint", "sign", "--out", str(out / "checkpoint.txt"), data_dir=data_dir)
    (out / "key.txt").write_text(registry("checkpoint", "public-key", data_dir=data_dir).stdout)
    offline = ["verify", "--export", str(out / "log.jsonl"), "--checkpoint", str(out / "checkpoint.txt"),
               "--key", str(out / "key.txt")]
    assert registry(*offline, data_dir=data_dir).returncode == 0
    lines = (out / "log.jsonl").read_text().splitlines()
    lines[9] = lines[9].replace('demo-loader', 'demo-loaded', 1)  # one byte of the hashed bytes
    assert 'demo-loaded' in lines[9]
    (out / "log.jsonl").write_text("\n".join(lines) + "\n")
    tampered = registry(*offline, data_dir=data_dir, check=False)
    assert tampered.returncode == 1 and "position 9" in (tampered.stdout + tampered.stderr)


def test_serve_on_an_external_database_migrates_as_the_owner_and_leaves_that_server_running(dsns, pg_server) -> None:
    port = free_port()
    keys = Path(tempfile.mkdtemp(prefix="registry-e2e-keys-"))
    env = {**subprocess_env(), "DATABASE_URL": dsns.app, "DATABASE_OWNER_URL": dsns.owner, "REGISTRY_DATA_DIR": str(keys)}
    proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/health/ready").json()["status"] == "ready"
        assert (keys / "keys" / "token-signing-ed25519.pem").exists()  # no embedded cluster in the data folder
        assert not (keys / "pg").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        shutil.rmtree(keys, ignore_errors=True)
    assert pg_server.running_pid() is not None  # an external server is not ours to stop


@pytest.mark.hangs_under_faketime
def test_a_killed_postmaster_is_restarted_by_serve_and_writes_resume(data_dir: Path) -> None:
    server = Server(data_dir)
    headers = operator_token(data_dir)
    try:
        server.write_until_accepted(headers, "before", within=10)
        killed = server.kill_postgres()
        server.write_until_accepted(headers, "after", within=60)
        restarted = EmbeddedPostgres(data_dir).running_pid()
        assert restarted is not None and restarted != killed
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        assert "restarting it" in server.output() and server.proc.poll() is None
    finally:
        assert server.stop() == 0
    assert EmbeddedPostgres(data_dir).running_pid() is None


def test_sigterm_during_a_database_outage_stops_serve_within_ten_seconds(data_dir: Path) -> None:
    server = Server(data_dir)
    server.kill_postgres()
    time.sleep(0.3)  # the supervisor is noticing, or already restarting it
    server.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert server.proc.wait(timeout=10) == 0, server.output()
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while EmbeddedPostgres(data_dir).running_pid() is not None:  # nothing left running behind it
        assert time.monotonic() < deadline, "a PostgreSQL server outlived the service"
        time.sleep(0.1)


@pytest.mark.hangs_under_faketime
def test_serve_gives_up_with_a_non_zero_exit_when_postgresql_keeps_dying(data_dir: Path) -> None:
    server = Server(data_dir, REGISTRY_EMBEDDED_MAX_RESTARTS="1")
    headers = operator_token(data_dir)
    server.kill_postgres()
    server.write_until_accepted(headers, "once", within=60)  # the one restart allowed
    server.kill_postgres()
    assert server.proc.wait(timeout=30) == 3
    assert "giving up" in server.output()
