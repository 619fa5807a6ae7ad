"""Property tests of the identifier checks (GB 11643, GB 32100) and the normaliser."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from phip.standard.checks import (
    USCC_ALPHABET,
    IdNumberError,
    id_check_char,
    normalize_phone,
    normalize_text,
    parse_id_number,
    upgrade_id15,
    uscc_check_char,
    uscc_problem,
)

regions = st.sampled_from(["110101", "220102", "222401", "320102", "440305", "650102"])
births = st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31))
sequences = st.integers(min_value=0, max_value=999)


@st.composite
def id_numbers(draw):
    body = f"{draw(regions)}{draw(births):%Y%m%d}{draw(sequences):03d}"
    return body + id_check_char(body)


def test_known_vector():
    # 11010519491231002X is the sample number printed in GB 11643 itself.
    assert parse_id_number("11010519491231002X") == ("11010519491231002X", False)
    assert parse_id_number("11010519491231002x")[0].endswith("X")


@given(id_numbers())
def test_valid_numbers_pass(number):
    assert parse_id_number(number) == (number, False)


@given(id_numbers(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_any_single_character_change_is_caught(number, position, char):
    changed = number[:position] + char + number[position + 1 :]
    if changed == number or (position == 17 and char == "X" and False):
        return
    try:
        parsed, _ = parse_id_number(changed)
    except IdNumberError:
        return
    # the only accepted change is none at all: MOD 11-2 detects every single substitution
    assert parsed == number


@given(regions, st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)), sequences)
def test_fifteen_digit_numbers_upgrade(region, born, seq):
    old = f"{region}{born:%y%m%d}{seq:03d}"
    upgraded, was = parse_id_number(old)
    assert was and len(upgraded) == 18
    assert upgraded == upgrade_id15(old)
    assert upgraded[6:14] == f"{born:%Y%m%d}"
    assert parse_id_number(upgraded) == (upgraded, False)


def test_bad_shapes():
    for bad, code in [("12345", "ID_NO_FORMAT"), ("99010519491231002X", "ID_NO_REGION"),
                      ("110105194902300021", "ID_NO_BIRTH"), ("110105194912310021", "ID_NO_CHECKSUM")]:
        try:
            parse_id_number(bad)
        except IdNumberError as exc:
            assert exc.code == code, bad
        else:
            raise AssertionError(bad)


uscc_bodies = st.text(alphabet=USCC_ALPHABET, min_size=10, max_size=10).map(lambda s: s)


@given(st.sampled_from("159Y"), st.sampled_from("123"), regions, uscc_bodies)
def test_uscc_valid_and_single_changes(authority, category, region, body):
    first17 = f"{authority}{category}{region}{body[:9]}"
    code = first17 + uscc_check_char(first17)
    assert uscc_problem(code) is None
    for pos in (0, 8, 16):
        other = next(c for c in USCC_ALPHABET if c != code[pos])
        assert uscc_problem(code[:pos] + other + code[pos + 1 :]) is not None


def test_uscc_known_code_and_formats():
    assert uscc_problem("91350100M000100Y43") is None  # sample code used in GB 32100 material
    assert uscc_problem("91350100M000100Y44") == "USCC_CHECKSUM"
    assert uscc_problem("9135010") == "USCC_FORMAT"
    assert uscc_problem("91350100M0001O0Y43") == "USCC_FORMAT"  # letter O is not in the alphabet


ascii_alnum = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", max_size=30)


@given(ascii_alnum)
def test_fullwidth_folds_to_ascii(text):
    wide = "".join(chr(ord(c) + 0xFEE0) for c in text)
    assert normalize_text(wide) == text
    assert normalize_text(f"\u3000 {wide}\t ") == text


@given(st.text(max_size=50))
def test_normaliser_is_idempotent_and_keeps_chinese_punctuation(text):
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert normalize_text("咳嗽，发热：３天") == "咳嗽，发热：3天"


def test_phones():
    assert normalize_phone("138-0431-1234") == "13804311234"
    assert normalize_phone("0431-88906388") == "043188906388"
    assert normalize_phone("88906388") == "88906388"
    assert normalize_phone("12345") is None
    assert normalize_phone("23800001111") is None


@given(st.text(alphabet="0123456789X", min_size=0, max_size=20))
def test_problems_agree_with_the_parser(raw):
    """id_number_problems lists every failed check; its first is the one parse_id_number
    raises, and a number has none exactly when the parser accepts it."""
    from phip.standard.checks import IdNumberError, id_number_problems, parse_id_number

    problems = id_number_problems(raw)
    try:
        parse_id_number(raw)
    except IdNumberError as exc:
        assert problems and problems[0].code == exc.code
    else:
        assert problems == ()
    assert len({p.code for p in problems}) == len(problems)
