"""Named SQL statements from `sql/queries/<name>.sql`, read once."""

from functools import cache

from bangkok_pipeline.core.settings import sql_dir


@cache
def query(name: str) -> str:
    return (sql_dir() / "queries" / f"{name}.sql").read_text()
