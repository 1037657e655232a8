"""Signed bearer tokens (JWT, EdDSA/Ed25519): who is calling and in which role.

The signing key lives in the data folder (generated on first use) or comes from settings
(REGISTRY_TOKEN_KEY, a PEM-encoded Ed25519 private key). Only its public half is needed to
check a token.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from enum import StrEnum
from pathlib import Path

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from registry.errors import Unauthenticated

ISSUER = "registry"
ALGORITHM = "EdDSA"


class Role(StrEnum):
    """The four kinds of caller (architecture §1)."""

    operator = "operator"      # 运营机构 market staff
    enterprise = "enterprise"  # 挂牌企业 / 标的企业, acts for one USCC
    investor = "investor"      # 投资者 / 认股权持有人, acts for its own accounts
    regulator = "regulator"    # 监管机构: reads everything, writes nothing


class Identity(msgspec.Struct, kw_only=True, frozen=True):
    """The caller: `subject` is the operator's user id, the enterprise's USCC or the investor's id."""

    subject: str
    role: Role


def load_or_create_key(data_dir: Path, pem: str | None = None, *,
                       filename: str = "token-signing-ed25519.pem") -> Ed25519PrivateKey:
    """An Ed25519 signing key: from `pem` (a setting) or `<data_dir>/keys/<filename>`, generated there
    (mode 0600) on first use. Token and checkpoint keys both come from here."""
    if pem:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the configured key must be an Ed25519 private key")
        return key
    path = data_dir / "keys" / filename
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    return key


class TokenService:
    VERIFIED_CACHE_SIZE = 10_000

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: Ed25519PublicKey = key.public_key()
        # A client sends the same token with every request: its signature is checked once, and
        # the identity reused until the token expires (the exact bytes are the key).
        self._verified: dict[str, tuple[Identity, float]] = {}

    def issue(self, subject: str, role: Role, *, ttl: dt.timedelta = dt.timedelta(hours=8),
              now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.timezone.utc)
        claims = {"iss": ISSUER, "sub": subject, "role": str(role), "iat": now, "exp": now + ttl}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> Identity:
        """The identity in a valid token; any defect is the same 401 (no hint which)."""
        cached = self._verified.get(token)
        if cached is not None:
            identity, expires = cached
            if time.time() < expires:
                return identity
            del self._verified[token]
        try:
            claims = jwt.decode(token, self.public_key, algorithms=[ALGORITHM], issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError):  # e.g. an `exp` of 1e400
            raise Unauthenticated("the token is not valid") from None
        identity = _identity(claims)
        if len(self._verified) >= self.VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (identity, float(claims["exp"]))
        return identity


def _identity(claims: dict[str, object]) -> Identity:
    """The caller a signed token names: a `role` that is one of the four roles' names and a `sub` that is
    an identifier (a string of 1 to 64 characters without spaces or control characters); anything else
    — a list, an object, a number — is a token that names no one."""
    role, subject = claims.get("role"), claims.get("sub")
    if not (isinstance(role, str) and role in Role.__members__ and isinstance(subject, str)
            and 0 < len(subject) <= 64 and subject.isprintable() and not any(c.isspace() for c in subject)):
        raise Unauthenticated("the token names no valid role and subject")
    return Identity(subject=subject, role=Role(role))
