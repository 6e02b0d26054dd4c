"""The source cache (`source.cache`): a year file is parsed once for all its months, each month's
raw frame equals a fresh read's, and a file that changed (size, mtime, or only its bytes) is read
again."""

import os
from pathlib import Path

import polars as pl
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.devtools.sample import keep_first_days
from bangkok_pipeline.source.cache import FileFacts, SourceCache
from bangkok_pipeline.source.files import raw_month_frame, read_source_lines
from bangkok_pipeline.source.state import read_file_state

MONTHS = [Month(2019, 1), Month(2019, 2), Month(2019, 3)]


@pytest.fixture(scope="module")
def year_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cache-source")
    generate(folder, MONTHS, seed=5, defects=True)
    path = folder / "2019Floor1.csv"
    keep_first_days(path, 1)
    return path


def _month(cache: SourceCache, path: Path, month: Month) -> tuple[FileFacts, pl.DataFrame]:
    return cache.month(path, cache.state(path, 2019), str(month))


def test_every_month_from_the_cache_equals_a_fresh_read(year_file: Path, tmp_path: Path) -> None:
    cache = SourceCache(tmp_path / "cache")
    first_facts, first = _month(cache, year_file, MONTHS[0])
    entries = [p for p in (tmp_path / "cache" / year_file.name).iterdir() if p.is_dir()]
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == [
        "2019-01.parquet",
        "2019-02.parquet",
        "2019-03.parquet",
        "facts.json",
    ]
    source = read_source_lines(year_file)
    assert first_facts == FileFacts.of(source)
    assert first.equals(raw_month_frame(source, str(MONTHS[0])))
    for month in [*MONTHS, Month(2019, 4)]:  # April: no line, the file's columns
        facts, raw = _month(cache, year_file, month)
        assert facts == first_facts
        assert raw.equals(raw_month_frame(source, str(month))), month
    assert _month(cache, year_file, Month(2019, 4))[1].is_empty()


def test_a_changed_file_is_read_again_and_its_old_entry_goes(
    year_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / year_file.name
    path.write_bytes(year_file.read_bytes())
    cache = SourceCache(tmp_path / "cache")
    before = _month(cache, path, MONTHS[1])[1]
    # The same size and mtime, one digit of February changed: the month digest tells.
    data = bytearray(path.read_bytes())
    stat = path.stat()
    at = data.index(b"\n2019-02-01 00:05:00,") + len(b"\n2019-02-01 00:05:00,")
    while not chr(data[at]).isdigit():
        at += 1
    data[at] = ord("7") if data[at] != ord("7") else ord("3")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = _month(cache, path, MONTHS[1])[1]
    assert not after.equals(before)
    assert after.equals(raw_month_frame(read_source_lines(path), str(MONTHS[1])))
    # Appended lines: another size, another entry; the old one is removed.
    with path.open("a") as handle:
        handle.write("2019-03-01 23:59:00" + "," * (len(after.columns) - 4) + "\n")
    _month(cache, path, MONTHS[2])
    assert len([p for p in (tmp_path / "cache" / path.name).iterdir() if p.is_dir()]) == 1


def test_file_digests_are_remembered_for_the_exact_version_only(
    year_file: Path, tmp_path: Path
) -> None:
    path = tmp_path / year_file.name
    path.write_bytes(year_file.read_bytes())
    cache = SourceCache(tmp_path / "cache")
    assert cache.state(path, 2019) == read_file_state(path, 2019)
    assert (tmp_path / "cache" / path.name / "state.json").is_file()
    assert cache.state(path, 2019) == read_file_state(path, 2019)  # from the memo
    # Same size and mtime, other bytes: the ctime moved, so the digests are computed again.
    stat = path.stat()
    data = bytearray(path.read_bytes())
    at = data.index(b"\n2019-03-") + 20
    data[at] = ord("8") if data[at] != ord("8") else ord("2")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = cache.state(path, 2019)
    assert changed == read_file_state(path, 2019)
    assert (changed.size, changed.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert changed.months["2019-03"] != read_file_state(year_file, 2019).months["2019-03"]
