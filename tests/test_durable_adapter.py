"""The durable-rules adapter: single-fact rules evaluated deterministically, with durable's traps closed."""

from __future__ import annotations

import copy
import gc
import math
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from duban.engine.durable_adapter import (
    SEQUENTIAL_IDS_WITHOUT_COLLISION,
    CompiledRuleset,
    DurableError,
    FactIds,
    FactSchema,
    FactTypeError,
    Match,
    durable_identity_hash,
)

# A service-industry indicator per organisation: its value, the programme's bound for it, a head count.
SCHEMA = FactSchema({"rule": str, "org": str, "value": float, "bound": float, "staff": int})
BELOW_BOUND: dict[str, Any] = {"$and": [{"rule": "lucheng.share"}, {"$lt": {"value": {"$m": "bound"}}}]}
PRAISE: dict[str, Any] = {"$gte": {"value": 0.9}}


def pairs(matches: list[Match]) -> list[tuple[str, dict[str, Any]]]:
    return [(match.rule, match.fact) for match in matches]


def indicator(
    org: str, value: float, bound: float = 0.5, staff: int = 10, rule: str = "lucheng.share"
) -> dict[str, Any]:
    return {"rule": rule, "org": org, "value": value, "bound": bound, "staff": staff}


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert found is not None
    return int(found.group(1)) / 1024


@pytest.fixture
def lucheng() -> Iterator[CompiledRuleset]:
    ruleset = CompiledRuleset("lucheng", {"below": BELOW_BOUND, "praise": PRAISE}, SCHEMA)
    yield ruleset
    ruleset.close()


def many_indicators(count: int) -> list[dict[str, Any]]:
    # Every tenth organisation is below its bound; value grows with the index so some earn praise.
    return [
        indicator(f"鹿城区机构{i}", value=(i % 100) / 100, bound=0.5 if i % 10 == 0 else 0.0, staff=i)
        for i in range(count)
    ]


def expected_matches(facts: Sequence[dict[str, Any]]) -> list[tuple[int, str]]:
    expected = []
    for index, fact in enumerate(facts):
        if fact["rule"] == "lucheng.share" and fact["value"] < fact["bound"]:
            expected.append((index, "below"))
        if fact["value"] >= 0.9:
            expected.append((index, "praise"))
    return expected


def as_pairs(matches: Sequence[Match], facts: Sequence[dict[str, Any]]) -> list[tuple[int, str]]:
    position = {fact["org"]: index for index, fact in enumerate(facts)}
    return [(position[match.fact["org"]], match.rule) for match in matches]


# -------------------------------------------------------------------------------------------------
# Matching


def test_a_value_below_its_own_bound_matches_the_field_to_field_rule(lucheng: CompiledRuleset) -> None:
    matches = lucheng.evaluate(
        [indicator("五马街道", 0.3, bound=0.4), indicator("南汇街道", 0.45, bound=0.4)]
    )
    assert pairs(matches) == [("below", indicator("五马街道", 0.3, bound=0.4))]


def test_the_rule_kind_must_also_match_for_the_below_bound_rule(lucheng: CompiledRuleset) -> None:
    assert lucheng.evaluate([indicator("五马街道", 0.3, bound=0.4, rule="huzhou.share")]) == []


def test_one_fact_may_match_several_rules_and_every_match_is_returned(lucheng: CompiledRuleset) -> None:
    fact = indicator("松台街道", 0.95, bound=0.99)
    assert pairs(lucheng.evaluate([fact])) == [("below", fact), ("praise", fact)]


def test_matches_are_ordered_by_fact_position_then_rule_name(lucheng: CompiledRuleset) -> None:
    facts = [indicator("甲", 0.95, bound=0.99), indicator("乙", 0.1), indicator("丙", 0.92, bound=0.0)]
    assert as_pairs(lucheng.evaluate(facts), facts) == [
        (0, "below"),
        (0, "praise"),
        (1, "below"),
        (2, "praise"),
    ]


