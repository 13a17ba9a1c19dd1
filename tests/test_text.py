from __future__ import annotations

import unicodedata

import pytest

from bot.text import clean_name, fold, nfc, parse_year


def test_fold_removes_diacritics_case_and_punctuation():
    assert fold("Chưa Đạt!") == "chua dat"
    assert fold("  ĐẠT   MỘT PHẦN ") == "dat mot phan"
    assert fold(unicodedata.normalize("NFD", "Hòa")) == "hoa"


def test_nfc_composes_and_collapses_spaces():
    assert nfc(unicodedata.normalize("NFD", "Nguyễn  Thị\tHoa ")) == "Nguyễn Thị Hoa"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nguyễn thị hoa", "Nguyễn Thị Hoa"),
        ("NGUYEN VAN A", "Nguyen Van A"),
        ("h'nga niê", "H'Nga Niê"),
        ("Y Bih", "Y Bih"),
        ("Trần thị Bé", "Trần thị Bé"),
        ("12345", None),
        ("a", None),
        ("Hoa 1975", None),
        ("<script>", None),
        ("x" * 101, None),
    ],
)
def test_clean_name(raw, expected):
    assert clean_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1975", 1975), ("năm 1975", 1975), (" 2001 ", 2001), ("75", None), ("19755", None), ("abc", None)],
)
def test_parse_year(raw, expected):
    assert parse_year(raw) == expected
