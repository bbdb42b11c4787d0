"""Digest rendering: one e-mail per recipient per round, sections in order, templates sandboxed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from duban.notifiers.digest import Recipient
from duban.notifiers.render import DigestRenderer
from duban.notifiers.samples import sample_digest, sample_item

TEMPLATES = Path(__file__).resolve().parents[1] / "rules" / "templates"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A private copy of the default templates that a test may break."""
    target = tmp_path / "rules" / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


@pytest.fixture
def renderer() -> DigestRenderer:
    return DigestRenderer(TEMPLATES)


def test_default_templates_load_without_problems(renderer: DigestRenderer) -> None:
    assert renderer.problems == ()


def test_a_unit_with_three_lagging_items_gets_one_digest_listing_all_three(renderer: DigestRenderer) -> None:
    digest = sample_digest()
    rendered = renderer.render(digest)
    assert rendered.problems == ()
    for item in digest.items:
        assert item.title in rendered.text
        assert item.title in rendered.html
        assert item.action in rendered.text
        assert item.source in rendered.text
    assert rendered.subject == (
        "【鹿城区服务业高质量发展“十百千”工程建设工作专班】2023年7月月调度：3项待办（红灯1项）"
    )


def test_sections_come_in_the_order_red_yellow_reminder_praise_resolved(renderer: DigestRenderer) -> None:
    items = (
        sample_item(kind="resolved", level=None, template="resolved", title="销号事项甲"),
        sample_item(kind="praise", level="green", template="praise", title="表扬事项乙"),
        sample_item(kind="reminder", level="blue", template="reminder", title="提醒事项丙"),
        sample_item(kind="warning", level="yellow", title="黄灯事项丁"),
        sample_item(kind="escalation", level=None, template="escalation", title="升级事项戊"),
    )
    rendered = renderer.render(sample_digest(items=items))
    headings = ["一、红灯事项", "二、黄灯事项", "三、提醒事项", "四、表扬事项", "五、销号事项"]
    positions = [rendered.text.index(heading) for heading in headings]
    assert positions == sorted(positions)
    assert rendered.text.index("升级事项戊") < rendered.text.index("黄灯事项丁") < rendered.text.index("销号事项甲")
    assert "4项待办（红灯2项）" not in rendered.subject  # praise and resolved are not 待办
    assert rendered.subject.endswith("3项待办（红灯1项）")


def test_subject_names_the_worst_light_present(renderer: DigestRenderer) -> None:
    yellow_only = sample_digest(items=(sample_item(level="yellow"), sample_item(level="yellow", title="另一项")))
    assert renderer.render(yellow_only).subject.endswith("2项待办（黄灯2项）")
    praise_only = sample_digest(items=(sample_item(kind="praise", level="green", template="praise"),))
    assert renderer.render(praise_only).subject.endswith("通报表扬1项")


def test_each_item_shows_figures_deadline_source_and_action(renderer: DigestRenderer) -> None:
    rendered = renderer.render(sample_digest(items=(sample_item(),)))
    for expected in ("58.4%", "66.7%", "2023年7月12日", "温鹿政办〔2023〕55号", "请于5个工作日内向专班报送整改措施"):
        assert expected in rendered.text
        assert expected in rendered.html


def test_lights_are_badges_with_text_not_colour_alone(renderer: DigestRenderer) -> None:
    html = renderer.render(sample_digest()).html
    assert "background:#c0392b;color:#ffffff\">红灯</span>" in html
    assert ">黄灯</span>" in html
    assert "<style" not in html  # mail clients drop style sheets: inline CSS only


def test_a_unit_name_containing_script_is_escaped_in_html(renderer: DigestRenderer) -> None:
    digest = sample_digest(
        recipient=Recipient("evil", "<script>alert(1)</script>局", "department", ("a@example.cn",)),
        items=(sample_item(subject_name="<b onmouseover=x>项目</b>"),),
    )
    rendered = renderer.render(digest)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;局" in rendered.html
    assert "&lt;b onmouseover=x&gt;" in rendered.html
    assert "<script>alert(1)</script>局" in rendered.text  # plain text is not HTML: shown as typed


def test_a_template_reaching_python_internals_is_refused_and_reported(templates: Path) -> None:
    (templates / "items" / "warning.html.j2").write_text(
        "<p>{{ item.title }}</p>\n{{ ''.__class__.__mro__ }}\n", encoding="utf-8"
    )
    renderer = DigestRenderer(templates)
    problem = next(p for p in renderer.problems if p.path.endswith("items/warning.html.j2"))
    assert problem.line == 2
    assert "受保护的内部属性" in problem.message and "拒绝" in problem.message
    rendered = renderer.render(sample_digest())
    assert "<class" not in rendered.html and "object" not in rendered.html
    assert "服务业投资占全区固定资产投资比重低于2/3" in rendered.html  # fallback kept the notice


