"""The pages in a hostile browser world: another site can neither sign a browser in nor frame a page,
no page is cached, and the sign-in cookie is Secure whenever the browser came over HTTPS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from registry.access.tokens import Role
from registry.app import create_app
from support import TOKENS, auth, form_token, sign_in, sign_in_form, tianjin_uscc

EXAMINER = TOKENS.issue("examiner-1", Role.regulator)


@contextlib.asynccontextmanager
async def browser(db, settings, base_url: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client of the app at `base_url`, the service configured with `overrides`."""
    app = create_app(msgspec.structs.replace(settings, **overrides), database=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each cookie the response sets, by name, with its attributes as sent."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


async def test_a_form_posted_from_another_site_signs_nobody_in(client: httpx.AsyncClient) -> None:
    form_token = await sign_in_form(client)
    forged = [
        ({"token": EXAMINER}, {}),                                               # no form token at all
        ({"token": EXAMINER, "_csrf_token": "f" * 128}, {}),                     # a made-up one
        ({"token": EXAMINER, "_csrf_token": form_token}, {"Sec-Fetch-Site": "cross-site"}),
        ({"token": EXAMINER, "_csrf_token": form_token}, {"Sec-Fetch-Site": "same-site"}),
        ({"token": EXAMINER, "_csrf_token": form_token}, {"Origin": "https://attacker.example"}),
        ({"token": EXAMINER, "_csrf_token": form_token}, {"Origin": "http://["}),  # not even a URL
    ]
    for data, headers in forged:
        r = await client.post("/ui/sign-in", data=data, headers=headers)
        assert r.status_code == 403, (data, headers, r.status_code)
        assert 'id="refused"' in r.text and "请重新打开登录页面" in r.text  # says what to do, on a page
        assert "registry_token" not in r.headers.get("set-cookie", "")
    assert (await client.get("/ui/")).headers["location"] == "/ui/sign-in"  # still signed out

    # the attacker's own form token is worthless in the victim's browser, whose form cookie differs
    attackers = await sign_in_form(client)
    victims = await sign_in_form(client)
    assert attackers != victims
    r = await client.post("/ui/sign-in", data={"token": EXAMINER, "_csrf_token": attackers})
    assert r.status_code == 403 and "registry_token" not in r.headers.get("set-cookie", "")

    # the form itself, submitted from the page it came with, signs in
    r = await client.post("/ui/sign-in", data={"token": EXAMINER, "_csrf_token": victims},
                          headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://registry.test"})
    assert r.status_code == 303 and "registry_token" in set_cookies(r)
    assert "examiner-1" in (await client.get("/ui/")).text


async def test_the_api_takes_bearer_tokens_without_any_form_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/enterprises", headers={**auth("operator", "op-1", "k-api"), "Origin": "https://elsewhere"},
                          json={"uscc": tianjin_uscc(5), "name": "天津海河智能科技有限公司", "legal_form": "llc",
                                "registered_capital_fen": 1_000_000_000, "industry": "人工智能",
                                "specialised_level": "provincial"})
    assert r.status_code == 201, r.text
    assert "content-security-policy" not in r.headers and "set-cookie" not in r.headers


async def test_every_page_answer_forbids_framing_and_caching(client: httpx.AsyncClient) -> None:
    answers = [await client.get("/ui/sign-in"), await client.get("/ui/events"),  # a form; a redirect to it
               await client.post("/ui/sign-in", data={"token": EXAMINER})]        # a refusal
    await sign_in(client, Role.regulator, "examiner-1")
    answers += [await client.get(path) for path in ("/ui/", "/ui/events", "/ui/no-such-page", "/ui/pages.css",
                                                    "/ui/audit/checkpoint-key.txt")]
    assert [r.status_code for r in answers] == [200, 302, 403, 200, 200, 404, 200, 200]
    for r in answers:
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store", r.url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp, r.url
    assert "<style" not in answers[3].text and 'href="/ui/pages.css"' in answers[3].text  # nothing inline to allow
    assert answers[6].headers["content-type"].startswith("text/css")


async def test_over_https_the_sign_in_cookies_are_secure_http_only_and_same_site(db, settings) -> None:
    async with browser(db, settings, "https://registry.test") as https:
        form = set_cookies(await https.get("/ui/sign-in"))["registry_form"]
        signed_in = await sign_in(https, Role.regulator, "examiner-1")
        session = set_cookies(signed_in)["registry_token"]
        assert (await https.get("/ui/")).status_code == 200  # a Secure cookie goes back over HTTPS
    for cookie in (form, session):
        assert {"Secure", "HttpOnly", "SameSite=strict", "Path=/ui"} <= {a.strip() for a in cookie.split(";")}


async def test_over_plain_http_the_cookie_is_secure_only_when_the_service_is_said_to_be_behind_tls(db,
                                                                                                 settings) -> None:
    async def session_cookie(client: httpx.AsyncClient, **headers: str) -> str:
        """Sign in as the browser behind the proxy does (its cookies sent whatever our scheme looks like)."""
        form = await client.get("/ui/sign-in", headers=headers)
        form_cookie = set_cookies(form)["registry_form"].split(";")[0]
        token = form_token(form.text)
        client.cookies.clear()
        r = await client.post("/ui/sign-in", data={"token": EXAMINER, "_csrf_token": token},
                              headers={**headers, "Cookie": form_cookie})
        assert r.status_code == 303
        return set_cookies(r)["registry_token"]

    https = {"X-Forwarded-Proto": "https"}
    async with browser(db, settings, "http://registry.test") as plain:
        assert "Secure" not in await session_cookie(plain)
        assert "Secure" not in await session_cookie(plain, **https)  # nobody said a proxy is to be trusted
    async with browser(db, settings, "http://registry.test", trust_proxy_headers=True) as proxied:
        assert "Secure" in await session_cookie(proxied, **https)
        assert "Secure" not in await session_cookie(proxied, **{"X-Forwarded-Proto": "http"})
    async with browser(db, settings, "http://registry.test", behind_tls=True) as behind:
        assert "Secure" in await session_cookie(behind)
        assert "Secure" in set_cookies(await behind.get("/ui/sign-out"))["registry_token"]


@pytest.mark.parametrize("path, signed_in", [("/ui/sign-in", False), ("/ui/events", True), ("/health/live", False),
                                              ("/enterprises", True)])
async def test_head_is_answered_as_get_without_a_body(client: httpx.AsyncClient, path: str, signed_in: bool) -> None:
    headers = auth("regulator", "examiner-1") if signed_in else {}
    got = await client.get(path, headers=headers)
    head = await client.head(path, headers=headers)
    assert (got.status_code, head.status_code) == (200, 200), head.text
    assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    assert head.headers.get("cache-control") == got.headers.get("cache-control")
    assert head.headers.get("x-frame-options") == got.headers.get("x-frame-options")
    options = await client.options(path)
    assert {"GET", "HEAD"} <= {m.strip() for m in options.headers["allow"].split(",")}, options.headers
