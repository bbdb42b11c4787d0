"""The only door to durable-rules: compile single-fact conditions once, evaluate fact lists deterministically.

durable-rules 2.0.28 has traps that make its public ``Host`` API unfit for a batch compliance engine
(measured in docs/dependency-hazards.md); this module keeps the workarounds, which rely on private
internals of ``durable.engine`` and on the C binding ``durable_rules_engine``, in one place:

* Threads. Every ``durable.engine.Host`` starts two ``threading.Timer`` loops that never stop, a batch
  whose facts do not all match raises before its actions run (the timer thread runs them ~0.2 s later),
  and ``delete_state`` while that thread is inside ``complete_and_start_action`` crashes the process
  (SIGSEGV, seen in bench/durable_bench.py). The Host adds nothing else we need (its ``set_rulesets`` even
  deletes ``'run'`` from the caller's dict), so each ``CompiledRuleset`` owns one C ruleset handle and
  plays the Host's part on the caller's thread: ``evaluate`` drains the action queue itself with
  ``start_action_for_state`` / ``complete_and_start_action`` before it returns. The queued "actions" are
  only read (rule name and fact id); no user code runs inside durable, so nothing can be swallowed.
* Numbers. durable's JSON reader accepts an exponent only after a decimal point: ``1e-05`` (Python's
  ``repr`` of 0.00001) ends the batch silently, losing that fact and every later one, and in a rule it
  fails with code 204. Such floats are written ``1.0e-05`` (``_durable_json``).
* Fact identity. durable keys a stored fact by a 32-bit FNV-1 hash of its ``id`` text; a distinct fact
  whose hash is taken is dropped with ``MessageObservedException``. Facts get the ids ``0 .. n-1`` per
  session; the decimal strings ``"0"`` .. ``"797185"`` have pairwise distinct hashes, distinct also from
  the session fact ``"sid-0"`` (proved in the tests), and a session never holds more than
  ``_SESSION_CAPACITY`` facts. Other ids (a custom ``FactIds``) are checked with the same hash before
  asserting and a colliding one is replaced by a spare id: durable's batch result code cannot be trusted
  to report the loss (it keeps only the last "not handled"/"observed" of a batch).
* Memory. A stored fact costs ~8 KiB in C and stays until its session is deleted. Conditions are on one
  fact, so facts never interact; ``evaluate`` therefore splits the facts into sessions of at most
  ``_SESSION_CAPACITY`` facts and deletes each session as soon as its matches are read.
* Type confusion. durable compares strings with numbers without complaint (``'10' < 5`` is true), checks
  only the first key of a multi-key object, and treats ``None`` as present. Facts are checked against a
  ``FactSchema`` before anything is asserted, and conditions are checked against the schema when compiled.
* Size. durable's C core builds one network per ruleset; a node may have at most 512 branches (distinct
  tests following it): at 513, ``create_ruleset`` spins at 100 % CPU forever inside C, where no signal
  handler runs. A ruleset also holds at most 4,096 rules (4,097 fails with code 106). Both measured on
  2.0.28 (bench/durable_limits.py). ``$and`` chains cost nothing (1,000 tests in one rule compile); every
  ``$or`` alternative is a branch. So the conditions are packed into several C rulesets, each below both
  limits: when every condition starts with an equality on one field (duban: ``{'rule': id}``), facts are
  routed by that field to the ruleset holding their conditions; a set that cannot be split and exceeds
  a limit is refused with a DurableError before durable ever sees it.
* Ruleset handles. ``Host`` never frees the C ruleset; ``close()`` (also run when the object is garbage
  collected) calls the binding's ``delete_ruleset``. Build a ``CompiledRuleset`` when rules change, not per
  evaluation.
"""

from __future__ import annotations

import copy
import json
import math
import operator
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine

FieldType = type  # int | float | str | bool

_ALLOWED_FIELD_TYPES: tuple[type, ...] = (int, float, str, bool)
# durable rejects objects with 255 properties; it adds ``sid`` and we add ``id``.
_MAX_FIELDS = 250
_RESERVED_FIELDS = frozenset({"id", "sid"})
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Facts per durable session. Small enough that the C message index (512 hash buckets, chained) stays
# short and memory stays bounded (~8 KiB per matching fact), large enough that per-session cost vanishes.
_SESSION_CAPACITY = 10_000
# Decimal ids below this bound have pairwise distinct 32-bit FNV-1 hashes (797186 collides with 40189).
SEQUENTIAL_IDS_WITHOUT_COLLISION = 797_186
# durable's default sid when a fact carries none; it then stores a session fact with this id.
_SESSION_ID = "0"
_SESSION_FACT_ID = "sid-" + _SESSION_ID
# Result codes of the C binding's assert calls (durable src/rules/rules.h).
_RESULT_OK = 0
_RESULT_NOT_HANDLED = 1
_ERR_SID_NOT_FOUND = 309

