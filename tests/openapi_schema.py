"""Validate bodies against the component schemas of OpenAI's OpenAPI description.

    validate("CreateChatCompletionResponse", body)        # AssertionError listing every violation
    validator("ErrorResponse").is_valid(body)             # a cached jsonschema validator

The spec is ``shared/specs/openai-openapi.yaml`` beside the repository (or the file named by
``TOLLWAY_OPENAI_SPEC``), loaded once per process. Parsing its 3 MB of YAML takes a second or two, so
the rewritten spec is kept as JSON in the temporary directory, keyed by the file's size and mtime.
The whole spec is one resource of a ``referencing`` registry, so ``#/components/schemas/...``
references resolve wherever they appear.

OpenAPI 3.1 schemas are JSON Schema 2020-12, but this spec keeps a few OpenAPI 3.0 habits, which are
rewritten on load so that they mean what their authors meant:

- ``nullable: true`` beside a type or a ``$ref``: null is allowed too;
- boolean ``exclusiveMinimum`` / ``exclusiveMaximum``: the numeric 2020-12 form;
- ``$recursiveRef: "#"``: a reference to the enclosing component.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:tollway:openai-openapi"
_SPEC_NAME = "openai-openapi.yaml"
_CACHE_VERSION = 1  # bump when _normalise changes
# keys whose values are maps of names to schemas, not schemas themselves
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
# keys whose values are data, never schemas
_DATA_KEYS = frozenset({"example", "examples", "default", "const", "enum", "x-oaiMeta"})


def spec_path() -> Path:
    explicit = os.environ.get("TOLLWAY_OPENAI_SPEC")
    if explicit:
        return Path(explicit)
    repo = Path(__file__).resolve().parent.parent
    for base in (repo, repo.parent):
        candidate = base / "shared" / "specs" / _SPEC_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_SPEC_NAME} not found in shared/specs beside {repo}; set TOLLWAY_OPENAI_SPEC")


@cache
def load_spec() -> dict[str, Any]:
    """The spec with every component schema rewritten to plain JSON Schema 2020-12."""
    path = spec_path()
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{_CACHE_VERSION}".encode())
    cached = Path(tempfile.gettempdir()) / f"tollway-openapi-{key.hexdigest()[:16]}.json"
    try:
        spec: dict[str, Any] = json.loads(cached.read_bytes())
        return spec
    except (OSError, ValueError):
        pass
    spec = _parse(path)
    partial = cached.with_suffix(f".{os.getpid()}.tmp")
    try:
        partial.write_text(json.dumps(spec))
        os.replace(partial, cached)
    except OSError:
        partial.unlink(missing_ok=True)  # a read-only temp dir only costs speed
    return spec


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
        raise KeyError(f"no component schema named {name!r} in {_SPEC_NAME}")
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
