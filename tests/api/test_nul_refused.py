"""A NUL character (U+0000) anywhere in a request's text is a 400 problem, never a database failure."""

from __future__ import annotations

import httpx
import pytest

from support import DIGEST, auth, log_size

OPERATOR = auth("operator", "op-1")
REGULATOR = auth("regulator", "csrc-1")



def assert_refused(r: httpx.Response, where: str) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "request.invalid" and r.json()["where"] == where


@pytest.mark.parametrize("url", ["/events?stream=%00", "/events?actor=a%00b", "/events/live?type=%00&limit=1",
                                 "/investors/INV%0000001", "/warrant-series/%00"])
async def test_a_nul_in_the_url_is_a_bad_request(client: httpx.AsyncClient, url: str) -> None:
    assert_refused(await client.get(url, headers=REGULATOR), "url")


async def test_a_nul_in_a_json_body_is_refused_and_nothing_is_written(client: httpx.AsyncClient) -> None:
    before = await log_size(client)
    r = await client.post("/investors", json={"kind": "natural_person", "name": "张\u0000三",
                                              "identity_document_digest": DIGEST},
                          headers={**OPERATOR, "Idempotency-Key": "nul-body"})
    assert_refused(r, "body")
    assert await log_size(client) == before


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(client: httpx.AsyncClient) -> None:
    r = await client.post("/investors", json={"kind": "natural_person", "name": "张三\\u0000",
                                              "identity_document_digest": DIGEST},
                          headers={**OPERATOR, "Idempotency-Key": "backslash-body"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "张三\\u0000"


async def test_a_nul_in_the_idempotency_key_is_a_bad_request(client: httpx.AsyncClient) -> None:
    r = await client.post("/investors", json={"kind": "natural_person", "name": "张三",
                                              "identity_document_digest": DIGEST},
                          headers={**OPERATOR, "Idempotency-Key": b"key\x00"})
    assert_refused(r, "headers")
