"""The config schema's defaults (config/schema/config.schema.yaml), the one source of them.

Snakemake's `validate` (rules/common.smk) fills the schema's defaults into the config
before any rule runs. Code that runs outside Snakemake — tests, benches, module
functions given a partial block — gets the same values from here: `with_defaults(path,
block)` fills a block exactly as `validate` does (recursively: inside objects whose
`default` it set, inside `additionalProperties` entries, inside the `anyOf`/`oneOf`
branch an object takes), `defaults(path)` is an empty block so filled.

`path`: dotted config keys from the top (`""` = the whole config); `*` (or any name)
stands for an entry of a mapping of user-named entries: `models.*`,
`models.*.finetune`, `heads.*`, `cohorts.*`.

Defaults that depend on a model's kind are not here: the kinds declare them
(hapexp.models.kind), since a schema default would replace the kind's.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

# Found from the package, so that runs in another working directory (snakemake
# --directory, tests) read it too.
SCHEMA = Path(__file__).resolve().parents[4] / "config" / "schema" / "config.schema.yaml"


@functools.cache
def schema() -> dict:
    """The parsed schema (read once; callers must not modify it)."""
    with open(SCHEMA) as fh:
        return yaml.safe_load(fh)


def schema_at(path) -> dict:
    """The schema of the config block at `path` (a dotted string or a sequence of keys,
    e.g. a jsonschema error's `absolute_path`); {} where the schema says nothing."""
    keys = [k for k in path.split(".") if k] if isinstance(path, str) else list(path)
    node = _object_branch(schema())
    for key in keys:
        props = node.get("properties", {})
        node = props[key] if key in props else node.get("additionalProperties", {})
        if not isinstance(node, dict):
            return {}
        node = _object_branch(node)
    return node


def with_defaults(path, block: dict | None) -> dict:
    """A copy of `block` (None = {}) with the schema's defaults at `path` filled in, as
    Snakemake's `validate` fills them; what the block gives wins."""
    out = {} if block is None else copy.deepcopy(block)
    _fill(schema_at(path), out)
    return out


def defaults(path) -> dict:
    """Every default of the block at `path` (nested blocks with a default filled too)."""
    return with_defaults(path, {})


def _object_branch(node: dict) -> dict:
    """The branch of an `anyOf`/`oneOf` that holds an object's keys (e.g. `heads.*`:
    null or an object), else the node itself."""
    if "properties" in node or "additionalProperties" in node:
        return node
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        if "properties" in branch or "additionalProperties" in branch:
            return branch
    return node


def _admits_object(node: dict) -> bool:
    kind = node.get("type", "object")
    return "object" in (kind if isinstance(kind, list) else [kind])


def _fill(node: dict, value) -> None:
    """Fill `node`'s defaults into `value` in place. Mirrors the validator Snakemake
    extends (jsonschema's FAQ): every `properties` keyword sets its defaults before its
    keys are descended into, `additionalProperties` and `items` descend too, and so does
    each `anyOf`/`oneOf`/`allOf` branch an object can take (validate tries them in turn)."""
    if isinstance(value, dict):
        props = node.get("properties", {})
        for key, sub in props.items():
            if "default" in sub:
                value.setdefault(key, copy.deepcopy(sub["default"]))
        extra = node.get("additionalProperties")
        for key, v in value.items():
            if key in props:
                _fill(props[key], v)
            elif isinstance(extra, dict):
                _fill(extra, v)
        for branch in node.get("allOf", []) + node.get("anyOf", []) + node.get("oneOf", []):
            if _admits_object(branch):
                _fill(branch, value)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for v in value:
            _fill(node["items"], v)
