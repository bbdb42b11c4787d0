"""Chinese for click's own words: usage line, headings, metavars and its error messages.

click marks its messages for gettext (`from gettext import gettext as _` in each module) but ships
no catalogue. duban's users read Chinese, so `install()` points those module-level names at a small
catalogue below (a message without a translation stays as click wrote it), and `ZhFormatter` writes
"用法：", "选项：", "命令：" and Chinese metavars. Option names (--db, --month) stay as they are: the
user types them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import click

# click's msgid → Chinese. Placeholders keep click's names; `{name!r}` and friends come pre-quoted.
MESSAGES: dict[str, str] = {
    "Usage:": "用法：",
    "Options": "选项",
    "Commands": "命令",
    "Show this message and exit.": "显示本帮助并退出。",
    "Show the version and exit.": "显示版本号并退出。",
    "%(prog)s, version %(version)s": "%(prog)s 版本 %(version)s",
    "Error: {message}": "错误：{message}",
    "Try '{command} {option}' for help.": "可运行“{command} {option}”查看帮助。",
    "Missing command.": "缺少子命令。",
    "Missing argument": "缺少参数",
    "Missing option": "缺少选项",
    "Missing parameter": "缺少参数",
    "Missing {param_type}": "缺少{param_type}",
    "Missing parameter: {param_name}": "缺少参数：{param_name}",
    "No such option {name!r}.": "没有选项 {name!r}。",
    "No such command {name!r}.": "没有子命令 {name!r}。",
    "Invalid value: {message}": "取值无效：{message}",
    "Invalid value for {param_hint}: {message}": "{param_hint} 的取值无效：{message}",
    "Could not open file {filename!r}: {message}": "无法打开文件 {filename!r}：{message}",
    "unknown error": "未知错误",
    "Aborted!": "已中止。",
    "default: {default}": "默认：{default}",
    "env var: {var}": "环境变量：{var}",
    "required": "必填",
    "(dynamic)": "（动态）",
    "deprecated": "已弃用",
    "Option {name!r} does not take a value.": "选项 {name!r} 不接受取值。",
    "Argument {name!r} takes {nargs} values.": "参数 {name!r} 需要 {nargs} 个值。",
    "Invalid start character for option ({option})": "选项的起始字符无效（{option}）",
    "Value must be an iterable.": "取值应为多个值。",
    "Choose from:\n\t{choices}": "可选值：\n\t{choices}",
    "{value} is not in the range {range}.": "{value} 不在范围 {range} 内。",
    "{value!r} is not a valid boolean. Recognized values: {states}": "{value!r} 不是有效的是/否值，可用：{states}",
    "{value!r} is not a valid {number_type}.": "{value!r} 不是有效的{number_type}。",
    "{value!r} is not a valid UUID.": "{value!r} 不是有效的 UUID。",
    "file": "文件",
    "directory": "目录",
    "path": "路径",
    "{name} {filename!r} is a file.": "{name} {filename!r} 是文件，应为目录。",
    "{name} {filename!r} is a directory.": "{name} {filename!r} 是目录，应为文件。",
    "{name} {filename!r} is not readable.": "{name} {filename!r} 不可读。",
    "{name} {filename!r} is not writable.": "{name} {filename!r} 不可写。",
    "{name} {filename!r} is not executable.": "{name} {filename!r} 不可执行。",
    "{name} {filename!r} does not exist.": "{name} {filename!r} 不存在。",
    "Do you want to continue?": "是否继续？",
    "Repeat for confirmation": "请再输入一次以确认",
    "Error: The two entered values do not match.": "错误：两次输入不一致。",
    "Error: invalid input": "错误：输入无效",
    "Press any key to continue...": "按任意键继续……",
    "Confirm the action without prompting.": "不经询问直接执行。",
}

# (singular msgid, plural msgid) → Chinese (no plural forms in Chinese; click passes both placeholders).
PLURALS: dict[tuple[str, str], str] = {
    ("Got unexpected extra argument ({args})", "Got unexpected extra arguments ({args})"): "多余的参数（{args}）",
    ("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)"): "是否应为 {possibilities}？",
    ("Option {name!r} requires an argument.", "Option {name!r} requires {nargs} arguments."):
        "选项 {name!r} 需要取值。",
    ("Takes {nargs} values but 1 was given.", "Takes {nargs} values but {len} were given."):
        "需要 {nargs} 个值，实际给出 {len} 个。",
    ("{value!r} is not {choice}.", "{value!r} is not one of {choices}."): "{value!r} 无效，可选值：{choices}。",
    ("{value!r} does not match the format {format}.", "{value!r} does not match the formats {formats}."):
        "{value!r} 不符合格式 {formats}。",
    ("{len_type} values are required, but {len_value} was given.",
     "{len_type} values are required, but {len_value} were given."): "需要 {len_type} 个值，实际给出 {len_value} 个。",
}

# Type names click shows as metavars (TEXT, INTEGER …) and in "is not a valid integer".
_METAVARS = {"TEXT": "文本", "INTEGER": "整数", "FLOAT": "数值", "DIRECTORY": "目录", "FILE": "文件",
             "PATH": "路径", "BOOLEAN": "是/否", "FILENAME": "文件名"}
_METAVAR_RE = re.compile(r"(?<![\w-])(" + "|".join(_METAVARS) + r")(?![\w-])")
_NUMBER_TYPES = {"integer": "整数", "float": "数值"}


def gettext(message: str) -> str:
    return MESSAGES.get(message, message)


class _Missing(dict[str, Any]):
    """Format mapping that leaves absent placeholders empty (the singular/plural merge above)."""

    def __missing__(self, key: str) -> str:
        return ""


class _Plural(str):
    """A translated plural whose `.format` fills whichever placeholder click passes."""

    __slots__ = ()

    def format(self, *args: Any, **kwargs: Any) -> str:
        if "number_type" in kwargs:
            kwargs["number_type"] = _NUMBER_TYPES.get(kwargs["number_type"], kwargs["number_type"])
        return self.format_map(_Missing(kwargs))


class _Formattable(str):
    __slots__ = ()

    def format(self, *args: Any, **kwargs: Any) -> str:
        if "number_type" in kwargs:
            kwargs["number_type"] = _NUMBER_TYPES.get(kwargs["number_type"], kwargs["number_type"])
        message = kwargs.get("message")
        if isinstance(message, str) and message.endswith(".") and not message.isascii():
            kwargs["message"] = message[:-1] + "。"  # click appends an English full stop ("缺少选项 '--month'.")
        return str.format(self, *args, **kwargs)


def _translate(message: str) -> str:
    translated = MESSAGES.get(message)
    return _Formattable(translated) if translated is not None else message


def ngettext(singular: str, plural: str, n: int) -> str:
    translated = PLURALS.get((singular, plural))
    if translated is None:
        return singular if n == 1 else plural
    return _Plural(translated)


def zh_metavars(text: str) -> str:
    """`--month TEXT` → `--month 文本`; option names and choices are left alone."""
    text = text.replace("[OPTIONS]", "[选项]").replace("COMMAND [ARGS]...", "命令 [参数]...")
    return _METAVAR_RE.sub(lambda m: _METAVARS[m.group(1)], text)


def display_width(text: str) -> int:
    """Terminal columns: a Chinese character (or full-width punctuation) takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# A bracketed note ("[默认：3.0]") and ASCII words stay whole; a Chinese line may break at any character.