# Measured limits of durable-rules 2.0.28 (see "Size" above; bench/durable_limits.py re-measures them).
DURABLE_MAX_BRANCHES = 512  # distinct tests after one node; 513 hangs create_ruleset forever
DURABLE_MAX_RULES = 4096  # rules per C ruleset; 4,097 is error 106
# What one C ruleset is given here: below both, with room to spare.
_PACK_BRANCHES = 500
_PACK_RULES = 4000
_MAX_PATHS_PER_RULE = 512  # alternatives an $or-of-$and condition expands to

_DURABLE_CODES: Mapping[int, str] = {
    100: "a condition is an empty object",
    102: "a value has the wrong JSON type (a list, or a scalar where an object is expected)",
    103: "an identifier is too long",
    104: "unexpected value",
    105: "unexpected name: a rule's top-level key is not 'all' or 'any'",
    106: "too many rules in one ruleset",
    107: "too many $ex/$nex conditions",
    108: "too many joins",
    113: "the condition has too many expressions",
    201: "a value cannot be parsed",
    202: "unknown operator (durable knows $lt $lte $gt $gte $eq $neq $ex $nex $and $or $mt $imt)",
    203: "a number cannot be parsed",
    204: "malformed object: a condition without alias, or 'all' that is not a list",
    205: "malformed list",
    302: "a fact has more than 254 properties",
    303: "the condition is nested too deeply",
    309: "session not found",
    501: "the regular expression cannot be parsed",
    502: "the regular expression is too complex",
    503: "the regular expression is too complex",
    508: "the regular expression is invalid",
}
_CODE_IN_MESSAGE = re.compile(r"error code: (\d+)")

_COMPARISONS = frozenset({"$lt", "$lte", "$gt", "$gte", "$eq", "$neq"})
_ORDERINGS = frozenset({"$lt", "$lte", "$gt", "$gte"})
_ARITHMETIC = frozenset({"$add", "$sub", "$mul", "$div"})
_REGEX = frozenset({"$mt", "$imt"})
_EXISTENCE = frozenset({"$ex", "$nex"})
_BOOLEAN = frozenset({"$and", "$or"})
_KNOWN_OPERATORS = _COMPARISONS | _REGEX | _EXISTENCE | _BOOLEAN


@dataclass(frozen=True)
class FactSchema:
    """Every fact must have exactly these fields, with these types (int, float, str or bool).

    A float field also accepts an int; bool is never an int here; None, NaN and infinities are rejected.
    """

    fields: Mapping[str, FieldType]


@dataclass(frozen=True)
class Match:
    rule: str  # the rule name that fired, as given to CompiledRuleset
    index: int  # the fact's position in the evaluated sequence
    _facts: Sequence[Mapping[str, Any]] = field(repr=False, compare=False)

    @property
    def fact(self) -> dict[str, Any]:
        """A copy of the fact as given (without adapter-added fields); copied on demand, not per match."""
        return dict(self._facts[self.index])


class DurableError(Exception):
    """A rule set durable cannot compile, a fact it cannot take, or a failure inside durable.

    ``str(error)`` is English for developers; ``zh`` is the same for users. ``rule``, ``code``,
    ``fact_index`` and ``field`` locate the problem when known.
    """

    def __init__(
        self,
        message: str,
        *,
        zh: str,
        rule: str | None = None,
        code: int | None = None,
        fact_index: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.zh = zh
        self.rule = rule
        self.code = code
        self.fact_index = fact_index
        self.field = field


class FactTypeError(DurableError):
    """A fact of the wrong shape or type; raised before anything is asserted."""


class FactIds:
    """Chooses the durable ``id`` of each fact in a session.

    The default, ``0 .. size-1``, cannot collide (see SEQUENTIAL_IDS_WITHOUT_COLLISION). Any other id
    whose durable identity hash is taken in the session is replaced by the next suitable ``spare`` id.
    """

    def for_session(self, size: int) -> Sequence[int]:
        return range(size)

    def spare(self, used: Iterable[int]) -> Iterable[int]:
        taken = set(used)
        candidate = 0
        while True:
            if candidate not in taken:
                yield candidate
            candidate += 1


def _durable_float(value: float) -> str:
    text = repr(value)
    if "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}.0e{exponent}"
    return text


def _durable_json(value: Any) -> str:
    """JSON that durable's reader parses as Python means it (see "Numbers" above); for small documents."""
    if isinstance(value, Mapping):
        members = (f"{json.dumps(str(k), ensure_ascii=False)}:{_durable_json(v)}" for k, v in value.items())
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_durable_json, value)) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return _durable_float(value)
    return json.dumps(value, ensure_ascii=False)


