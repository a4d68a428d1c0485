"""The attribute names the installed semantic conventions mark deprecated.

opentelemetry-semantic-conventions writes each attribute as a constant
followed by its docstring, and a deprecated one's docstring starts with
"Deprecated:" (`DB_STATEMENT: Final = "db.statement"`, then "Deprecated:
Replaced by `db.query.text`."). The docstrings do not survive import, so the
modules are read as source. A name the stable modules define is never
counted, whatever an incubating copy of it says. The list follows the package the lock pins: a
name deprecated by a newer release is caught once the lock moves.
"""

from __future__ import annotations

import ast
import functools
import itertools
from pathlib import Path

import opentelemetry.semconv


def _deprecated_in(source: str) -> set[str]:
    body = ast.parse(source).body
    names: set[str] = set()
    for statement, following in itertools.pairwise(body):
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            # Not "Deprecated in favor of stable ...": the incubating copy of a stable name.
            and following.value.value.strip().startswith("Deprecated:")
        ):
            names.add(value.value)
    return names


@functools.cache
def deprecated_attributes() -> frozenset[str]:
    root = Path(opentelemetry.semconv.__file__).parent
    names: set[str] = set()
    for module in (root / "_incubating" / "attributes").glob("*_attributes.py"):
        names |= _deprecated_in(module.read_text())
    return frozenset(names - _stable())


def _stable() -> set[str]:
    from opentelemetry.semconv import attributes

    names: set[str] = set()
    for module in Path(attributes.__file__).parent.glob("*_attributes.py"):
        for statement in ast.parse(module.read_text()).body:
            value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                names.add(value.value)
    return names
