"""Settings from the environment: a bad value is one `SettingError` naming the variable and what
it expects, from the command line and when the definitions load."""

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from bangkok_pipeline.core import settings


@pytest.mark.parametrize(
    ("name", "read", "expected"),
    [
        ("BANGKOK_SENSOR_INTERVAL_SECONDS", settings.sensor_interval_seconds, "seconds"),
        ("BANGKOK_HEALTH_INTERVAL_SECONDS", settings.health_interval_seconds, "seconds"),
        ("BANGKOK_PREMAKE_MONTHS", settings.premake_months, "months"),
        ("BANGKOK_BACKUP_KEEP", settings.backup_keep, "backups"),
        ("BANGKOK_STATEMENT_TIMEOUT_SECONDS", settings.statement_timeout_seconds, "no limit"),
        ("BANGKOK_LOCK_TIMEOUT_SECONDS", settings.lock_timeout_seconds, "no limit"),
        ("BANGKOK_CONNECT_ATTEMPTS", settings.connect_attempts, "attempts"),
        ("BANGKOK_MAX_SOURCE_BYTES", settings.max_source_bytes, "bytes"),
        ("BANGKOK_SLOW_STATEMENT_MS", settings.slow_statement_ms, "milliseconds"),
        ("BANGKOK_RETAIN_RAW_MONTHS", settings.retain_raw_months, "months"),
        ("BANGKOK_COMPRESS_AFTER_MONTHS", settings.compress_after_months, "or off"),
    ],
)
def test_a_bad_number_names_the_variable_and_what_it_expects(
    monkeypatch: pytest.MonkeyPatch, name: str, read: Callable[[], object], expected: str
) -> None:
    monkeypatch.setenv(name, "often")
    with pytest.raises(settings.SettingError) as raised:
        read()
    message = str(raised.value)
    assert message.startswith(f"{name}='often' is not ")
    assert expected in message and "expected" in message
    with pytest.raises(settings.SettingError):
        settings.check_all()


def test_a_layers_url_without_a_storage_driver_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANGKOK_LAYERS_URL", "s4://bucket/layers")
    with pytest.raises(settings.SettingError, match=r"^BANGKOK_LAYERS_URL='s4://bucket/layers'"):
        settings.check_all()
    for good in ("s3://bucket/layers", "memory://layers", "/srv/layers"):
        monkeypatch.setenv("BANGKOK_LAYERS_URL", good)
        assert settings.layers_url() == good


def test_defaults_and_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BANGKOK_SENSOR_INTERVAL_SECONDS", raising=False)
    monkeypatch.setenv("BANGKOK_SLOW_STATEMENT_MS", " 12.5 ")
    monkeypatch.setenv("BANGKOK_BACKUP_KEEP", "0")
    assert settings.sensor_interval_seconds() == 60
    assert settings.slow_statement_ms() == 12.5
    assert settings.backup_keep() == 1
    monkeypatch.delenv("BANGKOK_COMPRESS_AFTER_MONTHS", raising=False)
    assert settings.compress_after_months() == 0  # every month compressed
    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", " OFF ")
    assert settings.compress_after_months() is None
    monkeypatch.setenv("BANGKOK_COMPRESS_AFTER_MONTHS", "2")
    assert settings.compress_after_months() == 2


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_a_bad_value_is_one_error_line_from_any_command() -> None:
    result = _python(
        "from bangkok_pipeline.cli.main import main; main()",
        "db",
        "url",
        BANGKOK_HEALTH_INTERVAL_SECONDS="5m",
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: BANGKOK_HEALTH_INTERVAL_SECONDS='5m' is not a whole number of seconds; "
        "expected e.g. 300"
    )


def test_loading_the_definitions_with_a_bad_value_fails_with_that_message() -> None:
    result = _python("import bangkok_pipeline.definitions", BANGKOK_SENSOR_INTERVAL_SECONDS="1.5")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "bangkok_pipeline.core.settings.SettingError: BANGKOK_SENSOR_INTERVAL_SECONDS='1.5' "
        "is not a whole number of seconds; expected e.g. 60"
    )