def _durable_code(error: BaseException) -> int | None:
    found = _CODE_IN_MESSAGE.search(str(error))
    return int(found.group(1)) if found else None


def _describe_code(code: int | None) -> str:
    if code is None:
        return "durable failed without an error code"
    return f"durable error {code}: {_DURABLE_CODES.get(code, 'undocumented error')}"


# --------------------------------------------------------------------------------------------------
# Condition checking against the schema


class _ConditionProblem(Exception):
    def __init__(self, english: str, chinese: str) -> None:
        super().__init__(english)
        self.chinese = chinese


_NUMERIC = "number"


def _kind_of_field_type(field_type: FieldType) -> str:
    if field_type is bool:
        return "bool"
    if field_type is str:
        return "str"
    return _NUMERIC


def _kind_of_literal(value: Any) -> str:
    if value is None:
        raise _ConditionProblem(
            "null literal (durable treats a null field as present)", "条件中不能使用空值 null"
        )
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _ConditionProblem(f"non-finite number {value!r}", f"条件中的数值 {value!r} 无效")
        return _NUMERIC
    if isinstance(value, str):
        return "str"
    # Lists and other JSON shapes are left to durable, which rejects them with its own code.
    return "other"


class _ConditionChecker:
    """Rejects conditions durable would accept but evaluate silently wrongly for this schema."""

    def __init__(self, schema: FactSchema) -> None:
        self._kinds = {name: _kind_of_field_type(t) for name, t in schema.fields.items()}

    def check(self, condition: Any) -> None:
        if not isinstance(condition, Mapping):
            return  # durable reports the wrong shape itself
        if not condition:
            raise _ConditionProblem("an empty object in a condition", "条件中有空对象")
        if len(condition) != 1:
            raise _ConditionProblem(
                f"an object in a condition has {len(condition)} keys {sorted(map(str, condition))}; "
                "durable checks only the first: combine them with $and",
                "条件对象必须恰好有一个键；多个条件请用 $and 组合",
            )
        ((key, argument),) = condition.items()
        if key in _BOOLEAN:
            if isinstance(argument, list):
                if not argument:
                    raise _ConditionProblem(f"{key} with an empty list", f"{key} 的条件列表为空")
                for part in argument:
                    self.check(part)
            return
        if key in _COMPARISONS:
            self._check_comparison(key, argument)
            return
        if key in _EXISTENCE:
            if isinstance(argument, Mapping) and len(argument) == 1:
                self._field_kind(next(iter(argument)))
            elif isinstance(argument, Mapping):
                raise _ConditionProblem(f"{key} must name exactly one field", f"{key} 必须恰好指定一个字段")
            return
        if key in _REGEX:
            if isinstance(argument, Mapping) and len(argument) == 1:
                ((field, pattern),) = argument.items()
                if self._field_kind(field) != "str" or not isinstance(pattern, str):
                    raise _ConditionProblem(
                        f"{key} needs a text field and a text pattern", f"{key} 需要文本字段和文本模式"
                    )
            return
        if isinstance(key, str) and key.startswith("$"):
            # durable rejects some unknown operators (202) but takes others, e.g. $in, as a field name.
            raise _ConditionProblem(
                f"unknown operator {key!r} (supported: {', '.join(sorted(_KNOWN_OPERATORS))})",
                f"无法识别的运算符 {key}",
            )
        self._check_comparison("$eq", {key: argument})

    def _check_comparison(self, operator_name: str, argument: Any) -> None:
        if not isinstance(argument, Mapping):
            return  # durable reports the wrong shape itself
        if len(argument) != 1:
            raise _ConditionProblem(
                f"{operator_name} has {len(argument)} fields; durable checks only the first: use $and",
                f"{operator_name} 只能比较一个字段；多个比较请用 $and 组合",
            )
        ((field, operand),) = argument.items()
        left = self._field_kind(field)
        right = self._operand_kind(operand)
        if right == "other":
            return
        if left != right:
            raise _ConditionProblem(
                f"field {field!r} ({left}) is compared with a {right}; durable would compare them silently",
                f"字段 {field} 的类型与比较值的类型不一致",
            )
        if left == "bool" and operator_name in _ORDERINGS:
            raise _ConditionProblem(
                f"{operator_name} on true/false field {field!r}", f"是/否字段 {field} 不能比较大小"
            )

    def _field_kind(self, field: Any) -> str:
        if field in _RESERVED_FIELDS:
            raise _ConditionProblem(
                f"field {field!r} is reserved by durable", f"字段名 {field} 为保留字段，不能用于条件"
            )
        if field not in self._kinds:
            known = ", ".join(sorted(self._kinds))
            raise _ConditionProblem(
                f"unknown field {field!r} (the facts have: {known})", f"条件引用了不存在的字段 {field}"
            )
        return self._kinds[field]

    def _operand_kind(self, operand: Any) -> str:
        if not isinstance(operand, Mapping):
            return _kind_of_literal(operand)
        if len(operand) != 1:
            raise _ConditionProblem(
                f"an operand object has {len(operand)} keys {sorted(map(str, operand))}",
                "比较值对象必须恰好有一个键",
            )
        ((key, argument),) = operand.items()
        if key == "$m":
            return self._field_kind(argument)
        if key in _ARITHMETIC:
            if not (isinstance(argument, Mapping) and set(argument) == {"$l", "$r"}):
                raise _ConditionProblem(
                    f"{key} needs exactly the operands $l and $r", f"算术运算 {key} 需要 $l 和 $r 两个操作数"
                )
            for side in ("$l", "$r"):
                if self._operand_kind(argument[side]) != _NUMERIC:
                    raise _ConditionProblem(
                        f"{key} operand {side} is not a number", f"算术运算 {key} 的操作数必须是数值"
                    )
            return _NUMERIC
        raise _ConditionProblem(
            f"unknown operand {key!r} (use a literal, {{'$m': field}} or $add/$sub/$mul/$div)",
            f"无法识别的比较值 {key}",
        )


