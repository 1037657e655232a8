"""Tokens: expired, tampered, wrongly signed or role-less tokens are all the same 401."""

from __future__ import annotations

import datetime as dt

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.access.tokens import Role, TokenService
from support import TEST_KEY, TOKENS

NOW = dt.datetime.now(dt.timezone.utc)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tampered() -> str:
    header, payload, signature = TOKENS.issue("op-1", Role.operator).split(".")
    forged = jwt.utils.base64url_encode(b'{"iss":"registry","sub":"op-1","role":"regulator","iat":1,"exp":9999999999}')
    return ".".join([header, forged.decode(), signature])


@pytest.mark.parametrize("make", [
    lambda: TOKENS.issue("op-1", Role.operator, ttl=dt.timedelta(seconds=-1)),                    # expired
    tampered,                                                                                     # payload changed
    lambda: TokenService(Ed25519PrivateKey.generate()).issue("op-1", Role.operator),              # another key
    lambda: jwt.encode({"iss": "registry", "sub": "op-1", "iat": NOW, "exp": NOW + dt.timedelta(hours=1)},
                       TEST_KEY, algorithm="EdDSA"),                                              # no role
    lambda: jwt.encode({"iss": "registry", "sub": "op-1", "role": "admin", "iat": NOW,
                        "exp": NOW + dt.timedelta(hours=1)}, TEST_KEY, algorithm="EdDSA"),        # unknown role
    lambda: jwt.encode({"iss": "registry", "sub": "op-1", "role": "operator", "iat": NOW,
                        "exp": NOW + dt.timedelta(hours=1)}, "s" * 32, algorithm="HS256"),       # HMAC, not EdDSA
    lambda: "not-a-token",
], ids=["expired", "tampered", "wrong-key", "no-role", "unknown-role", "hs256", "garbage"])
async def test_bad_tokens_are_401(client: httpx.AsyncClient, make) -> None:
    r = await client.get("/enterprises", headers=bearer(make()))
    assert r.status_code == 401
    assert r.json()["code"] == "auth.unauthenticated" and r.headers["www-authenticate"] == "Bearer"


async def test_a_valid_token_is_accepted(client: httpx.AsyncClient) -> None:
    r = await client.get("/enterprises", headers=bearer(TOKENS.issue("op-1", Role.operator)))
    assert r.status_code == 200 and r.json() == {"items": [], "next": None}


async def test_a_token_accepted_once_is_refused_after_it_expires(client: httpx.AsyncClient) -> None:
    import time
    token = TOKENS.issue("op-1", Role.operator, ttl=dt.timedelta(seconds=2))
    assert (await client.get("/enterprises", headers=bearer(token))).status_code == 200
    assert (await client.get("/enterprises", headers=bearer(token))).status_code == 200  # from the cache
    time.sleep(2.1)
    r = await client.get("/enterprises", headers=bearer(token))
    assert r.status_code == 401 and r.json()["code"] == "auth.unauthenticated"
