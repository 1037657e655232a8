"""The OpenAPI document tells the truth: schemathesis fuzzes the real `registry serve --demo` from its own
`/schema/openapi.json` and checks every answer against it, once for each role.

For each of the four roles (operator, an enterprise of the demo market, one of its investors, a regulator)
`st run` covers the 77 operations (all but the endless `/events/live` stream) with FUZZ_EXAMPLES = 20
generated cases per operation in the fuzzing phase, positive and negative, and the stateful phase's chains of
calls; the operator's run adds the coverage phase's boundary and invalid cases (missing headers, other
methods), which do not depend on the role. That is about 1,500 requests per role plus 3,000 for the
coverage phase: some 9,000 in all, in 50 to 100 seconds on two busy cores, the four runs side by side.
Path parameters take real ids of the demo market half of the time (an enterprise's and an investor's own
id always), so reads and writes reach existing records, not only 404s.

Checks: status code, content type, response headers and response schema conformance, no 5xx, a missing
required header (the bearer token, Idempotency-Key) refused, and an undocumented method answered 405 with
an `Allow` header naming the documented ones. Any finding fails the test with schemathesis's report,
which names the seed that reproduces it (`st run ... --seed N`).
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from support import TEST_KEY_PEM, TOKENS, free_port, subprocess_env, wait_until_ready

from registry.access.tokens import Role

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = 20
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,missing_required_header,unsupported_method,allow_header_conformance")
PATH_IDS = {
    "uscc": ("/enterprises", "uscc"),
    "investor_id": ("/investors", "investor_id"),
    "account_id": ("/accounts", "account_id"),
    "code": ("/warrant-series", "code"),
    "approval_id": ("/approvals", "approval_id"),
    "rulebook_id": ("/rulebooks", "id"),
}
"""Path parameter → the list whose items name real ones."""


@pytest.fixture
def demo_server(dsns) -> str:
    """`registry serve --demo` on a fresh database of this worker's cluster; tokens signed by the test key."""
    keys = Path(tempfile.mkdtemp(prefix="registry-openapi-"))
    port = free_port()
    env = {**subprocess_env(), "DATABASE_URL": dsns.app, "DATABASE_OWNER_URL": dsns.owner,
           "REGISTRY_DATA_DIR": str(keys), "REGISTRY_TOKEN_KEY": TEST_KEY_PEM,
           "REGISTRY_CHECKPOINT_KEY": TEST_KEY_PEM}
    log = keys / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--demo", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, proc, log, timeout=180)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _real_ids(url: str) -> dict[str, list[str]]:
    operator = {"Authorization": f"Bearer {TOKENS.issue('op-conformance', Role.operator)}"}
    with httpx.Client(base_url=url, headers=operator, timeout=30) as client:
        return {name: [str(item[key]) for item in client.get(path, params={"limit": 50}).json()["items"]]
                for name, (path, key) in PATH_IDS.items()}


def _config(ids: dict[str, list[str]], own: dict[str, str]) -> str:
    """schemathesis.toml: own ids always, other real ids half of the time (the rest is generated)."""
    lines = ["[parameters]"]
    lines += [f'"path.{name}" = {json.dumps(value)}' for name, value in own.items()]
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}'
              for name, values in ids.items() if values and name not in own]
    for name, values in ids.items():
        if values and name not in own:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values, ensure_ascii=False)}"]
    return "\n".join(lines) + "\n"


def _fuzz(url: str, role: Role, subject: str, config: Path, phases: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{url}/schema/openapi.json",
         "--header", f"Authorization: Bearer {TOKENS.issue(subject, role)}", "--checks", CHECKS,
         "--max-examples", str(FUZZ_EXAMPLES), "--phases", phases,
         "--exclude-path", "/events/live", "--request-timeout", "30", "--no-color", "--workers", "1",
         "--generation-database", "none", "--warnings", "off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=config.parent, env=_real_time())


def _real_time() -> dict[str, str]:
    """The fuzzer runs on the machine's own clock even in the suite's run under libfaketime, whose timed
    waits in threads never return; the service it examines keeps the moved clock."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


def test_every_role_gets_only_answers_the_openapi_document_declares(demo_server: str, tmp_path: Path) -> None:
    ids = _real_ids(demo_server)
    uscc, investor_id = ids["uscc"][0], ids["investor_id"][0]
    roles = [(Role.operator, "op-conformance", {}), (Role.enterprise, uscc, {"uscc": uscc}),
             (Role.investor, investor_id, {"investor_id": investor_id}),
             (Role.regulator, "examiner-conformance", {})]
    runs = {}
    for role, subject, own in roles:
        folder = tmp_path / str(role)
        folder.mkdir()
        (folder / "schemathesis.toml").write_text(_config(ids, own))
        # the coverage phase's cases (boundaries, missing headers, other methods) do not depend on the role
        phases = "coverage,fuzzing,stateful" if role is Role.operator else "fuzzing,stateful"
        runs[role] = _fuzz(demo_server, role, subject, folder / "schemathesis.toml", phases)
    try:
        reports = {role: run.communicate(timeout=280)[0] for role, run in runs.items()}
    finally:
        for run in runs.values():
            run.kill()
    failed = {role: report for role, run in runs.items() if (report := reports[role]) and run.returncode != 0}
    assert not failed, "\n\n".join(f"== {role} ==\n{report}" for role, report in failed.items())
    cases = {role: re.search(r"(\d+) generated, \1 passed", report) for role, report in reports.items()}
    assert all(cases.values()), reports  # each run generated cases, and every one passed
    print({str(role): int(found[1]) for role, found in cases.items()})