# --------------------------------------------------------------------------------------------------
# Fact checking


class _FactChecker:
    """Checks whole fact lists column-wise; a slow per-fact pass runs only to explain a failure."""

    def __init__(self, schema: FactSchema) -> None:
        self._names = tuple(schema.fields)
        self._types = tuple(schema.fields.values())
        self._field_count = len(self._names)
        getter = operator.itemgetter(*self._names)
        self._values: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            getter if self._field_count > 1 else (lambda fact: (getter(fact),))
        )
        self._float_columns = [operator.itemgetter(n) for n, t in schema.fields.items() if t is float]
        self._int_columns = [operator.itemgetter(n) for n, t in schema.fields.items() if t is int]

    def check(self, facts: Sequence[Mapping[str, Any]]) -> None:
        expected = self._types
        values = self._values
        count = self._field_count
        try:
            exact = all(len(fact) == count and tuple(map(type, values(fact))) == expected for fact in facts)
        except (KeyError, TypeError):
            exact = False
        if not exact:
            for index, fact in enumerate(facts):
                self._explain(index, fact)
        # Exact float fields may still hold NaN or infinity; ints may not fit durable's 64 bits.
        for column in self._float_columns:
            if not all(map(math.isfinite, map(column, facts))):
                self._explain_all(facts)
        for column in self._int_columns:
            numbers = [v for v in map(column, facts) if type(v) is int]
            if numbers and (min(numbers) < _INT64_MIN or max(numbers) > _INT64_MAX):
                self._explain_all(facts)

    def _explain_all(self, facts: Sequence[Mapping[str, Any]]) -> None:
        for index, fact in enumerate(facts):
            self._explain(index, fact)

    def _explain(self, index: int, fact: Any) -> None:
        if not isinstance(fact, Mapping):
            raise FactTypeError(
                f"fact {index} is a {type(fact).__name__}, not a mapping",
                zh=f"第 {index + 1} 条数据格式错误：应为字段表",
                fact_index=index,
            )
        missing = [name for name in self._names if name not in fact]
        extra = sorted(str(name) for name in fact if name not in self._names)
        if missing or extra:
            raise FactTypeError(
                f"fact {index} has missing fields {missing} and unexpected fields {extra}",
                zh=f"第 {index + 1} 条数据字段不符：缺少 {'、'.join(missing) or '无'}，多出 {'、'.join(extra) or '无'}",
                fact_index=index,
                field=(missing or extra)[0],
            )
        for name, field_type in zip(self._names, self._types, strict=True):
            problem = _value_problem(fact[name], field_type)
            if problem is not None:
                english, chinese = problem
                raise FactTypeError(
                    f"fact {index} field {name!r}: {english}",
                    zh=f"第 {index + 1} 条数据的字段 {name}：{chinese}",
                    fact_index=index,
                    field=name,
                )


