"""JSON Schemas (draft 2020-12) for rule files and programme.yaml, generated from the loader's field tables.

The loader (engine.loader) is the authority on what a rule file may say; these schemas only
give admins' editors completion and early red squiggles. They are written to
rules/schema.json and rules/programme.schema.json by `python -m engine.schema rules/`, and a
test keeps the committed files equal to the generated ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from duban.engine.loader import CADENCE_FIELDS, INDICATOR_KINDS, RULE_FIELDS, SETTINGS_FIELDS, Field
from duban.engine.rules import RULE_KINDS
from duban.store.models import PROJECT_CATEGORIES, PROJECT_LEVELS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
RULE_SCHEMA_FILE = "schema.json"
PROGRAMME_SCHEMA_FILE = "programme.schema.json"

# Loose on purpose: the bound grammar (engine.expr) is the real check; this admits its alphabet.
_BOUND_PATTERN = r"^[0-9A-Za-z_\s.+\-*/()%％]+$"
_DURATION_PATTERN = r"^(\d+\s*[dwh天周]|never|不重复)$"


def _selector_schema(name: str) -> dict[str, Any]:
    codes = {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}
    options: list[dict[str, Any]] = [{"const": "all"}, codes]
    if name == "indicators":
        kind = {"enum": list(INDICATOR_KINDS)}
        options.append({
            "type": "object",
            "properties": {"kind": {"anyOf": [kind, {"type": "array", "items": kind, "minItems": 1}]}},
            "required": ["kind"],
            "additionalProperties": False,
        })
    if name == "projects":
        def one_or_many(choices: tuple[str, ...]) -> dict[str, Any]:
            enum = {"enum": list(choices)}
            return {"anyOf": [enum, {"type": "array", "items": enum, "minItems": 1}]}
        options.append({
            "type": "object",
            "properties": {"category": one_or_many(PROJECT_CATEGORIES), "level": one_or_many(PROJECT_LEVELS),
                           "in_year": {"type": "boolean"},
                           "codes": {"type": "array", "items": {"type": "string"}, "minItems": 1}, "year": {"type": "integer", "minimum": 2000, "maximum": 2100}},
            "additionalProperties": False,
        })
    return {"anyOf": options}


def field_schema(spec: Field) -> dict[str, Any]:
    """The JSON Schema of one field's value."""
    kind = spec.type
    schema: dict[str, Any]
    if kind == "str":
        schema = {"type": "string", "minLength": 1}
    elif kind == "id":
        schema = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
    elif kind == "enum":
        schema = {"enum": list(spec.choices)}
    elif kind == "number":
        schema = {"type": "number"}
    elif kind == "int":
        schema = {"type": "integer", "minimum": 0}
    elif kind == "bool":
        schema = {"type": "boolean"}
    elif kind == "intlist":
        schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    elif kind == "strlist":
        schema = {"anyOf": [{"type": "string", "minLength": 1},
                            {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}]}
    elif kind == "strmap":
        schema = {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}, "minProperties": 1}
    elif kind == "duration":
        schema = {"type": "string", "pattern": _DURATION_PATTERN}
    elif kind == "date":
        schema = {"type": "string", "format": "date"}
    elif kind == "bound":
        schema = {"anyOf": [{"type": "number"}, {"type": "string", "pattern": _BOUND_PATTERN}]}
    elif kind == "selector":
        schema = _selector_schema(spec.name)
    else:  # pragma: no cover - a new field type must be mapped here
        raise ValueError(f"no JSON Schema for field type {kind!r}")
    if spec.description:
        schema["description"] = spec.description
    return schema


def _object_schema(fields: tuple[Field, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {spec.name: field_schema(spec) for spec in fields},
        "required": [spec.name for spec in fields if spec.required and spec.kinds == RULE_KINDS],
        "additionalProperties": False,
    }


def _rule_schema() -> dict[str, Any]:
    schema = _object_schema(RULE_FIELDS)
    per_kind: list[dict[str, Any]] = []
    for kind in RULE_KINDS:
        allowed = [spec.name for spec in RULE_FIELDS if kind in spec.kinds]
        required = [spec.name for spec in RULE_FIELDS if spec.required and kind in spec.kinds]
        then: dict[str, Any] = {"propertyNames": {"enum": allowed}}
        if required:
            then["required"] = required
        per_kind.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": then})
    # A threshold rule needs exactly one of at_least / more_than / at_most.
    per_kind.append({
        "if": {"properties": {"kind": {"const": "threshold"}}, "required": ["kind"]},
        "then": {"oneOf": [{"required": ["at_least"]}, {"required": ["more_than"]}, {"required": ["at_most"]}]},
    })
    schema["allOf"] = per_kind
    return schema


def rule_schema() -> dict[str, Any]:
    """The JSON Schema of a rule file (`rules:` and/or `cadence:` lists)."""
    return {
        "$schema": DRAFT,
        "$id": "https://duban.example.org/schema/rules.json",
        "title": "duban rule file",
        "description": "A rule file of a duban rule set: `rules:` and/or `cadence:`. Generated from engine/loader.py.",
        "type": "object",
        "properties": {
            "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
            "cadence": {"type": "array", "items": {"$ref": "#/$defs/cadence"}},
        },
        "additionalProperties": False,
        "$defs": {
            "rule": _rule_schema(),
            "cadence": _object_schema(CADENCE_FIELDS),
            "programme": _object_schema(SETTINGS_FIELDS),
        },
    }


def programme_schema() -> dict[str, Any]:
    """The JSON Schema of programme.yaml (the same definition as rule_schema()'s $defs/programme)."""
    return {
        "$schema": DRAFT,
        "$id": "https://duban.example.org/schema/programme.json",
        "title": "duban programme.yaml",
        "description": "Rule-set settings. Generated from engine/loader.py.",
        **_object_schema(SETTINGS_FIELDS),
    }


def render(schema: dict[str, Any]) -> str:
    """Stable text for a committed schema file (sorted nowhere: field order is the loader's order)."""
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    written = []
    for name, schema in ((RULE_SCHEMA_FILE, rule_schema()), (PROGRAMME_SCHEMA_FILE, programme_schema())):
        path = Path(directory) / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - developer tool: python -m engine.schema rules/
    for written_path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "rules")):
        print(written_path)