def test_a_matched_fact_comes_back_as_given_without_adapter_fields(lucheng: CompiledRuleset) -> None:
    fact = indicator("滨江街道", 0.1)
    (match,) = lucheng.evaluate([fact])
    assert match.fact == fact
    assert "id" not in match.fact and "sid" not in match.fact
    assert match.fact is not fact  # the caller's dict is not handed out


def test_chinese_text_and_quotes_compare_equal_to_the_condition_literal() -> None:
    schema = FactSchema({"region": str, "note": str})
    with CompiledRuleset(
        "regions", {"鹿城区": {"$and": [{"region": "鹿城区"}, {"note": 'he said "ok"\\'}]}}, schema
    ) as ruleset:
        facts = [
            {"region": "鹿城区", "note": 'he said "ok"\\'},
            {"region": "瓯海区", "note": 'he said "ok"\\'},
        ]
        assert pairs(ruleset.evaluate(facts)) == [("鹿城区", facts[0])]


def test_arithmetic_on_fields_of_the_same_fact_is_supported() -> None:
    schema = FactSchema({"used": float, "quota": float})
    over_90_percent = {"$gt": {"used": {"$mul": {"$l": {"$m": "quota"}, "$r": 0.9}}}}
    with CompiledRuleset("quota", {"near_quota": over_90_percent}, schema) as ruleset:
        facts = [{"used": 95.0, "quota": 100.0}, {"used": 80.0, "quota": 100.0}]
        assert pairs(ruleset.evaluate(facts)) == [("near_quota", facts[0])]


def test_durables_own_session_fact_is_never_reported_as_a_match() -> None:
    # durable stores a session fact {"$s": 1, "id": "sid-0"}; it has no 'flag' field, so a lone $nex
    # would match it.
    schema = FactSchema({"org": str, "flag": bool})
    with CompiledRuleset(
        "nex", {"no_org_named_x": {"$neq": {"org": "x"}}, "flag_set": {"flag": True}}, schema
    ) as rs:
        facts = [{"org": "a", "flag": True}, {"org": "x", "flag": False}]
        assert pairs(rs.evaluate(facts)) == [("flag_set", facts[0]), ("no_org_named_x", facts[0])]


def test_floats_python_writes_with_a_bare_exponent_are_neither_lost_nor_misread() -> None:
    # durable's reader needs a decimal point before an exponent: a bare "1e-05" used to end the batch
    # silently, dropping that fact and all after it.
    schema = FactSchema({"share": float, "order": int})
    conditions: dict[str, dict[str, Any]] = {
        "every": {"$gte": {"order": 0}},
        "tiny": {"$lt": {"share": 1e-06}},
        "huge": {"$gt": {"share": 1e19}},
    }
    facts = [
        {"share": 0.5, "order": 0},
        {"share": 1e-05, "order": 1},
        {"share": 2e-07, "order": 2},
        {"share": 1e20, "order": 3},
        {"share": 5e18, "order": 4},
        {"share": 0.0, "order": 5},
    ]
    with CompiledRuleset("exponents", conditions, schema) as ruleset:
        matches = [(m.fact["order"], m.rule) for m in ruleset.evaluate(facts)]
    assert matches == [
        (0, "every"),
        (1, "every"),
        (2, "every"),
        (2, "tiny"),
        (3, "every"),
        (3, "huge"),
        (4, "every"),
        (5, "every"),
        (5, "tiny"),
    ]


def test_no_facts_give_no_matches(lucheng: CompiledRuleset) -> None:
    assert lucheng.evaluate([]) == []


def test_facts_do_not_leak_into_the_next_evaluation(lucheng: CompiledRuleset) -> None:
    first = [indicator("五马街道", 0.1)]
    assert len(lucheng.evaluate(first)) == 1
    assert lucheng.evaluate([indicator("南汇街道", 0.7)]) == []
    # The same content again is a new fact, not "already observed".
    assert pairs(lucheng.evaluate(first)) == [("below", first[0])]
    assert not lucheng.has_live_session()


# -------------------------------------------------------------------------------------------------
# Facts are checked against the schema before anything is asserted