_TYPE_NAMES_ZH = {int: "整数", float: "数值", str: "文本", bool: "是/否"}


def _value_problem(value: Any, field_type: FieldType) -> tuple[str, str] | None:
    expected_zh = _TYPE_NAMES_ZH[field_type]
    wrong = (
        f"expected {field_type.__name__}, got {type(value).__name__} {value!r}",
        f"应为{expected_zh}，实际为 {value!r}",
    )
    if value is None:
        return (f"expected {field_type.__name__}, got None", f"应为{expected_zh}，实际为空")
    if field_type is bool:
        return None if isinstance(value, bool) else wrong
    if isinstance(value, bool):
        return wrong
    if field_type is str:
        return None if isinstance(value, str) else wrong
    if field_type is int:
        if not isinstance(value, int):
            return wrong
        if not _INT64_MIN <= value <= _INT64_MAX:
            return (f"{value} does not fit in 64 bits", f"整数 {value} 超出范围")
        return None
    if not isinstance(value, int | float):
        return wrong
    if isinstance(value, float) and not math.isfinite(value):
        return (f"{value!r} is not a finite number", f"数值 {value!r} 无效")
    return None


# --------------------------------------------------------------------------------------------------
# The compiled rule set


def _check_schema(schema: FactSchema) -> None:
    if not schema.fields:
        raise DurableError("the fact schema has no fields", zh="数据结构未定义任何字段")
    if len(schema.fields) > _MAX_FIELDS:
        raise DurableError(
            f"the fact schema has {len(schema.fields)} fields; durable takes at most {_MAX_FIELDS}",
            zh=f"数据字段过多（{len(schema.fields)} 个），最多 {_MAX_FIELDS} 个",
        )
    for name, field_type in schema.fields.items():
        if not isinstance(name, str) or not name or name in _RESERVED_FIELDS or name[0] == "$" or "." in name:
            raise DurableError(
                f"field name {name!r} is not usable with durable (reserved, empty, '$'-prefixed or dotted)",
                zh=f"字段名 {name} 不可用（保留字、为空、以 $ 开头或含点号）",
                field=str(name),
            )
        if field_type not in _ALLOWED_FIELD_TYPES:
            raise DurableError(
                f"field {name!r} has type {field_type!r}; allowed: int, float, str, bool",
                zh=f"字段 {name} 的类型不受支持（只支持整数、数值、文本、是/否）",
                field=name,
            )


def _create_handle(ruleset_name: str, definition: Mapping[str, Any]) -> int:
    return int(durable_rules_engine.create_ruleset(ruleset_name, _durable_json(definition)))


def _delete_handle(handle: int) -> None:
    durable_rules_engine.delete_ruleset(handle)


def durable_identity_hash(fact_id: str) -> int:
    """The 32-bit FNV-1 hash durable keys stored facts by (``fnv1Hash32`` in durable's state.c)."""
    value = 0x811C9DC5
    for byte in fact_id.encode("ascii"):
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return value


def _without_identity_collisions(ids: Sequence[int], source: FactIds) -> list[int]:
    """Replaces every id whose durable identity is already taken in the session by a spare one."""
    taken_hashes = {durable_identity_hash(_SESSION_FACT_ID)}
    chosen: list[int] = []
    chosen_set: set[int] = set()
    spare: Iterator[int] | None = None
    for fact_id in ids:
        candidate = fact_id
        while candidate in chosen_set or durable_identity_hash(str(candidate)) in taken_hashes:
            if spare is None:
                spare = iter(source.spare(ids))
            candidate = next(spare)
        chosen.append(candidate)
        chosen_set.add(candidate)
        taken_hashes.add(durable_identity_hash(str(candidate)))
    return chosen


def _paths(condition: Any) -> list[tuple[str, ...]]:
    """The chains of tests a condition becomes in durable's network ($and chains, $or branches)."""
    if isinstance(condition, Mapping) and len(condition) == 1:
        ((key, argument),) = condition.items()
        if key == "$and" and isinstance(argument, list):
            paths: list[tuple[str, ...]] = [()]
            for part in argument:
                paths = [head + tail for head in paths for tail in _paths(part)]
                if len(paths) > _MAX_PATHS_PER_RULE:
                    break
            return paths
        if key == "$or" and isinstance(argument, list):
            return [path for part in argument for path in _paths(part)]
    return [(json.dumps(condition, sort_keys=True, default=str),)]


