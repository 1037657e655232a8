"""What a request may say: the field types every request Struct is built from, and the one strict decoder
that holds a request to them.

Nothing loose reaches the permanent log. Integers are JSON integers (`"1"` is not one); decimals are
JSON strings in one canonical spelling (`"7"`, `"7.5"`, `"-0.25"`: ASCII digits, no sign on zero, no
spaces, no exponent, no more places than the field states); text is NFC-normalised, has no control,
format (bidi overrides, zero-width characters, byte-order marks), private-use or line-separator
characters, and no more characters than the field states; money and counts stay within what the
register's bigint columns hold. The bounds are declared with `msgspec.Meta` so that the OpenAPI
document states them too; `decode` applies them and names the first field that breaks one.

Pure: the standard library and msgspec only (domain modules build their commands from these types).
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, TypeVar

import msgspec
import msgspec.inspect as mi

from registry.errors import RuleViolation

T = TypeVar("T")

MAX_BIGINT = 2**63 - 1
"""The largest number a PostgreSQL bigint column holds."""
MAX_FEN = 10**18
"""Money in one figure (10^16 yuan): more than any party to a regional market will state, and a sum of
nine such figures still fits the register's bigint columns. Every sum is checked all the same."""
MAX_UNITS = 10**12
"""Warrant units in one figure and in one series."""
MAX_COUNT = 10**9
"""People, patents, years, steps: counts that are not money or units."""
MAX_DEPTH = 32
"""JSON nesting a request may use (the deepest request shape needs fewer than ten levels)."""
DEFAULT_MAX_TEXT = 200


# -- the types ------------------------------------------------------------------------------


def _int(ge: int, le: int, description: str) -> Any:
    return Annotated[int, msgspec.Meta(ge=ge, le=le, description=description)]


def _text(max_length: int, description: str, *, min_length: int = 0, prose: bool = False,
          pattern: str | None = None) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_length or None, max_length=max_length, pattern=pattern,
                                       description=description, extra={"text": "prose" if prose else "line"})]


def decimal(places: int, *, minimum: str = "0", maximum: str = "1e12", description: str) -> Any:
    """A decimal travelling as a canonical JSON string with at most `places` places, minimum <= x < maximum."""
    sign = "-?" if Decimal(minimum) < 0 else ""
    pattern = f"^{sign}(0|[1-9][0-9]*)(\\.[0-9]{{1,{places}}})?$"
    bounds = f"{minimum} ≤ x < {maximum}"
    return Annotated[Decimal, msgspec.Meta(
        description=f"{description} — a decimal string, at most {places} places, {bounds}",
        extra_json_schema={"extra": {"pattern": pattern}},
        extra={"decimal": (places, Decimal(minimum), Decimal(maximum))})]


Fen = _int(0, MAX_FEN, "money in integer fen (分), at most 10^18")
SignedFen = _int(-MAX_FEN, MAX_FEN, "money in integer fen (分), a loss negative, at most 10^18 either way")
Units = _int(1, MAX_UNITS, "warrant units, 1 to 10^12")
Count = _int(0, MAX_COUNT, "a count, 0 to 10^9")
Position = _int(-1, MAX_BIGINT, "a log position")

RATIO_PLACES = 8
Price = decimal(8, description="yuan per unit")
Figure = decimal(12, minimum="-1e12", description="a market input, judged by the rule that uses it")
Whole = _int(-MAX_BIGINT, MAX_BIGINT, "a whole number, judged by the rule that uses it")
Ratio = decimal(RATIO_PLACES, description="a ratio")
Factor = decimal(12, description="a factor applied to an entitlement or a price")
ShareAmount = decimal(4, minimum="0", maximum="1e12", description="shares (or yuan of registered capital)")

Name = _text(200, "a name: 1 to 200 characters on one line", min_length=1)
Identifier = _text(64, "an identifier: 1 to 64 characters without spaces", min_length=1, pattern=r"^\S+$")
Reference = _text(200, "a reference, e.g. a court order's number: 1 to 200 characters on one line", min_length=1)
Digest = _text(128, "a SHA-256 digest in 64 lowercase hex digits")
Uri = _text(2048, "a URI")
Reason = _text(2000, "why: up to 2,000 characters, lines allowed", prose=True)
DocumentText = _text(1_000_000, "a document's text: lines allowed", prose=True)


# -- refusing what is not one of them --------------------------------------------------------


