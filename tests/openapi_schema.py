"""Validate bodies against the component schemas of OpenAI's OpenAPI description.

    validate("CreateChatCompletionResponse", body)        # AssertionError listing every violation
    validator("ErrorResponse").is_valid(body)             # a cached jsonschema validator

The schemas come from ``tests/data/openai-openapi/openai-openapi-subset.yaml``, the schemas the tests
use and those they reference, cut from OpenAI's description by ``scripts/vendor-test-data.py`` (MIT,
licence beside it), so the suite needs nothing outside the repository. ``TOLLWAY_OPENAI_SPEC`` names
another file instead (the whole 3 MB description, say: parsing it takes a second or two). Loaded once
per process. The whole spec is one resource of a ``referencing`` registry, so
``#/components/schemas/...`` references resolve wherever they appear.

OpenAPI 3.1 schemas are JSON Schema 2020-12, but this spec keeps a few OpenAPI 3.0 habits, which are
rewritten on load so that they mean what their authors meant:

- ``nullable: true`` beside a type or a ``$ref``: null is allowed too;
- boolean ``exclusiveMinimum`` / ``exclusiveMaximum``: the numeric 2020-12 form;
- ``$recursiveRef: "#"``: a reference to the enclosing component.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:tollway:openai-openapi"
# keys whose values are maps of names to schemas, not schemas themselves
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# keys whose values are data, never schemas
_DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum", "x-oaiMeta"})


SUBSET = Path(__file__).resolve().parent / "data" / "openai-openapi" / "openai-openapi-subset.yaml"


def spec_path() -> Path:
    explicit = os.environ.get("TOLLWAY_OPENAI_SPEC")
    return Path(explicit) if explicit else SUBSET


@cache
def load_spec() -> dict[str, Any]:
    """The spec with every component schema rewritten to plain JSON Schema 2020-12."""
    return _parse(spec_path())


class _JSONLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader (the C one when built: several times faster) that reads what JSON would.

    YAML 1.1 turns unquoted dates into ``datetime.date``; a JSON body never holds one, so
    timestamps stay strings, as in the spec's JSON form.
    """

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def _parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as file:
        spec: dict[str, Any] = yaml.load(file, Loader=_JSONLoader)
    schemas = spec["components"]["schemas"]
    spec["components"]["schemas"] = {name: _normalise(schema, name) for name, schema in schemas.items()}
    return spec


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(load_spec()))
    return registry


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for the component schema ``name`` (KeyError if the spec has no such schema)."""
    if name not in load_spec()["components"]["schemas"]:
        raise KeyError(
            f"no component schema {name!r} in {spec_path()}: add it to scripts/vendor-test-data.py"
        )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"{SPEC_URI}#/components/schemas/{name}",
    }
    return Draft202012Validator(schema, registry=_registry())


def errors(name: str, instance: object) -> list[str]:
    """Every violation of schema ``name`` by ``instance``, as "path: message" lines."""
    found = sorted(validator(name).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{e.json_path}: {e.message}" for e in found]


def validate(name: str, instance: object) -> None:
    """Assert that ``instance`` matches component schema ``name``, listing every violation if not."""
    problems = errors(name, instance)
    assert not problems, f"body does not match {name}:\n  " + "\n  ".join(problems)


def _normalise(node: Any, component: str) -> Any:
    if isinstance(node, list):
        return [_normalise(item, component) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "nullable":
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _normalise(sub, component) for name, sub in value.items()}
        elif key == "$recursiveRef":
            out["$ref"] = f"#/components/schemas/{component}"
        else:
            out[key] = _normalise(value, component)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), bool) and out.pop(bound) and limit in out:
            out[bound] = out.pop(limit)  # 3.0's boolean flag on a limit -> 2020-12's numeric bound
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out