class RecordingIds(FactIds):
    """Real default ids; remembers whether the adapter got as far as asserting a session."""

    def __init__(self) -> None:
        self.sessions = 0

    def for_session(self, size: int) -> Sequence[int]:
        self.sessions += 1
        return super().for_session(size)


@pytest.mark.parametrize(
    ("field", "bad_value", "wording"),
    [
        ("value", "0.1", "expected float, got str"),  # durable would compare '0.1' < 0.5 as true
        ("staff", True, "expected int, got bool"),
        ("value", False, "expected float, got bool"),
        ("staff", None, "got None"),
        ("value", None, "got None"),
        ("value", math.nan, "not a finite number"),
        ("bound", math.inf, "not a finite number"),
        ("staff", 2**70, "does not fit in 64 bits"),
        ("org", 7, "expected str, got int"),
    ],
)
def test_a_fact_of_the_wrong_type_is_rejected_before_anything_is_asserted(
    field: str, bad_value: Any, wording: str
) -> None:
    ids = RecordingIds()
    with CompiledRuleset("lucheng", {"below": BELOW_BOUND}, SCHEMA, fact_ids=ids) as ruleset:
        facts = many_indicators(12_000)
        facts[11_500][field] = bad_value  # in the second session: the first must not have run either
        with pytest.raises(FactTypeError, match=wording) as raised:
            ruleset.evaluate(facts)
        assert raised.value.fact_index == 11_500
        assert raised.value.field == field
        assert "第 11501 条数据" in raised.value.zh
        assert ids.sessions == 0


def test_missing_and_unexpected_fields_are_named(lucheng: CompiledRuleset) -> None:
    fact = indicator("五马街道", 0.1)
    del fact["bound"]
    fact["id"] = 3
    with pytest.raises(
        FactTypeError, match=r"missing fields \['bound'\] and unexpected fields \['id'\]"
    ) as raised:
        lucheng.evaluate([fact])
    assert "缺少 bound" in raised.value.zh and "多出 id" in raised.value.zh


def test_a_fact_that_is_not_a_mapping_is_rejected(lucheng: CompiledRuleset) -> None:
    with pytest.raises(FactTypeError, match="not a mapping"):
        lucheng.evaluate([("五马街道", 0.1)])  # type: ignore[list-item]


def test_an_int_is_accepted_for_a_float_field(lucheng: CompiledRuleset) -> None:
    fact = indicator("五马街道", 0.1, bound=1)
    assert type(fact["bound"]) is int
    assert pairs(lucheng.evaluate([fact])) == [("below", fact)]


# -------------------------------------------------------------------------------------------------
# Determinism: no threads, every action read before evaluate returns


def test_evaluate_returns_every_match_of_25k_facts_at_once_without_starting_threads() -> None:
    threads_before = set(threading.enumerate())
    ruleset = CompiledRuleset("lucheng", {"below": BELOW_BOUND, "praise": PRAISE}, SCHEMA)
    facts = many_indicators(25_000)  # crosses the adapter's 10k-fact session boundary twice

    matches = ruleset.evaluate(facts)

    assert as_pairs(matches, facts) == expected_matches(facts)
    assert len(matches) == 1_250 + 2_500  # below: values 0.0-0.4 of every tenth; praise: 0.9x
    assert set(threading.enumerate()) == threads_before
    assert not any(isinstance(t, threading.Timer) for t in threading.enumerate())
    assert not ruleset.has_live_session()  # no fact, hence no queued action, is left for later
    time.sleep(0.3)  # durable's own Host would dispatch leftover actions ~0.2 s later
    assert set(threading.enumerate()) == threads_before
    ruleset.close()


def test_fifty_compiled_rulesets_start_no_threads() -> None:
    threads_before = threading.active_count()
    rulesets = [CompiledRuleset(f"set{i}", {"below": BELOW_BOUND}, SCHEMA) for i in range(50)]
    assert threading.active_count() == threads_before
    for ruleset in rulesets:
        ruleset.close()


# -------------------------------------------------------------------------------------------------
# Fact identity: durable keys facts by a 32-bit hash of their id


