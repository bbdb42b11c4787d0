"""A small, safe grammar for bounds in rule files. No Python `eval` anywhere.

    bound   := expr
    expr    := term (('+' | '-') term)*
    term    := factor (('*' | '/') factor)*
    factor  := NUMBER ['%'] | INDICATOR | '(' expr ')' | '-' factor

A bound is written in the indicator's own measure (`8` against a % indicator means 8 %),
except a fraction of two literals such as `2/3`, which is a ratio: against a % indicator it
means 66.67 %. `50%` is explicit. An INDICATOR is another indicator's code; it stands for
that indicator's latest value in the same period (Huzhou: service investment growth must
keep level with `fixed_asset_investment_growth`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(.))")

# What a bound may be: short, shallow, finite. Everything beyond is refused when the rule is loaded
# (`duban check`, a reload), so evaluation never meets a bound it cannot compute.
MAX_TEXT = 200  # characters: the longest real bound is a sum of two indicators
MAX_DEPTH = 12  # nested parentheses / signs / operators: the parser recurses once per level
MAX_NUMBER = 1e12  # |number| written in a bound, and |value| of its constant parts


class ExpressionError(ValueError):
    """A bad expression; `offset` is the 0-based character position of the problem."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class BoundUndefined(ValueError):
    """The bound has no value for these figures (a divisor of indicators came out zero)."""


@dataclass(frozen=True)
class Num:
    value: float
    is_percent: bool = False


@dataclass(frozen=True)
class Ref:
    code: str


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Node
    right: Node


Node = Num | Ref | Neg | BinOp


@dataclass(frozen=True)
class Bound:
    """A parsed bound, ready to be resolved against a period's values."""

    text: str
    node: Node

    @property
    def references(self) -> frozenset[str]:
        return _refs(self.node)

    @property
    def is_ratio(self) -> bool:
        """True for a literal fraction like 2/3, which is scaled by 100 against a % indicator."""
        node = self.node
        return (
            isinstance(node, BinOp)
            and node.op == "/"
            and isinstance(node.left, Num)
            and isinstance(node.right, Num)
            and not node.left.is_percent
            and not node.right.is_percent
        )

    def resolve(self, measure: str, lookup: Callable[[str], float | None]) -> float | None:
        """The bound's value in the indicator's measure; None when a referenced figure is missing.

        Raises BoundUndefined when the figures make it undefined (a divisor of indicators is zero).
        """
        value = _value(self.node, lookup)
        if value is None:
            return None
        if self.is_ratio and measure == "%":
            return value * 100
        return value


def _refs(node: Node) -> frozenset[str]:
    if isinstance(node, Ref):
        return frozenset({node.code})
    if isinstance(node, Neg):
        return _refs(node.operand)
    if isinstance(node, BinOp):
        return _refs(node.left) | _refs(node.right)
    return frozenset()


def _value(node: Node, lookup: Callable[[str], float | None]) -> float | None:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Ref):
        return lookup(node.code)
    if isinstance(node, Neg):
        inner = _value(node.operand, lookup)
        return None if inner is None else -inner
    left, right = _value(node.left, lookup), _value(node.right, lookup)
    if left is None or right is None:
        return None
    if node.op == "+":
        return left + right
    if node.op == "-":
        return left - right
    if node.op == "*":
        return left * right
    if right == 0:
        # Constant zero divisors are refused when the rule is loaded; this one came from the figures.
        raise BoundUndefined("除数为零")
    return left / right


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        for m in _TOKEN.finditer(text):
            number, name, other = m.groups()
            if number is not None:
                self.tokens.append(("num", number, m.start(1)))
            elif name is not None:
                self.tokens.append(("name", name, m.start(2)))
            elif other is not None and not other.isspace():
                self.tokens.append(("op", other, m.start(3)))
        self.pos = 0
        self.depth = 0

    def deeper(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"表达式嵌套过深（超过 {MAX_DEPTH} 层）", offset)

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("表达式为空", 0)
        node = self.expr()
        if (token := self.peek()) is not None:
            raise ExpressionError(f"无法识别 '{token[1]}'", token[2])
        return node

    def expr(self) -> Node:
        node = self.term()
        while (token := self.peek()) and token[0] == "op" and token[1] in "+-":
            self.take()
            node = BinOp(token[1], node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while (token := self.peek()) and token[0] == "op" and token[1] in "*/":
            self.take()
            right = self.factor()
            if token[1] == "/" and _constant(right) == 0:
                raise ExpressionError("除数为零", token[2])
            node = BinOp(token[1], node, right)
        return node

    def factor(self) -> Node:
        token = self.peek()
        if token is None:
            raise ExpressionError("表达式不完整", len(self.text))
        kind, text, offset = self.take()
        if kind == "num":
            value = float(text)
            if not abs(value) <= MAX_NUMBER:  # also catches the inf a 400-digit literal becomes
                raise ExpressionError(f"数字过大（绝对值不能超过 {MAX_NUMBER:.0e}）", offset)
            following = self.peek()
            if following and following[:2] == ("op", "%"):
                self.take()
                return Num(value, is_percent=True)
            return Num(value)
        if kind == "name":
            return Ref(text)
        if text == "-":
            self.deeper(offset)
            operand = self.factor()
            self.depth -= 1
            return Neg(operand)
        if text == "(":
            self.deeper(offset)
            node = self.expr()
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing[:2] != ("op", ")"):
                raise ExpressionError("缺少右括号 ')'", closing[2] if closing else len(self.text))
            self.take()
            return node
        raise ExpressionError(f"无法识别 '{text}'", offset)


def _constant(node: Node) -> float | None:
    """The value of a part without indicator references (None if it has any)."""
    if _refs(node):
        return None
    return _value(node, lambda _code: None)


def parse_bound(value: object) -> Bound:
    """Parse a YAML scalar (number or string) into a Bound; raises ExpressionError.

    Refused: non-finite or huge numbers, texts over MAX_TEXT characters, nesting over MAX_DEPTH,
    division by a constant zero, and constant parts whose value is not a finite number.
    """
    if isinstance(value, bool):
        raise ExpressionError("应为数字、百分数或分数（如 2/3），不能是 true/false", 0)
    if isinstance(value, int | float):
        if isinstance(value, int) and not -MAX_NUMBER <= value <= MAX_NUMBER:
            raise ExpressionError(f"数字过大（{len(str(abs(value)))} 位，绝对值不能超过 {MAX_NUMBER:.0e}）", 0)
        number = float(value)
        if not math.isfinite(number) or abs(number) > MAX_NUMBER:
            raise ExpressionError(f"应为有限的数字（绝对值不超过 {MAX_NUMBER:.0e}；不能是 .nan、.inf）", 0)
        return Bound(str(value), Num(number))
    if not isinstance(value, str):
        raise ExpressionError("应为数字、百分数或分数（如 2/3）", 0)
    text = value.strip().replace("％", "%")
    if len(text) > MAX_TEXT:
        raise ExpressionError(f"表达式过长（超过 {MAX_TEXT} 个字符）", MAX_TEXT)
    node = _Parser(text).parse()
    constant = _constant(node)
    if constant is not None and not abs(constant) <= MAX_NUMBER:
        raise ExpressionError(f"表达式的值过大或无效（绝对值不能超过 {MAX_NUMBER:.0e}）", 0)
    return Bound(text, node)


def check_references(bound: Bound, known: Mapping[str, object] | set[str]) -> list[str]:
    return sorted(code for code in bound.references if code not in known)
