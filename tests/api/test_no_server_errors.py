"""Random requests against every documented operation, over the demo market: never a 5xx, and a
refused command (any 4xx) appends nothing.

Bodies follow each operation's OpenAPI schema most of the time (so that many requests get past
decoding into the rules) and are wrong in every other way the rest of the time; path parameters
are mostly real identifiers of the demo market; the caller's role varies.
"""

from __future__ import annotations

import random
import re
from typing import Any

import httpx

from registry.demo import load_demo
from support import auth, log_size

SEED = 20261126
PER_OPERATION = 30
ODD_TEXT = ["", "0", "-1", "99999999999999999999999", "abc", "é", "null", "1e309", "2026-02-30", "9999-12-31",
            "x" * 300, "1.5", "true", "2026-11-26", "2020-01-01", "5", "100"]
ODD_VALUES: list[Any] = [None, 0, -1, 1, 10**30, "x", "", "2026-02-30", "9999-12-31", "2026-11-26", [], {}, True, 1.5,
                         "0.5", "-3", "1e400", "NaN"]
SKIPPED = ("/events/live",)  # a stream that waits for new events; its resumption is tested on its own


class Fuzzer:
    def __init__(self, spec: dict[str, Any], ids: dict[str, list[str]]) -> None:
        self.spec, self.ids = spec, ids
        self.known = [value for values in ids.values() for value in values]
        self.rng = random.Random(SEED)

    def value(self, schema: dict[str, Any] | None, depth: int = 0) -> Any:
        rng = self.rng
        if schema is None or depth > 4:
            return rng.choice(ODD_VALUES)
        if "$ref" in schema:
            return self.value(self.spec["components"]["schemas"].get(schema["$ref"].split("/")[-1]), depth + 1)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return self.value(rng.choice(schema[key]), depth + 1)
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return {k: self.value(v, depth + 1) for k, v in schema.get("properties", {}).items() if rng.random() < 0.85}
        if kind == "array":
            return [self.value(schema.get("items"), depth + 1) for _ in range(rng.randint(0, 3))]
        if "enum" in schema:
            return rng.choice(schema["enum"]) if rng.random() < 0.9 else rng.choice(ODD_VALUES)
        if rng.random() < 0.15:
            return rng.choice(ODD_VALUES)
        if kind == "integer":
            return rng.choice([0, 1, 5, 100, 1000, 10**6, -1, 2**63])
        if kind == "boolean":
            return rng.choice([True, False])
        if kind == "string" and schema.get("format") == "date":
            return rng.choice(["2026-11-26", "2026-11-20", "2026-12-31", "2025-01-01", "2027-06-30"])
        if kind == "string":
            return rng.choice(self.known + ["0.5", "1", "8.50", "100", "理由", "a" * 64, "0" * 64])
        return rng.choice(ODD_VALUES)

    def path(self, template: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(0)[1:-1].split(":")[0]
            pool = self.ids.get(name, [])
            return self.rng.choice(pool) if pool and self.rng.random() < 0.9 else self.rng.choice(ODD_TEXT)
        return re.sub(r"\{[^}]+\}", one, template)

    def caller(self, n: int) -> dict[str, str]:
        role = self.rng.choice(["operator", "operator", "operator", "regulator", "investor", "enterprise"])
        subject = {"operator": self.rng.choice(["op-1", "op-2", "op-li", "op-zhang"]),
                   "investor": self.rng.choice(self.ids["investor_id"]),
                   "enterprise": self.rng.choice(self.ids["uscc"])}.get(role, "csrc-1")
        return auth(role, subject, f"fuzz-{n}")


async def known_ids(client: httpx.AsyncClient) -> dict[str, list[str]]:
    op = auth("operator", "op-1")

    async def items(path: str, key: str) -> list[str]:
        return [item[key] for item in (await client.get(path, headers=op)).json()["items"]]

    ids = {"uscc": await items("/enterprises?limit=100", "uscc"),
           "investor_id": await items("/investors?limit=100", "investor_id"),
           "code": await items("/warrant-series?limit=100", "code"),
           "approval_id": await items("/approvals?limit=100", "approval_id")}
    ids["account_id"] = [a for investor in ids["investor_id"]
                         for a in await items(f"/investors/{investor}/accounts", "account_id")]
    return ids



async def test_no_request_gets_a_server_error_and_no_refusal_writes(client: httpx.AsyncClient, dsns, settings) -> None:
    await load_demo(settings, dsns.app)
    ids = await known_ids(client)
    assert all(ids.values()), ids
    spec = (await client.get("/schema/openapi.json")).json()
    fuzz = Fuzzer(spec, ids)
    server_errors, writing_refusals, answered = [], [], {}
    n = 0
    for template, operations in spec["paths"].items():
        if template in SKIPPED:
            continue
        for method, operation in operations.items():
            queries = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            content = operation.get("requestBody", {}).get("content", {})
            schema = next(iter(content.values())).get("schema") if content else None
            for _ in range(PER_OPERATION):
                n += 1
                path = fuzz.path(template)
                params = {q: fuzz.rng.choice(ODD_TEXT + fuzz.known[:20]) for q in queries if fuzz.rng.random() < 0.5}
                if method == "get":
                    r = await client.get(path, params=params, headers=fuzz.caller(n))
                else:
                    body = fuzz.value(schema) if schema and fuzz.rng.random() < 0.9 else fuzz.rng.choice(ODD_VALUES)
                    before = await log_size(client)
                    r = await client.request(method.upper(), path, params=params, headers=fuzz.caller(n), json=body)
                    if 400 <= r.status_code < 500 and await log_size(client) != before:
                        writing_refusals.append((method, path, body, r.status_code, r.text[:300]))
                answered[r.status_code] = answered.get(r.status_code, 0) + 1
                if r.status_code >= 500:
                    server_errors.append((method, path, params, r.status_code, r.text[:300]))
    assert not server_errors, server_errors[:10]
    assert not writing_refusals, writing_refusals[:10]
    # the requests reached the rules, not only the decoder and the access checks
    assert answered.get(422, 0) > 20 and answered.get(200, 0) + answered.get(201, 0) > 100, answered


PAGES = {"/ui/": [], "/ui/positions": ["investor"], "/ui/enterprise": ["uscc", "as_of"], "/ui/pipeline": ["as_of"],
         "/ui/series-attention": ["days"], "/ui/events": ["after", "stream", "type", "actor", "since", "until", "highlight"],
         "/ui/audit": ["from", "to", "position"], "/ui/approvals": [], "/ui/audit/checkpoint.txt": [],
         "/ui/audit/checkpoint-key.txt": []}


async def test_no_page_gets_a_server_error(client: httpx.AsyncClient, dsns, settings) -> None:
    """The pages (not in the OpenAPI document) with odd and real query values, for every role."""
    await load_demo(settings, dsns.app)
    ids = await known_ids(client)
    rng = random.Random(SEED)
    known = [value for values in ids.values() for value in values]
    server_errors, answered = [], {}
    for _ in range(600):
        role = rng.choice(["operator", "regulator", "investor", "enterprise"])
        subject = {"investor": rng.choice(ids["investor_id"]), "enterprise": rng.choice(ids["uscc"])}.get(role, "op-1")
        pick = rng.random()
        if pick < 0.2:
            path, params = f"/ui/holdings/{rng.choice(ids['code'] + ODD_TEXT)}/{rng.choice(ids['account_id'] + ODD_TEXT)}", {}
        elif pick < 0.35:
            path = f"/ui/series/{rng.choice(ids['code'] + ODD_TEXT)}"
            params = {"as_of": rng.choice(ODD_TEXT)} if rng.random() < 0.5 else {}
        else:
            path = rng.choice(list(PAGES))
            params = {q: rng.choice(ODD_TEXT + known) for q in PAGES[path] if rng.random() < 0.6}
        r = await client.get(path, params=params, headers=auth(role, subject))
        answered[r.status_code] = answered.get(r.status_code, 0) + 1
        if r.status_code >= 500:
            server_errors.append((path, params, r.status_code, r.text[:300]))
    assert not server_errors, server_errors[:10]
    assert answered.get(200, 0) > 100, answered