def _widest_branching(conditions: Iterable[Any]) -> int:
    """The most branches after one node when these conditions share one network (tests shared by prefix)."""
    children: dict[tuple[str, ...], set[str]] = {}
    for condition in conditions:
        for path in _paths(condition):
            for depth in range(len(path)):
                children.setdefault(path[:depth], set()).add(path[depth])
    return max((len(branches) for branches in children.values()), default=0)


def _root_equality(condition: Any) -> tuple[str, Any] | None:
    """(field, value) when the condition starts with an equality on a field: the routing key."""
    first = condition
    if isinstance(first, Mapping) and len(first) == 1 and "$and" in first and isinstance(first["$and"], list) \
            and first["$and"]:
        first = first["$and"][0]
    if isinstance(first, Mapping) and len(first) == 1:
        ((key, value),) = first.items()
        if isinstance(key, str) and not key.startswith("$") and isinstance(value, str | int | bool):
            return key, value
    return None


def _too_big(rules: int, branches: int, zh_what: str) -> DurableError:
    return DurableError(
        f"{zh_what}: {rules} rules with up to {branches} branches after one test exceed durable-rules' limits "
        f"({DURABLE_MAX_RULES} rules per ruleset, {DURABLE_MAX_BRANCHES} branches per test; beyond the "
        "second create_ruleset never returns)",
        zh=f"{zh_what}超出规则引擎 durable-rules 的能力：{rules} 条规则、同一判断后最多 {branches} 个分支"
           f"（每个规则集最多 {DURABLE_MAX_RULES} 条规则，同一判断后最多 {DURABLE_MAX_BRANCHES} 个分支）；"
           "请拆分条件或减少 $or 的选项",
        code=106,
    )


def _pack(rule_names: Sequence[str], conditions: Mapping[str, Any]) -> tuple[str | None, list[list[int]], dict[Any, int]]:
    """Packs rule positions into groups that each fit one C ruleset.

    Returns (routing field or None, groups of rule positions, routing value -> group index).
    """
    roots = [_root_equality(conditions[name]) for name in rule_names]
    fields = {root[0] for root in roots if root is not None}
    if len(rule_names) <= _PACK_RULES and _widest_branching(conditions[n] for n in rule_names) <= _PACK_BRANCHES:
        return None, [list(range(len(rule_names)))], {}
    if None in roots or len(fields) != 1:
        raise _too_big(len(rule_names), _widest_branching(conditions[n] for n in rule_names), "规则集")
    by_value: dict[Any, list[int]] = {}
    for position, root in enumerate(roots):
        assert root is not None
        by_value.setdefault((type(root[1]), root[1]), []).append(position)
    groups: list[list[int]] = []
    route: dict[Any, int] = {}
    current: list[int] = []
    values = 0
    for value, positions in by_value.items():
        if current and (values + 1 > _PACK_BRANCHES or len(current) + len(positions) > _PACK_RULES):
            groups.append(current)
            current, values = [], 0
        route[value] = len(groups)
        current += positions
        values += 1
    if current:
        groups.append(current)
    for group in groups:
        branching = _widest_branching(conditions[rule_names[p]] for p in group)
        if len(group) > DURABLE_MAX_RULES or branching > DURABLE_MAX_BRANCHES:
            raise _too_big(len(group), branching, f"以 {next(iter(fields))} 区分的一组规则")
    return next(iter(fields)), groups, route


