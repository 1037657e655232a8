"""Helpers tests import: tokens for each role, valid USCCs, digests."""

from __future__ import annotations


# -- identities -----------------------------------------------------------------------------

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from registry.access.tokens import Role, TokenService
from registry.parties.uscc import uscc_check_character

TEST_KEY = Ed25519PrivateKey.generate()
TEST_KEY_PEM = TEST_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
TOKENS = TokenService(TEST_KEY)


def auth(role: str, subject: str, key: str | None = None) -> dict[str, str]:
    """Headers for a caller; `key` adds an Idempotency-Key."""
    headers = {"Authorization": f"Bearer {TOKENS.issue(subject, Role(role))}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def tianjin_uscc(n: int) -> str:
    """A valid Tianjin (division 120116, 滨海新区) 统一社会信用代码, distinct per n."""
    first17 = f"91120116MA{n:07d}"
    return first17 + uscc_check_character(first17)


DIGEST = "ab" * 32