_PIECES = re.compile(r"\[[^\]\n]{1,20}\]|[\x21-\x7e]+|\s+|.", re.S)
_NO_LINE_START = set("。，、；：！？）」』”’》】…")  # closing punctuation never starts a line


def wrap(text: str, width: int) -> list[str]:
    """Greedy line breaking by display width (textwrap counts characters and breaks only at spaces)."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, used = "", 0
        for piece in _PIECES.findall(" ".join(paragraph.split())):
            size = display_width(piece)
            if used + size > width and line.strip():
                carried = ""
                if piece in _NO_LINE_START:  # carry the last character over with the punctuation
                    cut = len(line)
                    while cut > 0 and line[cut - 1] in _NO_LINE_START:
                        cut -= 1
                    cut = max(cut - 1, 0)
                    line, carried = line[:cut], line[cut:]
                if line.strip():
                    lines.append(line.rstrip())
                    line = "" if piece.isspace() and not carried else carried + piece
                    used = display_width(line)
                    continue
                line = carried
                used = display_width(line)
            line, used = line + piece, used + size
        lines.append(line.rstrip())
    return lines


class ZhFormatter(click.HelpFormatter):
    """click's help layout with Chinese headings and metavars, aligned and wrapped by display width."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, zh_metavars(args), "用法：" if prefix is None else prefix)

    def write_heading(self, heading: str) -> None:
        self.write(f"{'':>{self.current_indent}}{gettext(heading)}：\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        width = max(self.width - self.current_indent, 20)
        for line in wrap(text, width):
            self.write(f"{indent}{line}\n" if line else "\n")

    def write_dl(self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = [(zh_metavars(term), text) for term, text in rows]
        if not rows:
            return
        first = min(max(display_width(term) for term, _ in rows), col_max) + col_spacing
        text_width = max(self.width - first - self.current_indent, 20)
        hanging = " " * (first + self.current_indent)
        for term, text in rows:
            self.write(f"{'':>{self.current_indent}}{term}")
            if not text:
                self.write("\n")
                continue
            if display_width(term) <= first - col_spacing:
                self.write(" " * (first - display_width(term)))
            else:
                self.write("\n" + hanging)
            lines = wrap(text, text_width)
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(f"{hanging}{line}\n")


class ZhContext(click.Context):
    formatter_class = ZhFormatter


class ZhCommand(click.Command):
    context_class = ZhContext


class ZhGroup(click.Group):
    context_class = ZhContext
    command_class = ZhCommand
    group_class = type  # subgroups are ZhGroups too


_INSTALLED = False


def install() -> None:
    """Point click's gettext names at the catalogue above (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import click.core
    import click.decorators
    import click.exceptions
    import click.formatting
    import click.parser
    import click.termui
    import click.types

    translate: Callable[[str], str] = _translate
    for module in (click.core, click.decorators, click.exceptions, click.formatting, click.parser, click.termui,
                   click.types):
        if hasattr(module, "_"):
            module._ = translate  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
    _INSTALLED = True