def test_sequential_ids_used_by_the_adapter_never_share_a_durable_identity() -> None:
    hashes = {durable_identity_hash(str(i)) for i in range(SEQUENTIAL_IDS_WITHOUT_COLLISION)}
    assert len(hashes) == SEQUENTIAL_IDS_WITHOUT_COLLISION
    assert durable_identity_hash("sid-0") not in hashes
    # The bound is tight: the next id shares its identity with an earlier one.
    assert durable_identity_hash(str(SEQUENTIAL_IDS_WITHOUT_COLLISION)) == durable_identity_hash("40189")


class CollidingIds(FactIds):
    """Ids 40189 and 797186 share one 32-bit FNV-1 hash: durable would drop the second fact."""

    def for_session(self, size: int) -> Sequence[int]:
        return [40189, 797186, *range(size - 2)]


class UnguardedRuleset(CompiledRuleset):
    """The adapter without its identity guard, to show the trap it closes is real."""

    def _session_ids(self, size: int) -> Sequence[int]:
        return self._fact_ids.for_session(size)


# The last fact matches nothing: durable's batch result then says "not handled" and hides the loss.
COLLISION_FACTS = [indicator("甲", 0.1), indicator("乙", 0.2), indicator("丙", 0.3), indicator("丁", 0.7)]


def test_without_the_guard_durable_silently_drops_a_fact_whose_id_hash_is_taken() -> None:
    facts = COLLISION_FACTS
    with UnguardedRuleset("lucheng", {"below": BELOW_BOUND}, SCHEMA, fact_ids=CollidingIds()) as ruleset:
        assert [m.fact["org"] for m in ruleset.evaluate(facts)] == ["甲", "丙"]


def test_an_identity_collision_durable_does_report_is_an_error_not_a_silent_loss() -> None:
    facts = COLLISION_FACTS[:2]
    with UnguardedRuleset("lucheng", {"below": BELOW_BOUND}, SCHEMA, fact_ids=CollidingIds()) as ruleset:
        with pytest.raises(DurableError, match="result 2"):
            ruleset.evaluate(facts)
        assert not ruleset.has_live_session()


def test_a_colliding_id_is_replaced_so_no_fact_is_lost() -> None:
    facts = COLLISION_FACTS
    with CompiledRuleset("lucheng", {"below": BELOW_BOUND}, SCHEMA, fact_ids=CollidingIds()) as ruleset:
        assert [m.fact["org"] for m in ruleset.evaluate(facts)] == ["甲", "乙", "丙"]


@pytest.mark.slow
def test_no_fact_is_lost_among_300k_facts_that_all_match() -> None:
    schema = FactSchema({"org": str, "staff": int})
    with CompiledRuleset("all", {"every": {"$gte": {"staff": 0}}}, schema) as ruleset:
        facts = [{"org": f"机构{i}", "staff": i} for i in range(300_000)]
        matches = ruleset.evaluate(facts)
    assert [m.fact["staff"] for m in matches] == list(range(300_000))


# -------------------------------------------------------------------------------------------------
# Memory


@pytest.mark.slow
def test_memory_does_not_grow_over_fifty_evaluations_of_20k_facts() -> None:
    facts = many_indicators(20_000)
    with CompiledRuleset("lucheng", {"below": BELOW_BOUND, "praise": PRAISE}, SCHEMA) as ruleset:
        for _ in range(3):
            ruleset.evaluate(facts)
        gc.collect()
        warm = rss_mib()
        for _ in range(50):
            assert len(ruleset.evaluate(facts)) == 1_000 + 2_000
        gc.collect()
        assert rss_mib() - warm < 30


def test_closing_a_ruleset_frees_durables_c_ruleset() -> None:
    conditions = {f"rule{i}": {"$and": [{"org": f"机构{i}"}, {"$lt": {"value": i + 0.5}}]} for i in range(20)}
    for _ in range(20):
        CompiledRuleset("warm", conditions, SCHEMA).close()
    before = rss_mib()
    for _ in range(300):
        CompiledRuleset("reload", conditions, SCHEMA).close()
    # Without close() the same 300 builds keep ~68 MiB (measured: 500 builds, +114 MiB).
    assert rss_mib() - before < 10


