"""Every setting the project reads from the environment, with its default, in one place."""

import os
from pathlib import Path
from zoneinfo import ZoneInfo

BANGKOK_TZ = ZoneInfo("Asia/Bangkok")
DATA_FIRST_MONTH = "2018-07"
DATA_LAST_MONTH = "2019-12"

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # bangkok_pipeline/


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


def umask() -> int:
    """The file-creation mask of `bangkok-pipeline` and the processes it starts
    (`BANGKOK_UMASK`, octal, 077: what it writes under BANGKOK_HOME is private to its user)."""
    value = _env("BANGKOK_UMASK") or "077"
    try:
        mask = int(value, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise SettingError(f"BANGKOK_UMASK={value!r} is not an octal mask such as 077 or 027")
    return mask


def max_shrink_share() -> float:
    """The share of a floor's loaded readings a reload of the month may remove before it is
    refused (`BANGKOK_MAX_SHRINK_SHARE`, 0.1; `--allow-shrink` overrides it once)."""
    value = _env("BANGKOK_MAX_SHRINK_SHARE") or "0.1"
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise SettingError(f"BANGKOK_MAX_SHRINK_SHARE={value!r} is not a share between 0 and 1")
    return share


class SettingError(ValueError):
    """An environment variable whose value cannot be used; the message names it."""


_SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse_size(text: str) -> int:
    """`500MB`, `10 GB`, `1048576` -> bytes (binary units: 1 MB = 1024 * 1024 bytes)."""
    cleaned = text.strip().upper().replace(" ", "").removesuffix("IB").removesuffix("I")
    number = cleaned.rstrip("KMGTB")
    unit = cleaned[len(number) :]
    if unit and not unit.endswith("B"):
        unit += "B"
    try:
        return int(float(number) * _SIZE_UNITS[unit])
    except (KeyError, ValueError):
        raise SettingError(
            f"{text!r} is not a size; expected e.g. 500MB, 10GB or 1048576"
        ) from None


def database_budget_bytes() -> int:
    """The database size that health compares against, warning at 80 % (`BANGKOK_DB_BUDGET`;
    e.g. 500MB on a free hosted tier)."""
    try:
        return parse_size(_env("BANGKOK_DB_BUDGET") or "10GB")
    except SettingError as error:
        raise SettingError(f"BANGKOK_DB_BUDGET: {error}") from None


def slow_statement_ms() -> float:
    """Mean execution time above which health lists a statement (`BANGKOK_SLOW_STATEMENT_MS`)."""
    return float(_env("BANGKOK_SLOW_STATEMENT_MS") or 500)


def health_interval_seconds() -> int:
    """How often the health sensor evaluates the database (`BANGKOK_HEALTH_INTERVAL_SECONDS`)."""
    return int(_env("BANGKOK_HEALTH_INTERVAL_SECONDS") or 300)


def premake_months() -> int:
    """How many months after the newest loaded one get empty partitions ahead of time
    (`BANGKOK_PREMAKE_MONTHS`)."""
    return max(0, int(_env("BANGKOK_PREMAKE_MONTHS") or 2))


def _optional_int(name: str) -> int | None:
    value = _env(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a whole number of months") from None


def retain_raw_months() -> int | None:
    """Months of raw readings kept in the database, counting back from the newest loaded month;
    older months are archived to Parquet and dropped (`BANGKOK_RETAIN_RAW_MONTHS`; unset: all)."""
    return _optional_int("BANGKOK_RETAIN_RAW_MONTHS")


def retain_aggregate_months() -> int | None:
    """Months of hourly and daily aggregates kept (`BANGKOK_RETAIN_AGGREGATE_MONTHS`; unset: all).
    Only months whose raw readings are archived lose their aggregates; a restore rebuilds them."""
    return _optional_int("BANGKOK_RETAIN_AGGREGATE_MONTHS")


def archive_dir() -> Path:
    """Where archived months are written as Parquet plus manifest (`BANGKOK_ARCHIVE_DIR`)."""
    return Path(_env("BANGKOK_ARCHIVE_DIR") or bangkok_home() / "archive").expanduser().resolve()


def backup_dir() -> Path:
    """Where `db backup` writes when no --out is given (`BANGKOK_BACKUP_DIR`)."""
    return Path(_env("BANGKOK_BACKUP_DIR") or bangkok_home() / "backups").expanduser().resolve()


def backup_keep() -> int:
    """How many backups `db backup` keeps in their directory (`BANGKOK_BACKUP_KEEP`)."""
    return max(1, int(_env("BANGKOK_BACKUP_KEEP") or 7))


# Polars' allocator (jemalloc) keeps freed pages for a while; a month load frees and reallocates
# hundreds of MB between steps. Returning them promptly keeps a month under ~480 MB instead of
# ~510 MB. Read when Polars loads, so it is set for the processes that run loads.
ALLOCATOR_ENVIRONMENT = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:1000,muzzy_decay_ms:0"}
