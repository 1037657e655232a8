"""Every route × every role, from the route table: the policy declared beside each route is what happens."""

from __future__ import annotations

import re

import httpx
import pytest
from litestar import Litestar

from registry.access.policy import PUBLIC, Access
from registry.access.tokens import Role
from registry.app import create_app
from support import auth

CALLERS = [None, *Role]


def routes(app: Litestar) -> list[tuple[str, str, object]]:
    found = []
    for route in app.routes:
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method == "OPTIONS" or route.path.startswith("/schema"):
                    continue
                found.append((method, route.path, handler.opt.get("access")))
    return found


def concrete(path: str) -> str:
    """Fill path parameters with values that name nobody's resource."""
    samples = {"int": "1", "date": "2026-11-26"}
    return re.sub(r"\{(\w+):(\w+)\}", lambda m: samples.get(m.group(2), "someone-else"), path)


@pytest.fixture(scope="module")
def route_table(settings) -> list[tuple[str, str, object]]:
    return routes(create_app(settings, dsn="postgresql://unused"))


def test_every_route_declares_an_access_policy(route_table) -> None:
    undeclared = [(m, p) for m, p, policy in route_table if policy is None]
    assert undeclared == []


def test_regulators_write_nothing_and_every_write_is_marked(route_table) -> None:
    for method, path, policy in route_table:
        if method in ("POST", "PUT", "PATCH", "DELETE") and policy != PUBLIC:  # signing in writes nothing
            assert isinstance(policy, Access) and policy.writes, (method, path)
            assert Role.regulator not in policy.roles, (method, path)


async def test_each_route_answers_each_role_as_declared(client: httpx.AsyncClient, route_table) -> None:
    checked = 0
    for method, path, policy in route_table:
        for role in CALLERS:
            headers = {"Idempotency-Key": "matrix"} | (auth(role, "someone") if role else {})
            # limit=1 also closes the live tail after one event (an endless stream never completes here)
            r = await client.request(method, concrete(path), headers=headers, params={"limit": 1},
                                     json={} if method == "POST" else None)
            if policy == PUBLIC and method == "POST":
                expected = 403  # the sign-in form: without the form's own anti-forgery token nobody signs in
            elif policy == PUBLIC:
                expected = "allowed"
            elif role is None:
                expected = 401
            elif role not in policy.roles:
                expected = 403
            elif role in policy.own:
                # roles limited to their own records are refused on anybody else's, existing or not; where the
                # record is named in the body, an empty body is refused first (and reveals nothing either)
                expected = (403, 400) if method == "POST" else 403
            else:
                expected = "allowed"
            if expected == 401 and path.startswith("/ui"):
                # pages answer "sign in first" by sending the browser to the sign-in form
                assert r.status_code in (302, 303) and r.headers["location"] == "/ui/sign-in", (path, r.status_code)
                checked += 1
                continue
            if expected == "allowed":
                assert r.status_code not in (401, 403), (method, path, role, r.status_code, r.text)
            else:
                assert r.status_code in (expected if isinstance(expected, tuple) else (expected,)), \
                    (method, path, role, r.status_code, r.text)
                if path.startswith("/ui"):
                    assert "someone-else" not in r.text  # a page says no without naming the resource
                else:
                    body = r.json()  # no hint about the resource asked for: same code, nothing about it
                    assert body["code"] in ("auth.unauthenticated", "auth.forbidden", "request.invalid"), body
                    assert "someone-else" not in body["detail"] + body["title"]
            checked += 1
    assert checked == len(route_table) * len(CALLERS)
