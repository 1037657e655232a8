"""The compiled fast path never accepts bytes the Python verifier would refuse.

`is_canonical_event` may say False for unusual but canonical bytes (the Python verifier then decides),
but True must mean: msgspec decodes the bytes as a CanonicalEvent and its sorted encoder writes them
back unchanged. Checked on generated events, on every kind of near miss, and on random mutations.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.eventlog import canonical
from registry.eventlog.model import CanonicalEvent, EventMeta
from registry.eventlog.verify import fastchain

pytestmark = pytest.mark.skipif(fastchain is None, reason="the compiled verifier was not built")


def python_accepts(raw: bytes) -> bool:
    try:
        return canonical.encode(canonical.decode(raw)) == raw
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


def accepts(raw: bytes) -> bool:
    verdict = fastchain.is_canonical_event(raw)
    if verdict:
        assert python_accepts(raw), raw  # the one thing that must never happen
    return verdict


def event(**changes: object) -> CanonicalEvent:
    fields: dict = dict(
        position=7, stream="warrant-series-TJ0001", version=3, type="warrant.transferred", schema=1,
        data={"units": 1000, "from": "acct-1", "to": "acct-2", "note": "转让 \"甲\"\n第2行\t\\", "flags": [True, None],
              "nested": {"a": {"b": []}, "z": {}}, "price_fen": -15},
        meta=EventMeta(actor="op-1", role="operator", command="transfer", request_id="r-1", reason="复核\n通过"),
        recorded_at=dt.datetime(2026, 11, 26, 5, 6, 7, 123456, tzinfo=dt.timezone.utc),
        effective_date=dt.date(2026, 11, 26), prev_hash=hashlib.sha256(b"prev").hexdigest(),
    )
    fields.update(changes)
    return CanonicalEvent(**fields)


GOOD = canonical.encode(event())


def test_the_writers_bytes_are_accepted() -> None:
    assert accepts(GOOD)
    assert accepts(canonical.encode(event(effective_date=None, data={},
                                          meta=EventMeta(actor="a", role="r", command="c"))))
    assert accepts(canonical.encode(event(recorded_at=dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.timezone.utc))))
    assert accepts(canonical.encode(event(meta=EventMeta(actor="a", role="r", command="c", idempotency_key="k",
                                                         reason="", request_id="q"))))


NEAR_MISSES = {
    "insignificant space": GOOD.replace(b'"data":', b'"data": ', 1),
    "trailing newline": GOOD + b"\n",
    "keys out of order": GOOD.replace(b'"from":"acct-1","nested"', b'"nested"', 1).replace(
        b'"note"', b'"from":"acct-1","note"', 1),
    "key twice": GOOD.replace(b'"flags":', b'"flags":1,"flags":', 1),
    "negative zero": GOOD.replace(b'"price_fen":-15', b'"price_fen":-0', 1),
    "leading zero": GOOD.replace(b'"units":1000', b'"units":01000', 1),
    "a float": GOOD.replace(b'"units":1000', b'"units":1000.0', 1),
    "an exponent": GOOD.replace(b'"units":1000', b'"units":1e3', 1),
    "an escape msgspec never writes": GOOD.replace(b"acct-1", b"acct\\u002d1", 1),
    "an escaped slash": GOOD.replace(b"acct-1", b"acct\\/1", 1),
    "a raw control character": GOOD.replace(b"\\n", b"\n", 1),
    "uppercase unicode escape": GOOD.replace(b"\\n", b"\\u000A", 1),
    "unicode escape for a short-form character": GOOD.replace(b"\\n", b"\\u000a", 1),
    "overlong UTF-8": GOOD.replace(b"acct-1", b"acct\xc0\xad1", 1),
    "UTF-8 surrogate": GOOD.replace(b"acct-1", b"acct\xed\xa0\x801", 1),
    "truncated UTF-8": GOOD.replace(b"acct-1", b"acct\xe8\xbd1", 1),
    "uppercase hex in prev_hash": GOOD.replace(GOOD[GOOD.index(b'"prev_hash":"') + 13:][:4],
                                               GOOD[GOOD.index(b'"prev_hash":"') + 13:][:4].upper(), 1),
    "offset instead of Z": GOOD.replace(b'123456Z"', b'123456+00:00"', 1),
    "zero fraction": canonical.encode(event(recorded_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))).replace(
        b'00:00Z"', b'00:00.000000Z"', 1),
    "short fraction": GOOD.replace(b'.123456Z"', b'.123Z"', 1),
    "no such day": GOOD.replace(b'"2026-11-26"', b'"2026-02-29"', 1),
    "no such hour": GOOD.replace(b"T05:06:07", b"T24:06:07", 1),
    "space for T": GOOD.replace(b"T05:06:07", b" 05:06:07", 1),
    "meta field the event shape lacks": GOOD.replace(b'"role":', b'"rolf":"x","role":', 1),
    "null optional meta field": GOOD.replace(b'"reason":', b'"idempotency_key":null,"reason":', 1),
    "effective date as a datetime": GOOD.replace(b'"2026-11-26",', b'"2026-11-26T00:00:00Z",', 1),
    "data not an object": canonical.encode(event(data={})).replace(b'"data":{}', b'"data":[]', 1),
    "not JSON": b"\xff not json",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(NEAR_MISSES))
def test_near_misses_are_left_to_the_python_verifier(name: str) -> None:
    raw = NEAR_MISSES[name]
    assert raw != GOOD, "the near miss must differ from the good bytes"
    assert not accepts(raw)


keys = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\', min_codepoint=0x20),
               max_size=6)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**18 + 1, 10**18 - 1), texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(keys, inner, max_size=4)), max_leaves=12)
moments = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                       timezones=st.just(dt.timezone.utc))
metas = st.builds(EventMeta, actor=texts, role=texts, command=texts, request_id=st.none() | texts,
                  idempotency_key=st.none() | texts, reason=st.none() | texts)
events = st.builds(
    CanonicalEvent, position=st.integers(0, 10**15), stream=texts, version=st.integers(0, 10**9),
    type=texts, schema=st.integers(1, 100), data=st.dictionaries(keys, json_values, max_size=5), meta=metas,
    recorded_at=moments, effective_date=st.none() | st.dates(), prev_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_every_event_the_writer_can_encode_is_accepted(e: CanonicalEvent) -> None:
    assert accepts(canonical.encode(e))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events, st.data())
def test_a_mutated_event_is_accepted_only_if_python_would_accept_it(e: CanonicalEvent, data: st.DataObject) -> None:
    raw = bytearray(canonical.encode(e))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        kind = data.draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
        byte = data.draw(st.sampled_from(list(b' ",:{}[]0-.\\eEuZ+nt\x00\x7f\xc3\xa9\xed\xf4\x80')) | st.integers(0, 255))
        if kind == "insert" or at == len(raw):
            raw[at:at] = bytes([byte])
        elif kind == "delete":
            del raw[at]
        elif kind == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        else:
            raw[at] = byte
    accepts(bytes(raw))  # asserts the Python verifier agrees whenever it says True


def test_verify_copy_refuses_a_malformed_copy_stream() -> None:
    state, position, last, consumed, leaves = fastchain.verify_copy(b"not a copy stream", 0, bytes(32), True)
    assert (state, position, last, consumed, leaves) == ("stop", 0, bytes(32), 0, b"")
    assert fastchain.verify_copy(b"PGCOPY", 0, bytes(32))[0] == "more"
    with pytest.raises(ValueError):
        fastchain.verify_copy(b"", 0, b"short")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "python"])
@settings(max_examples=150, deadline=None)
@given(st.integers(0, 300), st.integers(1, 300), st.sets(st.integers(1, 700), max_size=5))
def test_growing_a_frontier_many_leaves_at_once_matches_appending_them_one_by_one(compiled: bool, start: int,
                                                                                  count: int, pauses: set[int]) -> None:
    from registry.audit import frontier, merkle

    saved = frontier.fastchain
    frontier.fastchain = saved if compiled else None
    try:
        check_growth(merkle, frontier.grow, start, count, pauses)
    finally:
        frontier.fastchain = saved


def check_growth(merkle, grow, start: int, count: int, pauses: set[int]) -> None:
    leaves = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(start + count)]
    one_by_one = merkle.Frontier()
    roots_one_by_one = {}
    for leaf in leaves:
        one_by_one.append(leaf)
        if one_by_one.size in pauses and one_by_one.size > start:
            roots_one_by_one[one_by_one.size] = one_by_one.root()
    grown = merkle.Frontier()
    for leaf in leaves[:start]:
        grown.append(leaf)
    roots = {f.size: f.root() for f in grow(grown, b"".join(leaves[start:]), pauses)}
    assert roots == roots_one_by_one
    assert (grown.size, grown.peaks, grown.root()) == (one_by_one.size, one_by_one.peaks, one_by_one.root())