def test_a_closed_ruleset_refuses_to_evaluate(lucheng: CompiledRuleset) -> None:
    lucheng.close()
    lucheng.close()  # idempotent
    with pytest.raises(DurableError, match="closed"):
        lucheng.evaluate([indicator("五马街道", 0.1)])


# -------------------------------------------------------------------------------------------------
# Malformed rules are reported at construction, naming the rule


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        ({"org": ["a", "b"]}, 102),  # no list literals
        ({"$lt": 5}, 102),
        ({"$and": {"org": "a"}}, 102),
        ({"$mt": {"org": "[a-z"}}, 501),
    ],
)
def test_a_condition_durable_cannot_compile_is_reported_with_its_rule_and_code(
    condition: dict[str, Any], code: int
) -> None:
    with pytest.raises(DurableError, match=rf"rule 'broken': durable error {code}") as raised:
        CompiledRuleset("lucheng", {"fine": BELOW_BOUND, "broken": condition}, SCHEMA)
    assert raised.value.rule == "broken"
    assert raised.value.code == code
    assert "规则 broken" in raised.value.zh


@pytest.mark.parametrize(
    ("condition", "wording"),
    [
        ({"org": "a", "rule": "b"}, "has 2 keys"),  # durable would check only 'org'
        ({"$lt": {"value": 1.0, "bound": 2.0}}, "checks only the first"),
        ({"$lt": {"value": "10"}}, "compared with a str"),  # durable: '10' vs number, silently
        ({"org": 5}, "compared with a number"),
        ({"$lt": {"value": {"$m": "org"}}}, "compared with a str"),
        ({"$gt": {"valeu": 1.0}}, "unknown field 'valeu'"),
        ({"id": 3}, "reserved"),
        ({"org": None}, "null literal"),
        ({"$lt": {"value": math.nan}}, "non-finite"),
        ({"$and": []}, "empty list"),
        ({}, "empty object"),
        ({"$ne": {"value": 1.0}}, r"unknown operator '\$ne'"),  # durable: error 202
        ({"$in": {"org": "a"}}, r"unknown operator '\$in'"),  # durable: taken as a field named "$in"
        ({"$gt": {"value": {"$mul": {"$l": {"$m": "bound"}}}}}, r"exactly the operands \$l and \$r"),
        ({"$gt": {"value": {"$mul": {"$l": {"$m": "org"}, "$r": 2}}}}, "not a number"),
        ({"$ex": {"nope": 1}}, "unknown field 'nope'"),
    ],
)
def test_a_condition_durable_would_evaluate_silently_wrong_is_rejected(
    condition: dict[str, Any], wording: str
) -> None:
    with pytest.raises(DurableError, match=wording) as raised:
        CompiledRuleset("lucheng", {"fine": BELOW_BOUND, "suspect": condition}, SCHEMA)
    assert raised.value.rule == "suspect"
    assert raised.value.zh.startswith("规则 suspect 的条件有误")


def test_the_callers_conditions_are_not_modified_and_can_be_compiled_again() -> None:
    conditions: dict[str, dict[str, Any]] = {"below": BELOW_BOUND, "praise": PRAISE}
    pristine = copy.deepcopy(conditions)
    first = CompiledRuleset("lucheng", conditions, SCHEMA)
    second = CompiledRuleset("lucheng", conditions, SCHEMA)
    assert conditions == pristine
    fact = indicator("五马街道", 0.1)
    assert pairs(first.evaluate([fact])) == pairs(second.evaluate([fact])) == [("below", fact)]
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("fields", "wording"),
    [
        ({"id": int}, "not usable"),
        ({"sid": str}, "not usable"),
        ({"$s": int}, "not usable"),
        ({"a.b": int}, "not usable"),
        ({"when": list}, "allowed: int, float, str, bool"),
        ({}, "no fields"),
    ],
)
def test_a_schema_durable_cannot_hold_is_rejected(fields: dict[str, type], wording: str) -> None:
    with pytest.raises(DurableError, match=wording):
        CompiledRuleset("bad", {"any": {"$ex": {"x": 1}}}, FactSchema(fields))
