"""YAML syntax errors explained in Chinese, at the line and column where the user should look.

ruamel.yaml reports problems in its own terms ("mapping values are not allowed here", "expected
<block end>, but found '<block mapping start>'"). An official editing a rule file needs to know what
to change: `explain` turns the scanner's and parser's messages into a Chinese sentence and picks the
mark that points at the cause (for an unclosed quote, the opening quote, not the end of the file).
Values are never rendered (an alias could expand to gigabytes); only short keys and single characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ruamel.yaml.error import MarkedYAMLError

_TOKENS = {
    "<block mapping start>": "新的“键: 值”",
    "<block sequence start>": "新的列表项“- ”",
    "<block end>": "同级内容的结束",
    "<scalar>": "多余的文字",
    "?": "新的键",
    "-": "列表项“- ”",
}


@dataclass(frozen=True)
class YamlProblem:
    line: int
    column: int
    message: str


def _short(text: str, limit: int = 30) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "…"


def _char(raw: str) -> str:
    names = {"\\t": "制表符（Tab）", "\t": "制表符（Tab）", "\\n": "换行", "\n": "换行", " ": "空格"}
    return names.get(raw, f"“{raw}”")


def explain(exc: MarkedYAMLError) -> YamlProblem:
    """The Chinese explanation of a ruamel.yaml syntax error, with the 1-based line and column."""
    problem = str(exc.problem or "")
    context = str(exc.context or "")
    use_context = False
    message: str
    if problem.startswith("mapping values are not allowed"):
        message = ("此处不能再出现“键: 值”的冒号。若这是一段文字（如标题、说明中的“：”写成了英文冒号加空格），"
                   "请给整段文字加引号；若是新的键，请换行并与同级的键对齐缩进")
    elif problem.startswith("could not find expected ':'"):
        use_context = True
        message = "这一行缺少冒号“:”：键后应写“: 值”（冒号后加空格）；若是多行文字，续行应比键缩进更多"
    elif "cannot start any token" in problem:
        found = re.search(r"found character '(.*?)' that cannot", problem)
        char = found.group(1) if found else ""
        if char in ("\\t", "\t"):
            message = "这里有制表符（Tab）：YAML 只能用空格缩进，请把 Tab 换成空格"
        else:
            message = f"值不能以字符{_char(char)}开头：请给这个值加引号，如 \"{char}…\""
    elif problem.startswith("found a tab character"):
        message = "这里有制表符（Tab）：YAML 只能用空格缩进，请把 Tab 换成空格"
    elif problem.startswith("expected <block end>, but found"):
        found = re.search(r"but found '(.*?)'$", problem)
        what = _TOKENS.get(found.group(1), "其他内容") if found else "其他内容"
        if what == "多余的文字":
            message = "一个值后面还有多余的文字：带引号的值在引号后不能再写内容，请把整段放进引号里"
        else:
            message = f"缩进不一致：这里出现了{what}，但它的缩进与上面同级的内容不同；请按上一层对齐（只用空格）"
    elif problem.startswith("found duplicate key"):
        found = re.search(r'found duplicate key "(.*?)" with value', problem)
        key = _short(found.group(1)) if found else ""
        message = f"同一层中键 `{key}` 出现了两次：请删除或合并其中一个"
    elif problem.startswith("found unexpected end of stream") and "quoted scalar" in context:
        use_context = True
        message = "引号没有闭合：从这里开始的引号直到文件末尾都没有对应的结束引号"
    elif "quoted scalar" in context:
        use_context = True
        message = "引号中的文字有误（引号未闭合，或续行缩进不足）：请检查从这里开始的引号"
    elif "flow sequence" in context:
        use_context = True
        message = "方括号列表 [ … ] 没有闭合，或元素之间缺少英文逗号“,”：请检查从这里开始的方括号"
    elif "flow mapping" in context:
        use_context = True
        message = "花括号 { … } 没有闭合，或项之间缺少英文逗号“,”：请检查从这里开始的花括号"
    elif problem.startswith("found undefined alias"):
        found = re.search(r"found undefined alias '(.*?)'", problem)
        message = f"引用了未定义的锚点 *{_short(found.group(1)) if found else ''}：请先用 &名称 定义，或去掉星号"
    elif "anchor" in context or "alias" in context:
        message = "锚点（&名称）或引用（*名称）的名称无效：名称应由字母、数字组成，紧跟在 & 或 * 之后"
    elif problem.startswith("expected a comment or a line break"):
        message = "这一行末尾有多余的内容：请删除，或给整个值加引号"
    elif "block scalar" in context:
        use_context = True
        message = "多行文字（| 或 >）的写法有误：续行应比键缩进更多且彼此对齐"
    elif problem.startswith("did not find expected '-' indicator") or problem.startswith("did not find expected key"):
        message = "缩进不一致：这一行的缩进与上面同级的内容不同；请按上一层对齐（只用空格）"
    else:
        message = f"无法解析此处内容（{_short(problem or context or type(exc).__name__, 80)}）"
    mark = (exc.context_mark if use_context else exc.problem_mark) or exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return YamlProblem(line, column, f"YAML 语法错误：{message}")
