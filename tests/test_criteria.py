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
    assert CD.decision == "QĐ 244/QĐ-KHVN ngày 28/7/2022"
    assert CD.decision_title == (
        'Ban hành Bộ tiêu chí và Hướng dẫn đánh giá, công nhận danh hiệu "Công dân học tập" giai đoạn 2021–2030'
    )
    assert [c.text.vi for c in CD.criteria] == [
        "Năng lực tự học và học tập suốt đời",
        "Năng lực sử dụng các công cụ tương tác",
        "Năng lực xây dựng và thực hiện các mối quan hệ xã hội",
    ]
    # At most 10 points per indicator and the pass rule are confirmed; only "partly = 5" is ours.
    assert all(item.max_points == 10 and not item.provisional for item in CD.items)
    assert all(item.provisional_levels == [Level.PARTIAL] for item in CD.items)
    assert not CD.recognition.provisional and CD.pass_rule_confirmed
    assert CD.target_group is None


def test_citizen_indicators_carry_no_unsourced_wording_or_sensitive_hints():
    assert CD.item("6").text.vi == "Biết sử dụng ngoại ngữ phục vụ công việc"
    assert "dân tộc" not in CD.item("6").text.vi
    eight = CD.item("8").text.vi
    assert "tư duy biện chứng và tư duy phản biện" in eight and "tin giả" not in eight
    hint = CD.item("5").evidence_hint.vi
    assert "dịch vụ công" not in hint and "chuyển khoản" not in hint
    assert "đừng chụp CCCD, màn hình VNeID" in hint
    for item in CD.items + GD.items:
        if item.evidence_hint is None:
            continue
        for text in (item.evidence_hint.vi.replace("đừng chụp CCCD, màn hình VNeID", ""),):
            assert "CCCD" not in text and "căn cước" not in text and "VNeID" not in text


def test_family_set_carries_the_source_texts_of_qd448():
    assert GD.subject == "household" and GD.decision == "QĐ 448/QĐ-KHVN ngày 01/12/2015"
    assert GD.period == "2016–2020"
    assert "QĐ 387/QĐ-TTg ngày 25/3/2022" in GD.note.vi
    source_texts = {
        "1.1": "Trẻ em ở độ tuổi phổ cập đều được đến trường, hoàn thành phổ cập giáo dục theo quy định "
        "(trừ trường hợp ốm đau, bệnh tật, không có khả năng học tập)",
        "1.2": "Kết quả học tập đạt từ trung bình trở lên (hoặc đạt yêu cầu đối với học sinh tiểu học); "
        "hạnh kiểm từ Khá trở lên",
        "1.3": "Thật thà, lễ phép với mọi người trong gia đình và ngoài xã hội; "
        "tích cực tham gia các hoạt động chung ở địa phương",
        "2.1": "Người lớn từ 19 đến 60 tuổi (trừ những người không có khả năng học tập) đều đạt chuẩn biết chữ "
        "từ bậc 1 trở lên (tương đương lớp 3)",
    }
    assert {item_id: GD.item(item_id).text.vi for item_id in source_texts} == source_texts
    assert GD.item("2.2").text.vi.startswith("Hằng năm, người lớn trong gia đình đều tham gia học ít nhất 01 nội dung")
    assert GD.criteria[3].text.vi == "Tác động, hiệu quả học tập của các thành viên trong gia đình"


