"""JSON Schema → the OpenAPI subset Gemini accepts in ``responseSchema`` and function ``parameters``.

Gemini rejects what it does not know rather than ignoring it, so the schema is rewritten:

- ``$ref`` is inlined from ``$defs`` / ``definitions`` (recursive references stop at ``MAX_DEPTH``
  and become a plain object);
- ``type: [T, "null"]`` and ``anyOf: [..., {"type": "null"}]`` become ``nullable: true``;
  ``oneOf`` becomes ``anyOf``; a one-element ``allOf`` is merged into its parent;
- ``const`` becomes a one-value ``enum``; enums of anything but strings are dropped, keeping the
  values' type (Gemini's enum is a string format); formats other than ``enum``, ``date-time``,
  ``int32``, ``int64``, ``float`` and ``double`` are dropped;
- ``additionalProperties``, ``$schema``, ``examples``, ``exclusiveMinimum`` and every other key
  outside the subset are dropped; ``required`` keeps only names that are properties; an object
  with no properties loses its empty ``properties``.

Types are written upper-case (``OBJECT``), the enum spelling of Gemini's ``Type``. What the subset
cannot say at all is a free-form object (``additionalProperties`` without ``properties``): it stays
an ``OBJECT`` without properties, which Gemini may refuse; ``openai_to_gemini_request(...,
json_schema="native")`` sends the schema untouched as ``parametersJsonSchema`` / ``responseJsonSchema``
instead, for models that accept full JSON Schema.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 12

_KEEP = {
    "description",
    "title",
    "nullable",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "pattern",
    "example",
    "default",
    "propertyOrdering",
}
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}


def gemini_schema(schema: Any) -> dict[str, Any]:
    """The Gemini form of a JSON schema (an empty object schema for anything unusable)."""
    if not isinstance(schema, dict):
        return {"type": "OBJECT"}
    definitions: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            definitions.update(schema[key])
    return _convert(schema, definitions, 0)


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any] | None:
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    name = ref.rsplit("/", 1)[-1]
    target = definitions.get(name)
    if not isinstance(target, dict):
        return None
    siblings = {k: v for k, v in schema.items() if k != "$ref"}
    return {**target, **siblings}


def _convert(schema: dict[str, Any], definitions: dict[str, Any], depth: int) -> dict[str, Any]:
    resolved = _resolve(schema, definitions) if depth < MAX_DEPTH else None
    if resolved is None:
        return {"type": "OBJECT"}
    schema = _merge_all_of(resolved)
    out: dict[str, Any] = {key: schema[key] for key in _KEEP if key in schema}

    nullable = False
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k in _TYPES]
        nullable = "null" in kinds
        kinds = [k for k in kinds if k != "null"]
        if len(kinds) > 1:
            out["anyOf"] = [{"type": k.upper()} for k in kinds]
            kind = None
        else:
            kind = kinds[0] if kinds else None
    if isinstance(kind, str) and kind in _TYPES and kind != "null":
        out["type"] = kind.upper()
    elif kind == "null":
        nullable = True

    variants = schema.get("anyOf") if isinstance(schema.get("anyOf"), list) else schema.get("oneOf")
    if isinstance(variants, list):
        kept = [v for v in variants if isinstance(v, dict) and v.get("type") != "null"]
        nullable = nullable or len(kept) < len(variants)
        converted = [_convert(v, definitions, depth + 1) for v in kept]
        if len(converted) == 1:
            out.update({k: v for k, v in converted[0].items() if k not in out or k == "type"})
        elif converted:
            out["anyOf"] = converted

    _enum(schema, out)
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), set()):
        out["format"] = fmt

    properties = schema.get("properties")
    if isinstance(properties, dict) and properties:
        out["properties"] = {
            name: _convert(value, definitions, depth + 1) if isinstance(value, dict) else {"type": "STRING"}
            for name, value in properties.items()
        }
        out.setdefault("type", "OBJECT")
        required = schema.get("required")
        if isinstance(required, list):
            names = [name for name in required if name in properties]
            if names:
                out["required"] = names
    items = schema.get("items")
    if isinstance(items, dict):
        out["items"] = _convert(items, definitions, depth + 1)
        out.setdefault("type", "ARRAY")
    elif out.get("type") == "ARRAY":
        out["items"] = {"type": "STRING"}  # Gemini requires items on an array
    if nullable:
        out["nullable"] = True
    return out


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in parts:
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _enum(schema: dict[str, Any], out: dict[str, Any]) -> None:
    values = schema.get("enum")
    if "const" in schema:
        values = [schema["const"]]
    if not isinstance(values, list):
        return
    if None in values:
        out["nullable"] = True
    values = [v for v in values if v is not None]
    if values and all(isinstance(v, str) for v in values):
        out["enum"] = values
        out["type"] = "STRING"
    elif "type" not in out and values:  # Gemini's enum is for strings: keep at least the type
        if all(isinstance(v, bool) for v in values):
            out["type"] = "BOOLEAN"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out["type"] = "INTEGER"
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out["type"] = "NUMBER"
