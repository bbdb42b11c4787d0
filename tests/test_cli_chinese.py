"""The command line speaks Chinese to its users: every help text, click's own usage and error lines,
YAML syntax errors (explained, at file:line:column), and what `duban check` could not check."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from duban.cli import main
from duban.cli.zh import display_width, wrap

CJK = re.compile(r"[\u4e00-\u9fff]")
# Three English words in a row is a sentence, not an identifier or an option name.
ENGLISH_SENTENCE = re.compile(r"\b[A-Za-z]{2,}\b[ ,]+\b[A-Za-z]{2,}\b[ ,]+\b[A-Za-z]{2,}\b")


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL_COMMANDS = [((), main), *commands(main)]


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=[" ".join(p) or "duban" for p, _ in ALL_COMMANDS])
def test_every_command_and_option_explains_itself_in_chinese(path: tuple[str, ...], command: click.Command) -> None:
    assert CJK.search(command.help or ""), f"duban {' '.join(path)}: 命令说明应为中文：{command.help!r}"
    for param in command.params:
        if isinstance(param, click.Option):
            assert CJK.search(param.help or ""), f"duban {' '.join(path)} {param.opts[0]}: 选项说明应为中文"
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100, prog_name="duban")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("用法：duban")
    assert "选项：" in result.output and "显示本帮助并退出。" in result.output
    for english in ("Usage:", "Options:", "Commands:", "Show this message", "[default:", "[required]", " TEXT"):
        assert english not in result.output
    body = result.output.split("\n", 1)[1]  # below the usage line (which names the command)
    # Option names, environment variables, file suffixes, links and commands quoted by name are identifiers.
    without_names = re.sub(r"(?<![\w-])--?[\w-]+|[A-Z_]{3,}|\.\w+|promtool test rules|https?://\S+"
                           r"|duban(?: [a-z][\w-]*)+", "", body)
    assert not ENGLISH_SENTENCE.search(without_names), result.output


def test_the_command_list_is_aligned_by_display_width() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=80, prog_name="duban")
    lines = result.output.splitlines()
    start = lines.index("命令：") + 1
    rows = [line for line in lines[start:] if line.startswith("  ") and not line.startswith("   ")]
    columns = {display_width(re.match(r"  \S+\s+", line).group(0)) for line in rows}  # type: ignore[union-attr]
    assert len(columns) == 1, "every command's description starts in the same terminal column"
    assert all(display_width(line) <= 80 for line in lines), "no help line is wider than the terminal"


def test_wrapping_never_starts_a_line_with_closing_punctuation() -> None:
    for width in range(20, 50):
        lines = wrap("在目录中生成空白 .xlsx 填报模板（每张清单一个工作簿，附“说明”工作表）。按节奏运行各轮次（会商、调度、分析……）"
                     "并发送通知；停机后自动补跑。", width)
        assert not any(line[0] in "。，；：）”…" for line in lines), lines
        assert all(display_width(line) <= width for line in lines), lines


def test_a_missing_required_option_is_reported_in_chinese() -> None:
    result = CliRunner().invoke(main, ["report", "quarterly"], prog_name="duban")
    assert result.exit_code == 2
    assert "用法：duban report quarterly [选项]" in result.output
    assert "可运行“duban report quarterly --help”查看帮助。" in result.output
    assert "错误：缺少选项 '--quarter'。" in result.output


def test_a_value_outside_the_choices_names_the_choices_in_chinese() -> None:
    result = CliRunner().invoke(main, ["alerts", "--state", "open"], prog_name="duban")
    assert result.exit_code == 2
    assert "错误：'--state' 的取值无效：'open' 无效，可选值：'firing', 'resolved', 'all'。" in result.output


def test_an_unknown_command_and_a_bad_number_are_reported_in_chinese() -> None:
    unknown = CliRunner().invoke(main, ["reprot"], prog_name="duban")
    assert "错误：没有子命令 'reprot'。" in unknown.output
    bad = CliRunner().invoke(main, ["send", "--limit", "十"], prog_name="duban")
    assert "错误：'--limit' 的取值无效：'十' 不是有效的整数。" in bad.output
    assert "Error" not in unknown.output + bad.output


# --- YAML syntax errors: explained, at the cause ---

PROGRAMME = "programme: demo\nworking_group: zhuanban\n"


def check_rules(tmp_path: Path, rules_text: str, *options: str) -> tuple[int, str]:
    directory = tmp_path / "demo"
    directory.mkdir(exist_ok=True)
    (directory / "programme.yaml").write_text(PROGRAMME, encoding="utf-8")
    (directory / "rules.yaml").write_text(textwrap.dedent(rules_text), encoding="utf-8")
    result = CliRunner().invoke(main, [*options, "check", str(directory)], prog_name="duban")
    return result.exit_code, result.output


YAML_CASES = [
    ("a colon inside a title", "rules:\n  - id: a\n    title: 说明: 内容\n", (3, 14), "请给整段文字加引号"),
    ("a key without its colon", "rules:\n  - id: a\n    title\n    kind: threshold\n", (3, 5), "这一行缺少冒号"),
    ("a tab used for indentation", "rules:\n\t- id: a\n", (2, 1), "制表符（Tab）"),
    ("a key indented one space off", "rules:\n  - id: a\n   kind: threshold\n", (3, 4), "缩进不一致"),
    ("a key given twice", "rules:\n  - id: a\n    id: b\n", (3, 5), "键 `id` 出现了两次"),
    ("an unclosed quote", "rules:\n  - id: a\n    title: \"未闭合\n    kind: x\n", (3, 12), "引号没有闭合"),
    ("an unclosed list", "rules:\n  - id: x\n    kind: [threshold\n    title: t\n", (3, 11), "方括号列表"),
    ("a value starting with @", "rules:\n  - id: a\n    title: @专班\n", (3, 12), "请给这个值加引号"),
    ("text after a quoted value", "rules:\n  - id: a\n    title: \"甲\" 乙\n", (3, 16), "多余的文字"),
    ("an alias never defined", "rules:\n  - id: *nope\n", (2, 9), "未定义的锚点 *nope"),
]


@pytest.mark.parametrize(("text", "where", "explanation"), [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_a_yaml_syntax_error_is_explained_in_chinese_at_its_cause(
        tmp_path: Path, text: str, where: tuple[int, int], explanation: str) -> None:
    code, output = check_rules(tmp_path, text)
    assert code == 1
    [line] = [line for line in output.splitlines() if line.startswith(str(tmp_path))]
    assert line.startswith(f"{tmp_path / 'demo' / 'rules.yaml'}:{where[0]}:{where[1]}: YAML 语法错误："), line
    assert explanation in line
    assert not re.search(r"mapping values|could not find|expected|found|while scanning", line), line


def test_check_without_a_database_says_the_indicator_codes_were_not_checked(tmp_path: Path) -> None:
    rule = ("rules:\n  - id: floor\n    kind: threshold\n    title: 占比偏低\n    source: 不低于 2/3。\n"
            "    indicator: no_such_indicator\n    at_least: 2/3\n")
    code, output = check_rules(tmp_path, rule)
    assert code == 0
    assert "规则检查通过" in output
    assert "未指定 --db，未核对规则引用的指标代码" in output


def test_an_unknown_indicator_in_a_list_points_at_its_own_line(tmp_path: Path) -> None:
    from duban.engine.loader import check_against_store, load_rule_set

    rule = ("rules:\n  - id: floor\n    kind: threshold\n    title: 占比偏低\n    source: 不低于 2/3。\n"
            "    indicators:\n      - known\n      - unknown_one\n    at_least: 2/3\n"
            "  - id: ratio\n    kind: threshold\n    title: 增速偏低\n    source: 不低于固投增速。\n"
            "    indicator: known\n    at_least: other_unknown\n")
    check_rules(tmp_path, rule)
    rule_set = load_rule_set(tmp_path / "demo")
    errors = check_against_store(rule_set, {"known"}, {"zhuanban"})
    found = {(e.line, e.column, e.message.split("`")[-2]) for e in errors}
    assert found == {(8, 9, "unknown_one"), (15, 15, "other_unknown")}
