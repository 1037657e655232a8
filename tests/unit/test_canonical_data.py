"""What event data may hold: the write path refuses anything whose hash would be ambiguous."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import pytest

from registry.eventlog.canonical import NotCanonical, check_data


class Kind(enum.StrEnum):
    bank = "bank"


@pytest.mark.parametrize("data", [
    {},
    {"units": 10, "price": "1.50", "confirmed": True, "note": None, "名称": "天津"},
    {"lots": [{"lot_id": "L1", "units": 3}, {"lot_id": "L2", "units": 4}], "holders": ["INV1", "INV2"]},
    {"kind": Kind.bank, "pair": (1, 2)},  # a str subclass and a tuple encode as a string and a list
    {"deep": [[[{"a": [1, [2, [3]]]}]]]},
])
def test_plain_json_values_are_accepted(data) -> None:
    check_data(data)


@pytest.mark.parametrize(("data", "message"), [
    ({"price": 1.5}, "data.price: float"),
    ({"lots": [{"units": 1}, {"units": 2.0}]}, "data.lots[1].units: float"),
    ({1: "x"}, "data: keys must be strings"),
    ({"amount": Decimal("1.5")}, "data.amount: Decimal"),
    ({"on": dt.date(2026, 11, 26)}, "data.on: date"),
    ({"digest": b"\x00"}, "data.digest: bytes"),
    ({"nested": {"ok": [1, 2, {"bad": {1.0}}]}}, "data.nested.ok[2].bad: set"),
])
def test_anything_else_is_refused_naming_where_it_is(data, message) -> None:
    with pytest.raises(NotCanonical, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_data(data)
