"""统一社会信用代码 (GB 32100-2015) validation."""

import pytest

from registry.parties.uscc import (
    ALPHABET,
    Uscc,
    UsccError,
    uscc_check_character,
    validate_uscc,
)

# Worked by hand, so the test does not trust the code it checks.
# first 17: 9 1 1 2 0 1 1 6 M A 0 5 J K 1 2 3   (M=21, A=10, J=18, K=19 in the alphabet)
# weights:  1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
# products: 9 3 9 54 0 26 16 102 420 290 0 65 144 456 10 60 84  -> sum 1748
# 1748 mod 31 = 12; 31 - 12 = 19 -> alphabet[19] = "K"
TIANJIN_BINHAI = "91120116MA05JK123K"

# 华为技术有限公司, a widely published code; it passes the GB 32100 check (C18 = 6).
HUAWEI = "914403001922038216"


def error_from(code: str, **kwargs: str) -> UsccError:
    with pytest.raises(UsccError) as caught:
        validate_uscc(code, **kwargs)
    return caught.value


def test_the_hand_worked_check_character_matches_the_algorithm() -> None:
    assert uscc_check_character(TIANJIN_BINHAI[:17]) == "K"


def test_a_remainder_of_zero_gives_check_character_zero_not_31() -> None:
    # sum 0 -> 31 - 0 = 31, which GB 32100 writes as 0
    assert uscc_check_character("0" * 17) == "0"
    assert validate_uscc("0" * 18).check_character == "0"


def test_a_valid_code_is_split_into_its_five_parts() -> None:
    assert validate_uscc(TIANJIN_BINHAI) == Uscc(
        code=TIANJIN_BINHAI,
        registration_authority="9",
        organisation_type="1",
        division_code="120116",
        organisation_code="MA05JK123",
        check_character="K",
    )


def test_a_published_real_code_is_accepted() -> None:
    parsed = validate_uscc(HUAWEI)
    assert parsed.division_code == "440300"
    assert parsed.organisation_code == "192203821"
    assert parsed.check_character == "6"


def test_every_check_character_value_round_trips() -> None:
    # Vary position 17 (weight 28, invertible mod 31) to reach all 31 check values.
    seen = set()
    for character in ALPHABET:
        first17 = "9112011600000000" + character
        check = uscc_check_character(first17)
        validate_uscc(first17 + check)
        seen.add(check)
    assert seen == set(ALPHABET)


def test_a_made_up_code_with_a_wrong_check_character_names_the_expected_one() -> None:
    error = error_from("91120116MA05JK1234")
    assert error.code == "uscc.check_character"
    assert error.figures == {"expected": "K", "actual": "4"}


def test_a_single_changed_character_is_caught_by_the_check() -> None:
    tampered = HUAWEI[:9] + "3" + HUAWEI[10:]
    assert error_from(tampered).code == "uscc.check_character"


@pytest.mark.parametrize("length", [0, 15, 17, 19])
def test_a_code_that_is_not_18_characters_is_refused_with_its_length(length: int) -> None:
    code = (TIANJIN_BINHAI * 2)[:length]
    error = error_from(code)
    assert error.code == "uscc.length"
    assert error.figures == {"length": length}


def test_surrounding_whitespace_is_not_stripped() -> None:
    error = error_from(f" {TIANJIN_BINHAI}")
    assert error.code == "uscc.length"
    assert error.figures == {"length": 19}


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V"])
def test_letters_left_out_of_the_alphabet_are_refused_with_their_position(letter: str) -> None:
    code = TIANJIN_BINHAI[:10] + letter + TIANJIN_BINHAI[11:]
    error = error_from(code)
    assert error.code == "uscc.alphabet"
    assert error.figures == {"position": 11, "character": letter}


def test_lowercase_is_refused_not_uppercased() -> None:
    error = error_from(TIANJIN_BINHAI[:17] + "k")
    assert error.code == "uscc.alphabet"
    assert error.figures == {"position": 18, "character": "k"}


def test_a_full_width_digit_is_an_alphabet_error() -> None:
    error = error_from("９" + TIANJIN_BINHAI[1:])
    assert error.code == "uscc.alphabet"
    assert error.figures == {"position": 1, "character": "９"}


def test_the_first_offending_character_is_reported() -> None:
    error = error_from("9112011600000O00Z0")
    assert error.figures == {"position": 14, "character": "O"}


def test_a_letter_in_the_division_code_is_refused() -> None:
    first17 = "9112A116MA05JK123"
    error = error_from(first17 + uscc_check_character(first17))
    assert error.code == "uscc.division_code"
    assert error.figures == {"position": 5, "character": "A"}


def test_a_tianjin_code_is_accepted_for_province_prefix_12() -> None:
    assert validate_uscc(TIANJIN_BINHAI, province_prefix="12").division_code == "120116"


def test_a_tianjin_code_is_refused_for_province_prefix_11() -> None:
    error = error_from(TIANJIN_BINHAI, province_prefix="11")
    assert error.code == "uscc.province"
    assert error.figures == {"division_code": "120116", "province_prefix": "11"}


def test_a_wrong_check_character_is_reported_before_the_province() -> None:
    assert error_from("91440300192203821A", province_prefix="12").code == "uscc.check_character"


@pytest.mark.parametrize("prefix", ["", "1a", "1234567", " 12"])
def test_a_malformed_province_prefix_is_a_caller_error(prefix: str) -> None:
    with pytest.raises(ValueError):
        validate_uscc(TIANJIN_BINHAI, province_prefix=prefix)


def test_a_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        validate_uscc(914403001922038216)  # type: ignore[arg-type]


def test_the_check_character_helper_refuses_a_wrong_length_or_alphabet() -> None:
    with pytest.raises(UsccError) as caught:
        uscc_check_character("91120116")
    assert caught.value.code == "uscc.length"
    with pytest.raises(UsccError) as caught:
        uscc_check_character("91120116MA05JK12I")
    assert caught.value.figures == {"position": 17, "character": "I"}


def test_the_error_carries_a_human_detail() -> None:
    error = error_from("91120116MA05JK1234")
    assert "K" in error.detail and "4" in error.detail
    assert str(error).startswith("uscc.check_character")
