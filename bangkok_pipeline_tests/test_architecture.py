"""The folder tree is the architecture: plain logic imports no Dagster, only `defs/`, `runtime/`
and `cli/` do; every module lives in a package by concern (no catch-all `lib/`).

Imports are read from the source (ast) and followed through the package, so an indirect import
of Dagster (through `runtime/`, say) counts too."""

import ast
from functools import cache
from pathlib import Path

import pytest

import bangkok_pipeline

PACKAGE = Path(bangkok_pipeline.__file__).parent
MAY_IMPORT_DAGSTER = {"defs", "runtime", "cli"}
PLAIN = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    for path in PACKAGE.glob("*/*.py")
    if path.parent.name not in MAY_IMPORT_DAGSTER and path.name != "__init__.py"
)


def _path(module: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(module: str) -> set[str]:
    path = _path(module)
    if path is None:
        return set()
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@cache
def _dagster_path(module: str, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The chain of imports from `module` to Dagster, or () if there is none."""
    for name in sorted(_imports(module)):
        if name.split(".")[0] in {"dagster", "dagster_shared", "dagster_postgres"}:
            return (module, name)
        if name.startswith("bangkok_pipeline.") and _path(name) and name not in seen:
            chain = _dagster_path(name, seen | {module})
            if chain:
                return (module, *chain)
    return ()


def test_every_module_sits_in_a_package_by_concern() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert packages == {
        "cli", "core", "db", "defs", "devtools", "ops", "runtime", "source", "transform",
        "warehouse",
    }  # fmt: skip
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "definitions.py"]


@pytest.mark.parametrize("module", PLAIN)
def test_plain_logic_does_not_import_dagster(module: str) -> None:
    assert _dagster_path(module) == ()
