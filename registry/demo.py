"""`registry demo`: a small, realistic market, loaded through the same commands users run."""

from __future__ import annotations

from registry.settings import Settings


async def load_demo(settings: Settings, dsn: str, *, progress: bool = False) -> str:
    return "demo market: nothing to load yet"
