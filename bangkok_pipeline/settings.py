"""Every setting the project reads from the environment, with its default, in one place."""

import os
from pathlib import Path
from zoneinfo import ZoneInfo

BANGKOK_TZ = ZoneInfo("Asia/Bangkok")
DATA_FIRST_MONTH = "2018-07"
DATA_LAST_MONTH = "2019-12"

PACKAGE_DIR = Path(__file__).resolve().parent


def _env(name: str) -> str | None:
    """A variable's value; set-but-empty counts as unset."""
    return os.environ.get(name) or None


def bangkok_home() -> Path:
    """Where the embedded server, Dagster's home and the raw layer live (`BANGKOK_HOME`)."""
    return Path(_env("BANGKOK_HOME") or ".bangkok").expanduser().resolve()


def database_url() -> str | None:
    """An external PostgreSQL to use instead of the embedded one (`DATABASE_URL`)."""
    return _env("DATABASE_URL")


def connect_attempts() -> int:
    """How often to try a server that does not answer before giving up
    (`BANGKOK_CONNECT_ATTEMPTS`)."""
    return max(1, int(_env("BANGKOK_CONNECT_ATTEMPTS") or "5"))


def source_dir() -> Path:
    """Where the CU-BEMS CSV files are read from (`CUBEMS_SOURCE_DIR`)."""
    default = bangkok_home() / "source"
    return Path(_env("CUBEMS_SOURCE_DIR") or default).expanduser().resolve()


def sql_dir() -> Path:
    """The `sql/` folder: shipped inside the wheel, or at the repository root in a checkout."""
    packaged = PACKAGE_DIR / "sql"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent / "sql"


def dagster_yaml() -> Path:
    """The instance configuration: shipped inside the wheel, or at the repository root."""
    packaged = PACKAGE_DIR / "dagster.yaml"
    return packaged if packaged.is_file() else PACKAGE_DIR.parent / "dagster.yaml"


def dagster_home() -> Path:
    """DAGSTER_HOME as the CLI sets it: inside BANGKOK_HOME unless the user chose another."""
    return Path(_env("DAGSTER_HOME") or bangkok_home() / "dagster")


def last_month() -> str:
    """The last month partition (`CUBEMS_LAST_MONTH`): extend it when newer files arrive."""
    return _env("CUBEMS_LAST_MONTH") or DATA_LAST_MONTH


def dagster_storage_url() -> str | None:
    """Dagster's own storage, when not the `dagster` database beside ours
    (`BANGKOK_DAGSTER_PG_URL`)."""
    return _env("BANGKOK_DAGSTER_PG_URL")


def max_source_bytes() -> int:
    """Source files larger than this are reported and skipped (`BANGKOK_MAX_SOURCE_BYTES`)."""
    return int(_env("BANGKOK_MAX_SOURCE_BYTES") or 2 * 1024**3)


def alert_webhook_url() -> str | None:
    """Where failed runs are also posted as JSON (`ALERT_WEBHOOK_URL`)."""
    return _env("ALERT_WEBHOOK_URL")


def sensor_interval_seconds() -> int:
    """How often the source sensor looks at the files (`BANGKOK_SENSOR_INTERVAL_SECONDS`)."""
    return int(_env("BANGKOK_SENSOR_INTERVAL_SECONDS") or 60)
