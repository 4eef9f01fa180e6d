"""docs/reliability.md stays in step with the tests: every test it names exists, and every fault test
of the restart and endpoint work is in its table."""

from __future__ import annotations

import ast
import re

from tests.support.exporter import REPO

DOC = REPO / "docs" / "reliability.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")
# Files whose every test is a fault the table must list.
FAULT_FILES = (
    "tests/integration/test_restart.py",
    "tests/integration/test_tls_auth.py",
    "tests/integration/test_concurrent_scrapes.py",
)


def defined_tests(path: str) -> set[str]:
    """`test_x` and `TestClass::test_x` names defined in a test module."""
    tree = ast.parse((REPO / path).read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names |= {f"{node.name}::{item.name}" for item in node.body
                      if isinstance(item, ast.FunctionDef) and item.name.startswith("test_")}
    return names


def referenced() -> list[tuple[str, str]]:
    return REFERENCE.findall(DOC.read_text())


def test_every_test_named_in_the_table_exists() -> None:
    refs = referenced()
    assert len(refs) > 50
    missing = [f"{path}::{name}" for path, name in refs
               if not (REPO / path).is_file() or name not in defined_tests(path)]
    assert missing == [], "docs/reliability.md names tests that do not exist (renamed? update the table)"


def test_every_restart_and_endpoint_fault_test_is_in_the_table() -> None:
    named = set(referenced())
    absent = [f"{path}::{name}" for path in FAULT_FILES for name in sorted(defined_tests(path))
              if (path, name) not in named]
    assert absent == [], "add these fault tests to the table in docs/reliability.md"
