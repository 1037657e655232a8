"""Export the event log as JSON Lines: one object per event, enough to verify it with no database.

Each line is `{"position": n, "canonical": "<the exact hashed bytes, as UTF-8 text>", "hash": "<hex>",
"prev_hash": "<hex>"}`. The canonical bytes are UTF-8 JSON, so the string round-trips to the same
bytes; a row whose bytes are not UTF-8 (only possible if someone damaged the table) is written with
`canonical_base64` instead, so the export never hides or "repairs" a damaged event.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import IO, Any

import asyncpg
import msgspec

BATCH = 5_000


class ExportSummary(msgspec.Struct, kw_only=True, frozen=True):
    events: int
    last_position: int | None
    head_hash: str | None


def line(position: int, canonical: bytes, hash_: bytes, prev_hash: bytes) -> bytes:
    """One event's JSON line, newline included."""
    try:
        body: dict[str, Any] = {"position": position, "canonical": canonical.decode("utf-8")}
    except UnicodeDecodeError:
        body = {"position": position, "canonical_base64": base64.b64encode(canonical).decode()}
    body["hash"] = hash_.hex()
    body["prev_hash"] = prev_hash.hex()
    return msgspec.json.encode(body) + b"\n"


async def export_jsonl(conn: asyncpg.Connection, out_file: IO[bytes] | IO[str],
                       progress: Callable[[int], None] | None = None) -> ExportSummary:
    """Write every event, in position order, from one consistent snapshot of the log."""
    text = isinstance(out_file, io.TextIOBase)
    if conn.is_in_transaction():
        return await _export(conn, out_file, text, progress)
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await _export(conn, out_file, text, progress)


async def _export(conn: asyncpg.Connection, out_file: Any, text: bool,
                  progress: Callable[[int], None] | None) -> ExportSummary:
    count, last, head = 0, None, None
    after = -1
    while True:
        rows = await conn.fetch("SELECT position, canonical, hash, prev_hash FROM event WHERE position > $1 "
                                "ORDER BY position LIMIT $2", after, BATCH)
        if not rows:
            break
        chunk = b"".join(line(r["position"], bytes(r["canonical"]), bytes(r["hash"]), bytes(r["prev_hash"]))
                         for r in rows)
        out_file.write(chunk.decode("utf-8") if text else chunk)
        count += len(rows)
        after = last = rows[-1]["position"]
        head = bytes(rows[-1]["hash"]).hex()
        if progress is not None:
            progress(len(rows))
        if len(rows) < BATCH:
            break
    return ExportSummary(events=count, last_position=last, head_hash=head)
