"""`window_intact` accepts a window exactly when the row-by-row verifier accepts every row of it."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from registry.eventlog import canonical
from registry.eventlog.model import GENESIS_HASH, CanonicalEvent, EventMeta
from registry.eventlog.verify import ChainVerifier, LogRow, LogWindow, window_intact

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def chain(datas: list[dict]) -> list[LogRow]:
    rows, previous = [], GENESIS_HASH
    for i, data in enumerate(datas):
        meta = EventMeta(actor=f"op-{i % 2}", role="operator", command="test", request_id=f"r-{i}" if i % 3 else None)
        recorded = dt.datetime(2026, 11, 26, 9, 30, i, 0 if i % 2 else 123456, tzinfo=dt.timezone.utc)
        doc = CanonicalEvent(position=i, stream=f"流-{i % 2}\n\"x\"", version=i // 2, type="test.happened", schema=1,
                             data=data, meta=meta, recorded_at=recorded,
                             effective_date=dt.date(2026, 1, 1 + i) if i % 2 else None, prev_hash=previous.hex())
        raw = canonical.encode(doc)
        rows.append(LogRow(position=i, stream_id=doc.stream, stream_version=doc.version, event_type=doc.type,
                           schema_version=doc.schema, actor=meta.actor, recorded_at=recorded,
                           effective_date=doc.effective_date, canonical=raw, hash=hashlib.sha256(raw).digest(),
                           prev_hash=previous))
        previous = rows[-1].hash
    return rows


DATAS = [{"i": 1}, {"nested": {"b": [1, {"z": None, "a": True}], "a": "é\u2028\t"}}, {}, {"big": 10**30, "neg": -5},
         {"s": "</script>\\"}, {"x": [[], {}]}]


def window(rows: list[LogRow]) -> LogWindow:
    return LogWindow.of([tuple(getattr(r, f) for f in LogRow.__struct_fields__) for r in rows])


def row_by_row(rows: list[LogRow]) -> bool:
    return ChainVerifier().feed_all(rows) is None


def test_a_chain_of_varied_events_passes_whole() -> None:
    rows = chain(DATAS)
    assert row_by_row(rows) and window_intact(window(rows), 0, GENESIS_HASH)


def test_an_empty_window_passes() -> None:
    assert window_intact(window([]), 0, GENESIS_HASH)


def test_a_window_that_starts_elsewhere_or_after_another_head_fails() -> None:
    rows = chain(DATAS)
    assert not window_intact(window(rows), 1, GENESIS_HASH)
    assert not window_intact(window(rows), 0, bytes([1]) * 32)


def rehash(rows: list[LogRow], i: int, raw: bytes) -> list[LogRow]:
    """Replace event i's bytes, recompute its hash and the next event's link (only the columns)."""
    new_hash = hashlib.sha256(raw).digest()
    rows = list(rows)
    rows[i] = LogRow(**{**{f: getattr(rows[i], f) for f in LogRow.__struct_fields__}, "canonical": raw, "hash": new_hash})
    return rows


@pytest.mark.parametrize("change", [
    lambda raw: raw.replace(b'"data":', b'"data": ', 1),  # whitespace
    lambda raw: raw.replace(b'"meta":{', b'"meta":{"reason":null,', 1),  # a None the encoder omits
    lambda raw: raw[:-1] + b',"extra":1}',  # an unknown member
    lambda raw: raw + b" ",  # trailing bytes
    lambda raw: raw.replace(b'"schema":1', b'"schema":1.0', 1),  # a number written differently
    lambda raw: b"[" + raw + b"]",  # not an object
    lambda raw: raw.replace(b'"version":', b'"version":0', 1),  # a leading zero
])
def test_bytes_not_in_canonical_form_with_a_correct_hash_fail_the_window_like_the_row(change) -> None:
    rows = chain(DATAS)
    tampered = rehash(rows, 3, change(rows[3].canonical))
    assert not row_by_row(tampered)
    assert not window_intact(window(tampered), 0, GENESIS_HASH)


@pytest.mark.parametrize("field,value", [
    ("position", 9), ("stream_id", "other"), ("stream_version", 7), ("event_type", "test.other"), ("schema_version", 2),
    ("actor", "op-9"), ("recorded_at", dt.datetime(2026, 11, 26, 9, 30, 3, 1, tzinfo=dt.timezone.utc)),
    ("effective_date", dt.date(2020, 1, 1)), ("prev_hash", bytes(32)),
])
def test_a_column_that_disagrees_with_the_bytes_fails_the_window(field: str, value: object) -> None:
    rows = chain(DATAS)
    rows[3] = LogRow(**{**{f: getattr(rows[3], f) for f in LogRow.__struct_fields__}, field: value})
    assert not row_by_row(rows)
    assert not window_intact(window(rows), 0, GENESIS_HASH)


def test_the_same_instant_in_another_zone_agrees_as_row_by_row_says() -> None:
    rows = chain(DATAS)
    moved = rows[1].recorded_at.astimezone(SHANGHAI)
    rows[1] = LogRow(**{**{f: getattr(rows[1], f) for f in LogRow.__struct_fields__}, "recorded_at": moved})
    assert row_by_row(rows) and window_intact(window(rows), 0, GENESIS_HASH)
