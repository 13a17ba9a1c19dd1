"""Criteria data: the bundled sets, the loader's errors, and scoring / recognition rules."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.domain.criteria import CriteriaError, Level, load_catalog, load_criteria_file, parse_criteria, score

CATALOG = load_catalog()
CD = CATALOG.get("cd-qd244-2022")
GD = CATALOG.get("gd-qd448-2015")


def test_citizen_set_follows_qd244():
    assert CD.title == "cd" and CD.subject == "person"
    assert [c.id for c in CD.criteria] == ["I", "II", "III"]
    assert [len(c.items) for c in CD.criteria] == [4, 4, 2]
    assert [i.id for i in CD.items] == [str(n) for n in range(1, 11)]
    assert CD.max_total == 100
    assert CD.recognition.total_min == 80 and CD.recognition.item_floor == 5
    assert "244" in CD.decision
    # The per-indicator points are not in the decision text we hold: flagged as provisional data.
    assert all(item.provisional for item in CD.items)
    assert not CD.recognition.provisional


def test_family_set_marks_unconfirmed_parts_provisional():
    assert GD.subject == "household" and "448" in GD.decision
    assert GD.max_total == 100
    first, second, third, fourth = GD.criteria
    assert sum(i.max_points for i in first.items) == 30 and not any(i.provisional for i in first.items)
    assert [i.provisional for i in second.items] == [False, False, True]
    assert third.provisional and fourth.provisional
    assert GD.recognition.provisional and GD.is_provisional
    # Households without school-age children are not penalised on the children's items.
    assert Level.NOT_APPLICABLE in GD.item("1.1").levels


def test_catalog_picks_set_by_title_and_year():
    assert CATALOG.for_title("cd", 2026).id == "cd-qd244-2022"
    assert CATALOG.for_title("gd", 2026).id == "gd-qd448-2015"
    with pytest.raises(CriteriaError, match="no criteria set for title 'cd' in 2020"):
        CATALOG.for_title("cd", 2020)
    assert CATALOG.titles() == ["cd", "gd"]


MINIMAL = """
id: test-set
version: 1
title: cd
title_name: {vi: Thử, en: Test}
subject: person
issuer: Test
decision: QĐ test
valid_from_year: 2024
criteria:
  - id: A
    text: {vi: Nhóm A, en: Group A}
    items:
      - id: a1
        text: {vi: Mục 1, en: Item 1}
        max_points: 10
%s
recognition:
  total_min: 5
"""


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("id: [unclosed", None, "not valid YAML"),
        ("- just\n- a list", None, "one mapping"),
        (MINIMAL.replace("subject: person", "subject: village") % "", "subject", "Input should be"),
        (MINIMAL.replace("max_points: 10", "max_points: 0") % "", "criteria.0.items.0.max_points", "greater than 0"),
        (MINIMAL % "        points: {achieved: 12, not_yet: 0}", "criteria.0.items.0", "outside 0..max_points"),
        (MINIMAL % "        points: {partial: 5, not_yet: 0}", "criteria.0.items.0", "at least 'achieved'"),
        (MINIMAL.replace("total_min: 5", "total_min: 50") % "", None, "exceeds the total of max_points"),
        (MINIMAL.replace("total_min: 5", "total_min: 5\n  mandatory_items: [zz]") % "", None, "unknown item 'zz'"),
        (MINIMAL % "      - id: a1\n        text: {vi: x, en: y}\n        max_points: 1", None, "duplicate item id 'a1'"),
        (MINIMAL.replace("title_name: {vi: Thử, en: Test}", "title_name: {vi: Thử}") % "", "title_name.en", "Field required"),
        (MINIMAL.replace("version: 1", "version: 1\ncolour: red") % "", "colour", "Extra inputs"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path: Path, body: str, field: str | None, message: str):
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    with pytest.raises(CriteriaError) as caught:
        load_criteria_file(path)
    text = str(caught.value)
    assert str(path) in text
    assert message in text
    if field:
        assert field in text


def test_unreadable_file_is_reported(tmp_path: Path):
    with pytest.raises(CriteriaError, match="cannot read"):
        load_criteria_file(tmp_path / "missing.yaml")


def test_extra_folder_sets_are_loaded_and_ids_must_be_unique(tmp_path: Path):
    (tmp_path / "local.yaml").write_text(MINIMAL % "", encoding="utf-8")
    catalog = load_catalog([tmp_path])
    assert "test-set" in catalog.sets
    (tmp_path / "again.yaml").write_text(MINIMAL % "", encoding="utf-8")
    with pytest.raises(CriteriaError, match="already defined"):
        load_catalog([tmp_path])


def _answers(levels: list[str]) -> dict[str, str]:
    return {str(i): level for i, level in enumerate(levels, start=1)}


def test_exactly_80_with_every_indicator_at_least_5_is_recognised():
    result = score(CD, _answers(["achieved"] * 6 + ["partial"] * 4))
    assert result.total == 80
    assert result.recognisable
    assert result.blocking_items == []


def test_79_is_not_enough():
    custom = parse_criteria(
        MINIMAL.replace("total_min: 5", "total_min: 8") % "        points: {achieved: 10, partial: 7, not_yet: 0}",
        "inline",
    )
    assert not score(custom, {"a1": "partial"}).recognisable
    assert score(custom, {"a1": "achieved"}).recognisable


def test_high_total_with_one_indicator_below_floor_is_not_recognised():
    result = score(CD, _answers(["achieved"] * 9 + ["not_yet"]))
    assert result.total == 90
    assert not result.recognisable
    assert result.below_floor == ["10"]


def test_an_indicator_at_4_blocks_recognition_and_5_does_not():
    text = CATALOG_FILE.read_text(encoding="utf-8").replace(
        'points: {achieved: 10, partial: 5, not_yet: 0}', 'points: {achieved: 10, partial: 4, not_yet: 0}', 1
    )
    four = parse_criteria(text, "four.yaml")
    answers = _answers(["partial"] + ["achieved"] * 9)
    at_four = score(four, answers)
    assert at_four.total == 94 and at_four.per_item["1"] == 4
    assert not at_four.recognisable and at_four.below_floor == ["1"]
    at_five = score(CD, answers)
    assert at_five.total == 95 and at_five.recognisable


CATALOG_FILE = Path(__file__).resolve().parent.parent / "bot" / "criteria" / "cd-qd244-2022.yaml"


def test_unanswered_items_count_zero_and_block():
    result = score(CD, _answers(["achieved"] * 9))
    assert result.total == 90
    assert result.unanswered == ["10"]
    assert not result.recognisable


def test_not_applicable_scores_full_and_is_not_below_floor():
    answers = {item.id: "achieved" for item in GD.items}
    answers.update({"1.1": "not_applicable", "1.2": "not_applicable", "1.3": "not_applicable"})
    result = score(GD, answers)
    assert result.total == 100 and result.recognisable


def test_level_not_offered_is_refused():
    with pytest.raises(ValueError, match="does not accept"):
        score(CD, {"1": "not_applicable"})


def test_mandatory_items_must_be_achieved():
    custom = parse_criteria(
        MINIMAL.replace("total_min: 5", "total_min: 0\n  mandatory_items: [a1]") % "", "inline"
    )
    assert score(custom, {"a1": "partial"}).mandatory_missing == ["a1"]
    assert score(custom, {"a1": "achieved"}).recognisable
