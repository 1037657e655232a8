"""统一社会信用代码 (Unified Social Credit Code, GB 32100-2015): validation and parts."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import msgspec

# GB 32100-2015 code alphabet, in value order: a character's value is its index.
# I, O, Z, S and V are left out because they are easily misread as 1, 0, 2, 5 and U.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"

# Weight of each of the first 17 positions: 3**i mod 31.
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

LENGTH = 18

_VALUE = {character: value for value, character in enumerate(ALPHABET)}
_DIGITS = frozenset("0123456789")


class UsccError(Exception):
    """A string that is not a valid 统一社会信用代码.

    ``code`` is stable (``uscc.length``, ``uscc.alphabet``, ``uscc.division_code``,
    ``uscc.check_character``, ``uscc.province``); ``detail`` is for people; ``figures``
    holds the values involved, e.g. ``{"expected": "K", "actual": "4"}``.
    """

    def __init__(self, code: str, detail: str, **figures: int | str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.figures: Mapping[str, int | str] = MappingProxyType(dict(figures))


class Uscc(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A validated 统一社会信用代码 and its five parts. Obtain one from ``validate_uscc``."""

    code: str
    # 登记管理部门代码, position 1 (e.g. 9 = market regulation / 工商).
    registration_authority: str
    # 机构类别代码, position 2 (e.g. 1 = enterprise / 企业, under authority 9).
    organisation_type: str
    # 登记管理机关行政区划码, positions 3-8 (GB/T 2260); 12xxxx is Tianjin.
    division_code: str
    # 主体标识码 (组织机构代码, GB 11714), positions 9-17.
    organisation_code: str
    # 校验码, position 18.
    check_character: str


def uscc_check_character(first17: str) -> str:
    """校验码: the 18th character of a 统一社会信用代码 computed from the first 17.

    GB 32100-2015: sum of value × weight over positions 1-17, C18 = 31 − (sum mod 31),
    and 31 is written as 0. Raises ``UsccError`` if ``first17`` is not 17 characters of
    the code alphabet.
    """
    if len(first17) != LENGTH - 1:
        raise UsccError(
            "uscc.length",
            f"the check character is computed from {LENGTH - 1} characters, got {len(first17)}",
            length=len(first17),
        )
    _require_alphabet(first17)
    total = sum(_VALUE[character] * weight for character, weight in zip(first17, WEIGHTS))
    return ALPHABET[(31 - total % 31) % 31]


def validate_uscc(code: str, *, province_prefix: str | None = None) -> Uscc:
    """统一社会信用代码 must be exactly 18 characters of the GB 32100 alphabet whose
    18th character is the 校验码 of the first 17.

    The register is exact: nothing is stripped and lowercase is refused, not uppercased.
    With ``province_prefix`` (e.g. ``"12"`` for Tianjin) the 行政区划码 must start with it,
    because a regional market may not serve enterprises outside its province (国办发〔2017〕11号).

    The 9-character 组织机构代码 inside has its own GB 11714 check character; it is not
    checked here, since the GB 32100 check already covers all 17 characters and codes
    issued since 2015 need not carry a legacy 组织机构代码. Nor are positions 1-2 checked
    against the list of authority and organisation-type codes: that list grows, and a
    stale copy would refuse genuine codes.
    """
    if not isinstance(code, str):
        raise TypeError(f"a USCC is a str, got {type(code).__name__}")
    if province_prefix is not None:
        _require_prefix_argument(province_prefix)
    if len(code) != LENGTH:
        raise UsccError(
            "uscc.length",
            f"a USCC has {LENGTH} characters, got {len(code)}",
            length=len(code),
        )
    _require_alphabet(code)
    division_code = code[2:8]
    for offset, character in enumerate(division_code):
        if character not in _DIGITS:
            position = offset + 3
            raise UsccError(
                "uscc.division_code",
                f"position {position} is {character!r}; positions 3-8 are the "
                "行政区划码 and must be digits",
                position=position,
                character=character,
            )
    expected = uscc_check_character(code[:17])
    if code[17] != expected:
        raise UsccError(
            "uscc.check_character",
            f"the check character (position 18) should be {expected!r}, got {code[17]!r}",
            expected=expected,
            actual=code[17],
        )
    if province_prefix is not None and not division_code.startswith(province_prefix):
        raise UsccError(
            "uscc.province",
            f"registered in division {division_code}, outside the province "
            f"whose division codes start with {province_prefix}",
            division_code=division_code,
            province_prefix=province_prefix,
        )
    return Uscc(
        code=code,
        registration_authority=code[0],
        organisation_type=code[1],
        division_code=division_code,
        organisation_code=code[8:17],
        check_character=code[17],
    )


def _require_alphabet(text: str) -> None:
    # Report the first offending character; positions are 1-based, as GB 32100 counts them.
    for index, character in enumerate(text):
        if character not in _VALUE:
            raise UsccError(
                "uscc.alphabet",
                f"position {index + 1} is {character!r}, which is not in the GB 32100 "
                f"alphabet {ALPHABET}",
                position=index + 1,
                character=character,
            )


def _require_prefix_argument(province_prefix: str) -> None:
    # A malformed prefix is a caller's mistake, not a wrong code: fail loudly and differently.
    if not (
        isinstance(province_prefix, str)
        and 1 <= len(province_prefix) <= 6
        and all(character in _DIGITS for character in province_prefix)
    ):
        raise ValueError(
            f"province_prefix must be 1-6 digits of a 行政区划码, got {province_prefix!r}"
        )
