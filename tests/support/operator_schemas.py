"""Prometheus Operator objects checked against the operator's CRD schemas, as a strict API server would.

The schemas come from the npm package @kubernetes-models/prometheus-operator (installed into
.tools/node_modules by scripts/tools/operator-schemas.sh), generated from the operator's CRD OpenAPI
schemas, in two forms that this module uses together:

- compiled validators (types, enums, patterns, required fields), run by node (operator_schemas.mjs);
- TypeScript declarations of every type, from which the allowed field names are read. The CRDs do not
  forbid unknown fields (the API server prunes them silently, or rejects them with
  `kubectl apply --validate=strict`), so the validators accept a misspelt `honorLabel`; this walk does not.

A missing package or node fails with the command that installs them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / ".tools" / "node_modules"
PACKAGE = MODULES / "@kubernetes-models" / "prometheus-operator"
SCRIPT = Path(__file__).with_name("operator_schemas.mjs")

_IMPORT = re.compile(r'^import \{ (\w+) \} from "\./(\w+)\.js";$', re.M)
_INTERFACE = re.compile(r"^export interface (\w+)(?: extends ([\w, <>]+))? \{$", re.M)
_FIELD = re.compile(r'^    "(\w+)"\??: (.+?);?$', re.M)


class MissingTool(Exception):
    pass


def _require() -> str:
    node = shutil.which("node")
    if node is None or not PACKAGE.is_dir():
        raise MissingTool("node or @kubernetes-models/prometheus-operator missing: run "
                          "`bash scripts/tools/operator-schemas.sh .tools` (part of `make tools`)")
    return node


@cache
def _declaration(directory: Path, name: str) -> tuple[dict[str, str], tuple[str, ...], dict[str, Path]]:
    """(field -> type, base interfaces, type name -> declaration file) of the interface in <name>.d.ts."""
    text = (directory / f"{name}.d.ts").read_text()
    imports = {m[1]: directory / m[2] for m in _IMPORT.finditer(text)}
    interface = _INTERFACE.search(text)
    if interface is None:  # an alias (Duration, Scheme: strings), not an object
        return {}, (), imports
    bases = tuple(b.strip() for b in (interface[2] or "").split(",") if b.strip() and b.strip() != "TypeMeta")
    return {m[1]: m[2] for m in _FIELD.finditer(text[interface.end():])}, bases, imports


def _fields(file: Path) -> dict[str, tuple[str, dict[str, Path]]] | None:
    """Allowed fields of the object type declared in `file` (with inherited ones); None: not an object."""
    fields, bases, imports = _declaration(file.parent, file.name)
    if not fields and not bases:
        return None
    out = {k: (v, imports) for k, v in fields.items()}
    for base in bases:
        if base in imports:
            out.update(_fields(imports[base]) or {})
    return out


def unknown_fields(value: Any, file: Path, path: str = "") -> list[str]:
    """Paths of fields that the declared type of `value` (the type in `file`) does not have."""
    fields = _fields(file)
    if fields is None or not isinstance(value, dict):
        return []
    problems = []
    for key, sub in value.items():
        if key not in fields:
            problems.append(f"{path}/{key}: unknown field")
            continue
        declared, imports = fields[key]
        element = re.fullmatch(r"Array<(\w+)>", declared)
        if element and element[1] in imports and isinstance(sub, list):
            for i, item in enumerate(sub):
                problems += unknown_fields(item, imports[element[1]], f"{path}/{key}/{i}")
        elif declared in imports:
            problems += unknown_fields(sub, imports[declared], f"{path}/{key}")
    return problems


def validate(docs: list[dict[str, Any]]) -> list[list[str]]:
    """One list of problems per document (empty: valid): schema errors, then unknown fields of `spec`."""
    node = _require()
    proc = subprocess.run([node, str(SCRIPT), str(MODULES)], input=json.dumps(docs), capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"operator_schemas.mjs failed: {proc.stderr}")
    results: list[list[str]] = json.loads(proc.stdout)
    for doc, problems in zip(docs, results, strict=True):
        group, version = doc["apiVersion"].split("/")
        spec = PACKAGE / group / version / f"{doc['kind']}Spec"
        if (spec.parent / f"{spec.name}.d.ts").exists():
            problems += unknown_fields(doc.get("spec"), spec, "/spec")
    return results
