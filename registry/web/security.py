"""What keeps the pages safe in a browser: cookies marked Secure over HTTPS, a sign-in form another
site cannot submit (login CSRF), and headers that forbid framing and caching of every /ui answer.

The API needs none of this: it takes bearer tokens in a header, which a browser never adds by itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie, Headers, MutableScopeHeaders
from litestar.exceptions import PermissionDeniedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import ForeignForm
from registry.settings import Settings

PAGES = "/ui"
CSRF_COOKIE = "registry_form"
"""The pre-session cookie the sign-in form is issued with; its twin travels in the form's hidden field."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
"""The pages run no script and fetch nothing but their own stylesheet; no other site may frame them."""
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # pages show holdings and registers: no copy left in a shared cache or history
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # page URLs name investors and accounts
}


def is_page(scope: Scope) -> bool:
    path = scope.get("path", "")
    return path == PAGES or path.startswith(PAGES + "/")


def over_https(scope: Scope, settings: Settings) -> bool:
    """Did the browser reach us over HTTPS? Our own scheme says so, or a setting does (behind a TLS
    proxy), or — only when the proxy is trusted — its X-Forwarded-Proto."""
    if scope.get("scheme") == "https" or settings.behind_tls:
        return True
    if settings.trust_proxy_headers:
        forwarded = Headers.from_scope(scope).get("x-forwarded-proto", "")
        return forwarded.split(",")[0].strip().lower() == "https"
    return False


def page_cookie(scope: Scope, settings: Settings, key: str, value: str, *, max_age: int | None = None) -> Cookie:
    """A cookie for the pages only: never readable by a script, never sent by another site, Secure over HTTPS."""
    return Cookie(key=key, value=value, path=PAGES, httponly=True, samesite="strict", max_age=max_age,
                  secure=over_https(scope, settings))


def csrf_secret(token_key: Ed25519PrivateKey) -> str:
    """The secret signing sign-in forms, derived from the token-signing key: forms stay valid across restarts
    and across processes serving the same market, and nothing new has to be kept."""
    raw = token_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                  serialization.NoEncryption())
    return hmac.new(raw, b"registry pages: sign-in form", hashlib.sha256).hexdigest()


def refuse_cross_site(scope: Scope) -> None:
    """A write to the pages must come from the pages themselves. Browsers say where a request comes from
    (Sec-Fetch-Site); older ones only send Origin, which must then name this host."""
    headers = Headers.from_scope(scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site not in ("same-origin", "none"):
            raise ForeignForm(f"the browser says this form came from a {fetch_site} page", sent_from=fetch_site)
        return
    origin = headers.get("origin")
    if origin is not None and _netloc(origin) != headers.get("host", ""):
        raise ForeignForm(f"the form came from {origin}, not from this site", sent_from=origin)


def _netloc(origin: str) -> str | None:
    """The host and port an Origin header names; None for one that is not a URL (e.g. `http://[`)."""
    try:
        return urlsplit(origin).netloc
    except ValueError:
        return None


class PageFormProtection:
    """Litestar's CSRF middleware (a signed double-submit token: a pre-session cookie set with the form, its
    twin in the form's hidden `_csrf_token` field) on the pages only, with the cookie marked Secure whenever
    the request came over HTTPS, and a cross-site origin refused before any token is looked at."""

    def __init__(self, app: ASGIApp, config: CSRFConfig, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.plain = CSRFMiddleware(app, config)
        self.secure = CSRFMiddleware(app, dataclasses.replace(config, cookie_secure=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope):
            await self.app(scope, receive, send)  # the API: bearer tokens in a header, nothing to forge
            return
        if scope["method"] not in SAFE_METHODS:
            refuse_cross_site(scope)
        try:
            await (self.secure if over_https(scope, self.settings) else self.plain)(scope, receive, send)
        except PermissionDeniedException as exc:  # only the token check raises this far: the page's own are handled
            raise ForeignForm("the form's anti-forgery token is missing, expired or another browser's; "
                              "open the sign-in page again") from exc


def form_protection_config(secret: str) -> CSRFConfig:
    samesite: Literal["strict"] = "strict"
    return CSRFConfig(secret=secret, cookie_name=CSRF_COOKIE, cookie_path=PAGES, cookie_httponly=True,
                      cookie_samesite=samesite, safe_methods=set(SAFE_METHODS))


async def add_page_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: every /ui answer — page, redirect, refusal, download — forbids framing and caching."""
    if message["type"] == "http.response.start" and is_page(scope):
        headers = MutableScopeHeaders.from_message(message)
        for name, value in PAGE_HEADERS.items():
            headers[name] = value