class CompiledRuleset:
    """One durable ruleset of single-fact conditions, compiled once and evaluated many times.

    Not safe for concurrent ``evaluate`` calls from several threads: they are serialised by a lock.
    """

    def __init__(
        self,
        name: str,
        conditions: Mapping[str, Mapping[str, Any]],
        schema: FactSchema,
        *,
        fact_ids: FactIds | None = None,
    ) -> None:
        """conditions: rule name -> a durable condition on ONE fact, e.g.
        ``{'$and': [{'rule': 'lucheng.share'}, {'$lt': {'value': {'$m': 'bound'}}}]}``.

        Builds one durable C ruleset (no Host, no threads) for the whole set; raises DurableError naming
        the rule when a condition is malformed or does not fit the schema.
        """
        if not isinstance(name, str) or not name or "$" in name:
            raise DurableError(
                f"ruleset name {name!r} must be non-empty text without '$'", zh="规则集名称无效"
            )
        _check_schema(schema)
        self.name = name
        self.schema = schema
        self._fact_checker = _FactChecker(schema)
        self._float_columns = [operator.itemgetter(n) for n, t in schema.fields.items() if t is float]
        self._fact_ids = fact_ids or FactIds()
        self._lock = threading.Lock()
        self._closed = False

        condition_checker = _ConditionChecker(schema)
        # Action names are positional so messages parse without JSON-unescaping user rule names, and the
        # position in sorted order makes (fact, position) sort like (fact, rule name).
        self._rule_names: tuple[str, ...] = tuple(sorted(conditions))
        definition: dict[str, dict[str, Any]] = {}
        for position, rule_name in enumerate(self._rule_names):
            condition = conditions[rule_name]
            try:
                condition_checker.check(condition)
            except _ConditionProblem as problem:
                raise DurableError(
                    f"rule {rule_name!r}: {problem}",
                    zh=f"规则 {rule_name} 的条件有误：{problem.chinese}",
                    rule=rule_name,
                ) from None
            definition[f"r{position}"] = {"all": [{"m": copy.deepcopy(condition)}]}

        # Several C rulesets when one would exceed durable's limits (see "Size"); facts are routed.
        self._route_field, groups, self._route = _pack(self._rule_names, conditions)
        self._handles: list[int] = []
        self._releases: list[weakref.finalize[Any, Any]] = []
        try:
            for group in groups:
                part = {f"r{position}": definition[f"r{position}"] for position in group}
                try:
                    handle = _create_handle(name, part)
                except durable_rules_engine.error as error:
                    raise self._locate_compile_error(name, part, error) from None
                self._handles.append(handle)
                self._releases.append(weakref.finalize(self, _delete_handle, handle))
        except BaseException:
            for release in self._releases:
                release()
            raise

    def _locate_compile_error(
        self, name: str, definition: Mapping[str, Mapping[str, Any]], error: BaseException
    ) -> DurableError:
        code = _durable_code(error)
        for position, rule_name in enumerate(self._rule_names):
            if f"r{position}" not in definition:
                continue
            try:
                probe = _create_handle(name, {f"r{position}": definition[f"r{position}"]})
            except durable_rules_engine.error as rule_error:
                rule_code = _durable_code(rule_error)
                return DurableError(
                    f"rule {rule_name!r}: {_describe_code(rule_code)}",
                    zh=f"规则 {rule_name} 的条件无法编译（durable 错误码 {rule_code}）",
                    rule=rule_name,
                    code=rule_code,
                )
            _delete_handle(probe)
        return DurableError(
            f"ruleset {name!r}: {_describe_code(code)}",
            zh=f"规则集 {name} 无法编译（durable 错误码 {code}）",
            code=code,
        )

    # ----------------------------------------------------------------------------------------------

    def evaluate(self, facts: Sequence[Mapping[str, Any]]) -> list[Match]:
        """Returns every (rule, fact) match, ordered by fact position then rule name.

        Every fact is type-checked before anything is asserted. All matches have been read when this
        returns, and no session state is left behind (facts never leak into the next evaluation).
        """
        return [Match(rule, index, facts) for index, rule in self.match_indices(facts)]

    def match_indices(self, facts: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
        """`evaluate` as (fact position, rule name) pairs: no per-match object for callers that
        only need the position (tens of thousands of matches per province-scale evaluation)."""
        self._fact_checker.check(facts)
        found: list[tuple[int, int]] = []
        with self._lock:
            if self._closed:
                raise DurableError(f"ruleset {self.name!r} is closed", zh=f"规则集 {self.name} 已关闭")
            if self._route_field is None:
                parts: list[tuple[int, Sequence[Mapping[str, Any]], Sequence[int] | None]] = \
                    [(self._handles[0], facts, None)]
            else:
                parts = list(self._routed(facts))
            for handle, part, positions in parts:
                for start in range(0, len(part), _SESSION_CAPACITY):
                    chunk = part[start : start + _SESSION_CAPACITY]
                    for fact_position, rule_position in self._evaluate_session(handle, chunk):
                        at = start + fact_position
                        found.append((at if positions is None else positions[at], rule_position))
        found.sort()
        names = self._rule_names
        return [(index, names[rule_position]) for index, rule_position in found]

    def _routed(self, facts: Sequence[Mapping[str, Any]]) -> list[tuple[int, list[Mapping[str, Any]], list[int]]]:
        """The facts per C ruleset, by the routing field; a fact no ruleset tests matches nothing."""
        assert self._route_field is not None
        field_name, route = self._route_field, self._route
        by_group: dict[int, list[int]] = {}
        for position, fact in enumerate(facts):
            value = fact[field_name]
            group = route.get((type(value), value))
            if group is not None:
                by_group.setdefault(group, []).append(position)
        return [(self._handles[group], [facts[p] for p in positions], positions)
                for group, positions in sorted(by_group.items())]

    def _evaluate_session(self, handle: int, facts: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
        ids = self._session_ids(len(facts))
        payload = self._payload(facts, ids)
        try:
            code, state = durable_rules_engine.assert_facts(handle, payload)
            # durable reports only the last of "not handled" / "observed" in a batch, so a dropped fact
            # cannot be detected afterwards; _session_ids makes "observed" impossible instead.
            if code not in (_RESULT_OK, _RESULT_NOT_HANDLED):
                raise DurableError(
                    f"durable returned result {code} for a batch", zh="规则引擎处理数据失败", code=code
                )
            sequential = isinstance(ids, range) and ids.start == 0 and ids.step == 1
            return self._drain(handle, state, None if sequential else {i: p for p, i in enumerate(ids)})
        except durable_rules_engine.error as error:
            code = _durable_code(error)
            raise DurableError(
                _describe_code(code), zh=f"规则引擎处理数据失败（错误码 {code}）", code=code
            ) from None
        finally:
            self._delete_session(handle)

    def _payload(self, facts: Sequence[Mapping[str, Any]], ids: Sequence[int]) -> str:
        # Only floats that repr in exponent form can lack the decimal point durable needs.
        careful: set[int] = set()
        for column in self._float_columns:
            careful.update(
                i
                for i, value in enumerate(map(column, facts))
                if value and not 1e-4 <= abs(value) < 1e16 and type(value) is float
            )
        plain = json.dumps(
            [{"id": ids[i], **fact} for i, fact in enumerate(facts) if i not in careful],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        if not careful:
            return plain
        # durable identifies facts by id, so their order in the batch does not matter.
        written = [_durable_json({"id": ids[i], **facts[i]}) for i in sorted(careful)]
        return plain[:-1] + ("," if len(plain) > 2 else "") + ",".join(written) + "]"

    def _session_ids(self, size: int) -> Sequence[int]:
        ids = self._fact_ids.for_session(size)
        if len(ids) != size:
            raise DurableError(f"FactIds gave {len(ids)} ids for {size} facts", zh="数据标识数量不符")
        if (
            isinstance(ids, range)
            and ids.start == 0
            and ids.step == 1
            and size <= SEQUENTIAL_IDS_WITHOUT_COLLISION
        ):
            return ids
        return _without_identity_collisions(ids, self._fact_ids)

    _MATCH_HEAD = re.compile(r'\{"r(\d+)":\{"m":\{"id":(-?\d+),')

    def _drain(self, handle: int, state: int, position_of_id: Mapping[int, int] | None) -> list[tuple[int, int]]:
        """Reads every queued action of the session on this thread (no durable dispatch thread exists)."""
        found: list[tuple[int, int]] = []
        head = self._MATCH_HEAD.match
        started = durable_rules_engine.start_action_for_state(handle, state)
        message: str | None = started[1] if started else None
        while message:
            parsed = head(message)
            if parsed is not None:
                fact_id = int(parsed.group(2))
                position = fact_id if position_of_id is None else position_of_id[fact_id]
                found.append((position, int(parsed.group(1))))
            elif f'"id":"{_SESSION_FACT_ID}"' not in message:
                # The session fact durable adds itself can satisfy e.g. a lone $nex; anything else is a bug.
                raise DurableError(
                    f"unexpected durable action message: {message[:200]}", zh="规则引擎返回了无法识别的结果"
                )
            message = durable_rules_engine.complete_and_start_action(handle, state)
        return found

    def _delete_session(self, handle: int) -> None:
        try:
            durable_rules_engine.delete_state(handle, _SESSION_ID)
        except durable_rules_engine.error as error:
            if _durable_code(error) != _ERR_SID_NOT_FOUND:
                raise

    # ----------------------------------------------------------------------------------------------

    def has_live_session(self) -> bool:
        """True if durable still holds facts or queued actions of this ruleset (never after evaluate)."""
        with self._lock:
            if self._closed:
                return False
            for handle in self._handles:
                try:
                    durable_rules_engine.get_state(handle, _SESSION_ID)
                except durable_rules_engine.error as error:
                    if _durable_code(error) == _ERR_SID_NOT_FOUND:
                        continue
                    raise
                return True
            return False

    def close(self) -> None:
        """Frees the C ruleset (durable's Host never does). Idempotent."""
        with self._lock:
            self._closed = True
            for release in self._releases:
                release()

    @property
    def rulesets(self) -> int:
        """How many C rulesets hold the conditions (more than one when one would exceed durable's limits)."""
        return len(self._handles)

    def __enter__(self) -> CompiledRuleset:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