class FieldInvalid(ValueError):
    """A request field breaks its type: `path` names it (`terms.allocations[0].units`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class FigureOutOfRange(RuleViolation):
    """A sum or product of money or units would pass what the register can hold: the command is refused
    before anything is written, and the figure is named."""

    code = "figure.out_of_range"
    title = "A figure would be larger than the register can hold"


def within(figure: str, value: int, *, maximum: int = MAX_BIGINT, **figures: Any) -> int:
    """`value` if it fits the register (0 <= value <= maximum); otherwise the command is refused, naming it."""
    if not 0 <= value <= maximum:
        raise FigureOutOfRange(f"{figure} would be {value}, more than the register holds ({maximum})",
                               figure=figure, value=str(value), maximum=str(maximum), **figures)
    return value


_REFUSED_CATEGORIES = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def check_text(value: str, path: str, *, prose: bool = False) -> str:
    """The text NFC-normalised; refused if it holds a control, format (bidi, zero-width, BOM), private-use
    or line-separator character, or — on one line — begins or ends with white space."""
    if not value.isascii():
        value = unicodedata.normalize("NFC", value)
    if not value.isprintable():
        for at, char in enumerate(value):
            if char.isprintable() or (prose and char in "\n\t"):
                continue
            category = unicodedata.category(char)
            if category in _REFUSED_CATEGORIES:
                name = unicodedata.name(char, "a control character")
                raise FieldInvalid(path, f"contains U+{ord(char):04X} ({name}) at character {at}; "
                                         "text may not hold control, bidi, zero-width or byte-order characters")
    if not prose and value != value.strip():
        raise FieldInvalid(path, "begins or ends with white space")
    return value


def check_decimal(value: object, path: str, places: int, minimum: Decimal, maximum: Decimal) -> None:
    if not isinstance(value, str):
        raise FieldInvalid(path, f"a decimal travels as a JSON string such as \"7.5\", got {type(value).__name__}")
    if not is_canonical_decimal(value, places):
        raise FieldInvalid(path, f"{value[:40]!r} is not a decimal written as ASCII digits with at most {places} "
                                 "places (no spaces, plus sign, exponent or leading zeros)")
    number = Decimal(value)
    if not minimum <= number < maximum:
        raise FieldInvalid(path, f"{value} is outside {minimum} ≤ x < {maximum}")


def is_canonical_decimal(text: str, places: int) -> bool:
    """`text` spells a decimal the one way: ASCII digits, a minus only before a non-zero number, no leading
    zeros, no exponent, at most `places` places."""
    if not text.isascii() or not text:
        return False
    body = text[1:] if text[0] == "-" else text
    whole, dot, fraction = body.partition(".")
    if not whole.isdigit() or (len(whole) > 1 and whole[0] == "0"):
        return False
    if dot and not (fraction.isdigit() and len(fraction) <= places):
        return False
    return not (text[0] == "-" and set(whole + fraction) <= {"0"})  # no "-0"


@lru_cache(maxsize=None)
def _info(type_: Any) -> mi.Type:
    return mi.type_info(type_)


def decode(raw: Any, type_: type[T]) -> T:
    """JSON builtins (as msgspec.json.decode gives them) held to `type_`: text checked and normalised,
    decimals checked against their canonical spelling and bounds, then converted strictly (no "1" for 1).
    Raises FieldInvalid naming the field."""
    value = _walk(_info(type_), raw, "", 0)
    try:
        return msgspec.convert(value, type_, strict=True)
    except msgspec.ValidationError as exc:
        message, _, where = str(exc).rpartition(" - at `$")
        if not message:
            raise FieldInvalid("", str(exc)) from None
        raise FieldInvalid(where.rstrip("`").lstrip("."), message) from None


def _walk(t: mi.Type, value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise FieldInvalid(path, f"nested deeper than {MAX_DEPTH} levels")
    extra: dict[str, Any] = {}
    if isinstance(t, mi.Metadata):
        extra, t = t.extra or {}, t.type
    if isinstance(t, mi.UnionType):
        if value is None:
            return value
        member = next((m for m in t.types if _accepts(m, value)), None)
        return value if member is None else _walk(member, value, path, depth)
    if isinstance(value, str) and isinstance(t, mi.StrType):
        if t.max_length is None and len(value) > DEFAULT_MAX_TEXT:
            raise FieldInvalid(path, f"is longer than {DEFAULT_MAX_TEXT} characters")
        return check_text(value, path, prose=extra.get("text") == "prose")
    if isinstance(t, mi.DecimalType):
        places, minimum, maximum = extra.get("decimal", (12, Decimal("-1e12"), Decimal("1e12")))
        check_decimal(value, path, places, minimum, maximum)
        return value
    if isinstance(t, mi.StructType) and isinstance(value, dict):
        value = dict(value)
        for field in t.fields:
            if field.encode_name in value:
                value[field.encode_name] = _walk(field.type, value[field.encode_name],
                                                 f"{path}.{field.encode_name}".lstrip("."), depth + 1)
        return value
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)) and isinstance(value, list):
        return [_walk(t.item_type, item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(t, mi.DictType) and isinstance(value, dict):
        return {check_text(k, path): _walk(t.value_type, v, f"{path}.{k}".lstrip("."), depth + 1)
                for k, v in value.items()}
    if isinstance(t, mi.AnyType):
        return _walk_any(value, path, depth)
    return value


def _accepts(t: mi.Type, value: Any) -> bool:
    """Which member of a union a JSON value is meant for (msgspec's convert decides the rest)."""
    inner = t.type if isinstance(t, mi.Metadata) else t
    if isinstance(value, str):
        return isinstance(inner, (mi.StrType, mi.DecimalType))
    if isinstance(value, dict):
        return isinstance(inner, (mi.StructType, mi.DictType, mi.AnyType))
    if isinstance(value, list):
        return isinstance(inner, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType, mi.AnyType))
    return False


def _walk_any(value: Any, path: str, depth: int) -> Any:
    """A part of a request whose shape a later step decides (an approval's payload): only its nesting and its
    text are judged here."""
    if depth > MAX_DEPTH:
        raise FieldInvalid(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return check_text(value, path, prose=True)
    if isinstance(value, dict):
        return {check_text(k, path): _walk_any(v, f"{path}.{k}".lstrip("."), depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_any(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    return value
