"""The README's example SQL ("Query the data") runs on the sample week and returns rows, so the
examples cannot drift from the schema."""

import re
from pathlib import Path

import psycopg
import pytest

from bangkok_pipeline.devtools.sample import SAMPLE_MONTH, write_sample
from bangkok_pipeline_tests.conftest import load_directly

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[str]:
    """Every statement of the ```sql blocks in the README's "Query the data" section."""
    text = README.read_text()
    section = text[text.index("## Query the data") :]
    section = section[: section.index("\n## ", 1)]
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL):
        code = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
        statements += [s.strip() for s in code.split(";") if s.strip()]
    return statements


def test_the_readme_has_query_examples() -> None:
    assert len(_examples()) >= 8


@pytest.mark.integration
def test_every_readme_query_returns_rows_on_the_sample_week(
    migrated_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "sample"
    write_sample(source)
    assert load_directly(migrated_url, source, str(SAMPLE_MONTH), tmp_path / "home") > 0
    with psycopg.connect(migrated_url) as conn:
        conn.execute("SET TIME ZONE 'Asia/Bangkok'")
        for statement in _examples():
            rows = conn.execute(statement).fetchall()
            assert rows, statement