def test_family_set_marks_unsourced_parts_as_suggestions():
    assert GD.max_total == 100
    first, second, third, fourth = GD.criteria
    assert sum(i.max_points for i in first.items) == 30 and not any(i.provisional for i in first.items)
    assert [i.provisional for i in second.items] == [False, False, True]
    assert third.provisional and fourth.provisional
    assert all(i.provisional for i in third.items + fourth.items)
    # "Not applicable" (and "partly") points are ours, and so is the pass rule.
    for item_id in ("1.1", "1.2", "1.3"):
        assert Level.NOT_APPLICABLE in GD.item(item_id).levels
        assert Level.NOT_APPLICABLE in GD.item(item_id).provisional_levels
    assert GD.recognition.provisional and not GD.pass_rule_confirmed and GD.is_provisional


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
        (
            MINIMAL % "      - id: a1\n        text: {vi: x, en: y}\n        max_points: 1",
            None,
            "duplicate item id 'a1'",
        ),
        (
            MINIMAL.replace("title_name: {vi: Thử, en: Test}", "title_name: {vi: Thử}") % "",
            "title_name.en",
            "Field required",
        ),
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
        "points: {achieved: 10, partial: 5, not_yet: 0}", "points: {achieved: 10, partial: 4, not_yet: 0}", 1
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
    custom = parse_criteria(MINIMAL.replace("total_min: 5", "total_min: 0\n  mandatory_items: [a1]") % "", "inline")
    assert score(custom, {"a1": "partial"}).mandatory_missing == ["a1"]
    assert score(custom, {"a1": "achieved"}).recognisable


def _variant(set_id: str, **fields: str) -> str:
    """The national citizen set under another id, with extra top-level fields."""
    text = CATALOG_FILE.read_text(encoding="utf-8").replace("id: cd-qd244-2022", f"id: {set_id}", 1)
    extra = "".join(f"{key}: {value}\n" for key, value in fields.items())
    return text.replace("version: 1\n", "version: 1\n" + extra, 1)


def test_target_groups_each_have_their_form_and_the_general_form_steps_aside(tmp_path: Path):
    groups = {  # file: the set's id, its group, the group's name
        "farmers": ("cd-nong-dan", "nong-dan", "{vi: Nông dân và lao động nông thôn, en: Farmers and rural workers}"),
        "officials": ("cd-can-bo", "can-bo", '{vi: "Cán bộ, công chức, viên chức", en: Officials}'),
    }
    for file, (set_id, group, name) in groups.items():
        text = _variant(set_id, target_group=group, target_group_name=name)
        (tmp_path / f"{file}.yaml").write_text(text, encoding="utf-8")
    catalog = load_catalog([tmp_path])
    assert [s.id for s in catalog.target_groups("cd", 2026)] == ["cd-can-bo", "cd-nong-dan"]
    assert catalog.for_title("cd", 2026, target_group="nong-dan").id == "cd-nong-dan"
    assert catalog.for_title("cd", 2026, target_group="can-bo").id == "cd-can-bo"
    # The family title has one (general) form: nobody is asked for a group.
    assert [s.id for s in catalog.target_groups("gd", 2026)] == ["gd-qd448-2015"]
    assert CATALOG.target_groups("cd", 2026) == [CD]


def test_a_group_needs_its_name(tmp_path: Path):
    path = tmp_path / "g.yaml"
    path.write_text(_variant("cd-x", target_group="x"), encoding="utf-8")
    with pytest.raises(CriteriaError, match="target_group and target_group_name go together"):
        load_criteria_file(path)


def test_a_province_file_overrides_the_national_set_for_its_communes_only(tmp_path: Path):
    text = (Path(__file__).resolve().parent.parent / "bot/criteria/gd-qd448-2015.yaml").read_text(encoding="utf-8")
    own = text.replace("id: gd-qd448-2015", "id: gd-dak-lak-2026", 1).replace(
        "valid_from_year: 2016", "province: dak-lak\nvalid_from_year: 2026", 1
    )
    # The province confirms a pass rule: the file's recognition is no longer provisional.
    own = own[: own.index("recognition:")] + "recognition:\n  total_min: 70\n  item_floor: 5\n"
    (tmp_path / "gd-dak-lak.yaml").write_text(own, encoding="utf-8")
    catalog = load_catalog([tmp_path])
    mine = catalog.for_title("gd", 2026, province="dak-lak")
    assert mine.id == "gd-dak-lak-2026" and mine.pass_rule_confirmed and mine.recognition.total_min == 70
    assert catalog.for_title("gd", 2026, province="lam-dong").id == "gd-qd448-2015"
    assert catalog.for_title("gd", 2026).id == "gd-qd448-2015"
    result = score(mine, {i.id: "achieved" for i in mine.items})
    assert result.recognisable