@pytest.mark.parametrize(
    "attack",
    [
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ ('' | attr('__class__')) }}",
        "{{ item['__class__'] }}",
    ],
)
def test_every_route_to_python_internals_is_blocked(templates: Path, attack: str) -> None:
    (templates / "items" / "warning.txt.j2").write_text(f"{{{{ item.title }}}}\n{attack}\n", encoding="utf-8")
    renderer = DigestRenderer(templates)
    rendered = renderer.render(sample_digest())
    problems = [str(p) for p in renderer.problems + rendered.problems]
    assert any("items/warning.txt.j2:2:" in p and "拒绝" in p for p in problems), problems
    assert "globals" not in rendered.text and "Context" not in rendered.text


def test_a_syntax_error_is_reported_with_file_and_line_and_blocks_that_template_only(templates: Path) -> None:
    (templates / "items" / "reminder.txt.j2").write_text("第一行\n{% if item.title %}\n未闭合\n", encoding="utf-8")
    renderer = DigestRenderer(templates)
    problems = [str(p) for p in renderer.problems]
    assert len(problems) == 1
    assert problems[0].startswith(f"{templates / 'items' / 'reminder.txt.j2'}:")
    assert "模板语法错误" in problems[0]
    rendered = renderer.render(sample_digest())
    # The reminder fell back to the built-in template; the warnings still use theirs.
    assert "服务业“大走访大调研大服务大解题”活动" in rendered.text
    assert "【红灯】服务业投资占全区固定资产投资比重低于2/3" in rendered.text
    assert [str(p) for p in rendered.problems] == problems


def test_a_runtime_error_is_reported_at_its_line_and_the_item_falls_back(templates: Path) -> None:
    (templates / "items" / "warning.html.j2").write_text(
        "<p>{{ item.title }}</p>\n<p>{{ item.no_such_field }}</p>\n", encoding="utf-8"
    )
    renderer = DigestRenderer(templates)
    assert renderer.problems == ()
    rendered = renderer.render(sample_digest())
    [problem] = rendered.problems
    assert problem.path.endswith("items/warning.html.j2")
    assert problem.line == 2
    assert "不存在的字段" in problem.message
    assert rendered.html.count("请于5个工作日内向专班报送整改措施") >= 1


def test_relative_template_paths_are_reported_as_the_admin_sees_them(
    templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (templates / "items" / "warning.html.j2").write_text("{{ item.oops }}\n", encoding="utf-8")
    monkeypatch.chdir(templates.parents[1])
    rendered = DigestRenderer("rules/templates").render(sample_digest())
    assert [str(p).split(": ")[0] for p in rendered.problems] == ["rules/templates/items/warning.html.j2:1"]


def test_an_unknown_item_template_falls_back_and_names_the_rule_file(renderer: DigestRenderer) -> None:
    rendered = renderer.render(sample_digest(items=(sample_item(template="no_such_kind"),)))
    assert "服务业投资占全区固定资产投资比重低于2/3" in rendered.text
    assert any("items/no_such_kind.txt.j2" in str(p) and "不存在" in str(p) for p in rendered.problems)
    bad_name = renderer.render(sample_digest(items=(sample_item(template="../../etc/passwd"),)))
    assert any(str(p).startswith("rules/lucheng/investment.yaml:12:") for p in bad_name.problems)


def test_times_are_shown_in_shanghai_time(renderer: DigestRenderer) -> None:
    rendered = renderer.render(sample_digest())  # 01:00 UTC
    assert "2023年7月5日 09:00" in rendered.html
    assert "2023年7月5日 09:00" in rendered.markdown


def test_dingtalk_markdown_lists_every_item_with_its_action(renderer: DigestRenderer) -> None:
    rendered = renderer.render(sample_digest())
    assert rendered.markdown.startswith("#### 鹿城区服务业高质量发展“十百千”工程建设工作专班：2023年7月月调度")
    for item in sample_digest().items:
        assert f"{item.title}（" in rendered.markdown and item.action in rendered.markdown


def test_figures_keep_the_documents_precision_and_wording() -> None:
    from duban.notifiers.render import format_number, goal_text, target_worded

    assert format_number(2.331) == "2.331"  # 出口占全国份额2.331%, not 2.33%
    assert format_number(100 * 5 / 6) == "83.33"
    assert format_number(2.331 - 2.32) == "0.011"
    assert target_worded(800, "家", "more_than") == "超过800家"
    assert target_worded(1000, "名", "about") == "1000名左右"
    assert target_worded(12, "家", "at_least") == "12家以上"
    assert goal_text("2023全年", "2023全年") == ""
    assert goal_text("2023 全年，力争全区普惠型小微企业贷款增速不低于各项贷款平均增速", "2023全年") \
        == "力争全区普惠型小微企业贷款增速不低于各项贷款平均增速"
