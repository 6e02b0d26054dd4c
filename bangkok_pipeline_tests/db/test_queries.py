"""SQL where sql/README.md says it is: no statement longer than a line inline in Python, and every
named query the package loads exists."""

import ast
import re
from pathlib import Path

import pytest

import bangkok_pipeline
from bangkok_pipeline.core.settings import sql_dir
from bangkok_pipeline.db.queries import query

PACKAGE = Path(bangkok_pipeline.__file__).parent
# Being rewritten elsewhere (issue 10); their statements move with the rewrite.
NOT_YET: set[str] = set()
_STATEMENT = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|GRANT|REVOKE|COPY|LOCK)\b"
)


def _modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).as_posix() not in NOT_YET
    )


def test_no_multi_line_statement_is_inline() -> None:
    inline = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _STATEMENT.match(node.value)
                and node.end_lineno != node.lineno
            ):
                inline.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert inline == []


def _loaded_names() -> set[str]:
    names = set()
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "query"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
    return names


@pytest.mark.parametrize("name", sorted(_loaded_names()))
def test_every_named_query_exists(name: str) -> None:
    assert (sql_dir() / "queries" / f"{name}.sql").is_file()
    assert query(name).strip()
