"""The CU-BEMS generator: file layout, number format, determinism, defects, and the manifest.

The manifest is checked against a recount that reads the written files with the csv module and
applies the loader's rules on its own, so a manifest that drifts from its files fails here first.
"""

import csv
import datetime
import hashlib
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bangkok_pipeline.core.months import Month
from bangkok_pipeline.devtools.defects import FILE_KINDS, KINDS
from bangkok_pipeline.devtools.generator import BOM, GeneratorError, generate
from bangkok_pipeline.source.layout import FLOORS, file_name, floor_columns, parse_column
from bangkok_pipeline.source.state import DirectoryState, scan_directory

JULY = Month(2018, 7)
AUGUST = Month(2018, 8)
FEBRUARY = Month(2019, 2)  # a short month
SEED = 7
CHANNELS = {1: 11, 2: 36, 3: 32, 4: 32, 5: 32, 6: 29, 7: 32}
RANGES = {"kW": (0.0, 100.0), "degC": (10.0, 45.0), "RH%": (0.0, 100.0), "lux": (0.0, 5000.0)}
DECIMALS = {"kW": 2, "degC": 2, "RH%": 2, "lux": 1}
FIRST_MONTH = "2018-07"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")

Generated = tuple[Path, dict]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, [JULY], seed=SEED)


@pytest.fixture(scope="module")
def defective(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    out = tmp_path_factory.mktemp("defective")
    return out, generate(out, [FEBRUARY], seed=SEED, defects=True)


def _lines(path: Path) -> tuple[list[str], bool]:
    """Physical lines without terminators, and whether the last one was terminated."""
    data = path.read_bytes().removeprefix(BOM).decode()
    complete = data.endswith("\n")
    lines = data.split("\n")
    if complete:
        lines.pop()
    return [line.removesuffix("\r") for line in lines], complete


def _timestamp(text: str) -> datetime.datetime | None:
    if not TIMESTAMP.fullmatch(text):
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def recount(path: Path, floor: int) -> tuple[dict[str, dict], set[tuple[int, str | None, str]]]:
    """What a correct loader finds in a file: stats per month, and its quarantine rows.

    Quarantine rows are (line, column, reason). Readings are distinct (column, timestamp) pairs;
    of duplicated timestamps the later line's value is loaded and the earlier differing cells set
    aside.
    """
    lines, complete = _lines(path)
    year = int(path.name[:4])
    header = lines[0].split(",")
    readable = {j: c for j, name in enumerate(header) if j and (c := parse_column(floor, name))}
    months: dict[str, dict] = {}
    quarantined: set[tuple[int, str | None, str]] = set()
    rows: list[list[str]] = []  # the lines with a valid timestamp ...
    numbers: list[int] = []  # ... their line numbers
    current: str | None = None
    previous: str | None = None
    for number, (line, fields) in enumerate(zip(lines, csv.reader(lines), strict=True), start=1):
        if number == 1:
            continue
        cut = number == len(lines) and not complete
        stamp = _timestamp(fields[0]) if len(fields) == len(header) and not cut else None
        whole = stamp is not None and stamp.second == 0
        # the loader's placement rule: whole minute, the file's year, not before the first month
        placed = whole and fields[0][:4] == str(year) and fields[0][:7] >= FIRST_MONTH
        if placed:
            current = fields[0][:7]
        assert current is not None, f"line {number} comes before any valid row"
        month = months.setdefault(current, {"rows": 0, "identical_duplicates": 0})
        month["rows"] += 1
        if cut:
            quarantined.add((number, None, "incomplete_last_line"))
        elif len(fields) != len(header):
            quarantined.add((number, None, "unparseable_row"))
        elif not whole:
            quarantined.add((number, None, "invalid_timestamp"))
        elif not placed:
            quarantined.add((number, None, "outside_partition"))
        else:
            month["identical_duplicates"] += line == previous
            rows.append(fields)
            numbers.append(number)
        previous = line

    columns = [np.array(column, dtype=object) for column in zip(*rows, strict=True)]
    keys = np.array([text[:7] for text in columns[0]])
    minutes = np.array(columns[0], dtype="datetime64[m]").astype(np.int64)
    valid = np.zeros((len(rows), len(header)), dtype=bool)
    empty = np.zeros_like(valid)
    for j, channel in readable.items():
        low, high = RANGES[channel.unit]
        empty[:, j] = columns[j] == ""
        filled = np.flatnonzero(~empty[:, j])
        try:
            values = columns[j][filled].astype(float)
        except ValueError:  # a column with non-numbers: parse it cell by cell
            values = np.full(filled.size, np.nan)
            for k, i in enumerate(filled):
                try:
                    values[k] = float(columns[j][i])
                except ValueError:
                    quarantined.add((numbers[i], header[j], "invalid_number"))
        plausible = (values >= low) & (values <= high)
        valid[filled[plausible], j] = True
        for i in filled[~plausible & ~np.isnan(values)]:
            quarantined.add((numbers[i], header[j], "out_of_range"))

    repeated, counts = np.unique(minutes, return_counts=True)
    for minute in repeated[counts > 1]:
        *earlier, final = np.flatnonzero(minutes == minute)
        for i in earlier:
            for j in readable:
                if valid[i, j] and valid[final, j] and columns[j][i] != columns[j][final]:
                    quarantined.add((numbers[i], header[j], "conflicting_duplicate"))

    # One reading per (column, minute), whichever lines carry it.
    order = np.argsort(minutes, kind="stable")
    _, starts = np.unique(minutes[order], return_index=True)
    cells = list(readable)
    valid_once = np.logical_or.reduceat(valid[order][:, cells], starts, axis=0)
    empty_once = np.logical_and.reduceat(empty[order][:, cells], starts, axis=0)
    month_once = keys[order][starts]
    for key, month in months.items():
        inside = month_once == key
        month["valid_readings"] = int(valid_once[inside].sum())
        month["empty_cells"] = int(empty_once[inside].sum())
        month["missing_minutes"] = Month.parse(key).minutes - int(inside.sum())
        month["quarantine"] = Counter()
    for number, _, reason in quarantined:
        months[_month_of(number, numbers, keys)]["quarantine"][reason] += 1
    for month in months.values():
        month["quarantine"] = dict(sorted(month["quarantine"].items()))
    return months, quarantined


def _month_of(number: int, numbers: list[int], keys: np.ndarray) -> str:
    """The month of the nearest line at or before `number` with a valid timestamp."""
    return str(keys[int(np.searchsorted(numbers, number, side="right")) - 1])


def _check_manifest(out: Path, manifest: dict) -> None:
    reasons = {(d["file"], d["line"], d["column"], d["reason"]) for d in manifest["defects"]}
    totals: dict[str, Counter] = {}
    for name, entry in manifest["files"].items():
        path = out / name
        data = path.read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bom"] == data.startswith(BOM)
        assert entry["crlf"] == (b"\r\n" in data)
        lines, _ = _lines(path)
        assert entry["lines"] == len(lines)
        assert entry["header"] == lines[0].split(",")
        months, quarantined = recount(path, entry["floor"])
        assert entry["months"] == months, name
        assert {(name, *q) for q in quarantined} == {r for r in reasons if r[0] == name and r[3]}
        for key, stats in months.items():
            total = totals.setdefault(key, Counter())
            total.update(stats["quarantine"])
            total["valid_readings"] += stats["valid_readings"]
    for key, total in totals.items():
        assert manifest["totals"][key]["valid_readings"] == total.pop("valid_readings")
        assert manifest["totals"][key]["quarantine"] == dict(total)


def test_files_follow_the_published_layout(clean: Generated) -> None:
    out, manifest = clean
    names = {file_name(2018, floor) for floor in FLOORS}
    assert {p.name for p in out.iterdir()} == names | {"manifest.json"}
    for floor in FLOORS:
        lines, complete = _lines(out / file_name(2018, floor))
        assert complete
        assert lines[0].split(",") == ["Date", *floor_columns(floor)]
        assert len(lines[0].split(",")) - 1 == CHANNELS[floor]
        assert all(line.count(",") == CHANNELS[floor] for line in lines[1:])


def test_one_row_a_minute_in_bangkok_local_time(clean: Generated) -> None:
    out, manifest = clean
    for floor in FLOORS:
        lines, _ = _lines(out / file_name(2018, floor))
        stamps = [_timestamp(line.split(",")[0]) for line in lines[1:]]
        assert stamps[0] == datetime.datetime(2018, 7, 1, 0, 0)
        assert stamps[-1] == datetime.datetime(2018, 7, 31, 23, 59)
        assert stamps[:60] == [stamps[0] + datetime.timedelta(minutes=m) for m in range(60)]
        assert all(
            a is not None and b is not None and a < b
            for a, b in zip(stamps, stamps[1:], strict=False)
        )
        stats = manifest["files"][file_name(2018, floor)]["months"]["2018-07"]
        assert 0 < stats["missing_minutes"] < 300
        assert len(stamps) + stats["missing_minutes"] == 31 * 24 * 60


def test_values_are_rounded_plausible_numbers(clean: Generated) -> None:
    out, manifest = clean
    for floor in (2, 3):
        lines, _ = _lines(out / file_name(2018, floor))
        header = lines[0].split(",")
        units = [parse_column(floor, c).unit for c in header[1:]]  # type: ignore[union-attr]
        columns = list(zip(*(line.split(",")[1:] for line in lines[1:]), strict=True))
        texts: dict[str, set[str]] = {unit: set() for unit in DECIMALS}
        for column, unit in zip(columns, units, strict=True):
            texts[unit].update(column)
        for unit, distinct in texts.items():
            low, high = RANGES[unit]
            for text in distinct - {""}:
                assert re.fullmatch(r"\d+\.\d+", text) and repr(float(text)) == text, text
                assert len(text.split(".")[1]) <= DECIMALS[unit]
                assert low <= float(text) <= high
        empty = sum(column.count("") for column in columns)
        assert 0.001 < empty / (len(columns) * len(columns[0])) < 0.02


def test_manifest_matches_a_recount_without_defects(clean: Generated) -> None:
    out, manifest = clean
    assert manifest["months"] == ["2018-07"] and not manifest["with_defects"]
    assert manifest["defects"] == []
    _check_manifest(out, manifest)


def test_manifest_matches_a_recount_with_defects(defective: Generated) -> None:
    out, manifest = defective
    assert manifest["months"] == ["2019-02"] and manifest["with_defects"]
    _check_manifest(out, manifest)


def test_every_defect_kind_appears(defective: Generated) -> None:
    out, manifest = defective
    assert {d["kind"] for d in manifest["defects"]} == set(KINDS)
    files = {d["kind"]: d["file"] for d in manifest["defects"] if d["kind"] in FILE_KINDS}
    assert len(set(files.values())) == len(FILE_KINDS)
    assert (out / files["bom"]).read_bytes().startswith(BOM)
    crlf = (out / files["crlf"]).read_bytes()
    assert crlf.count(b"\n") == crlf.count(b"\r\n")
    assert not (out / files["truncated_last_line"]).read_bytes().endswith(b"\n")
    shuffled = manifest["files"][files["column_order"]]
    assert shuffled["header"][1:] != floor_columns(shuffled["floor"])
    assert sorted(shuffled["header"][1:]) == sorted(floor_columns(shuffled["floor"]))
    for kind, key in (("new_column", "new_columns"), ("unknown_column", "unknown_columns")):
        entry = manifest["files"][files[kind]]
        assert entry[key] and entry["header"][-1] == entry[key][0]
    new = manifest["files"][files["new_column"]]
    assert parse_column(new["floor"], new["new_columns"][0]) is not None
    assert new["new_columns"][0] not in floor_columns(new["floor"])
    unknown = manifest["files"][files["unknown_column"]]
    assert parse_column(unknown["floor"], unknown["unknown_columns"][0]) is None


def test_new_column_starts_a_third_into_its_years_first_month(
    defective: Generated, tmp_path: Path
) -> None:
    """The new sensor's start is a fixed minute (11 January 2019 here): whatever months are
    generated, a month's cells do not depend on the others."""

    def cells(out: Path, manifest: dict) -> list[str]:
        name = next(d["file"] for d in manifest["defects"] if d["kind"] == "new_column")
        lines, _ = _lines(out / name)
        width = lines[0].count(",")
        return [line.split(",")[-1] for line in lines[1:] if line.count(",") == width]

    january = cells(tmp_path, generate(tmp_path, [Month(2019, 1)], seed=SEED, defects=True))
    first = next(i for i, cell in enumerate(january) if cell)
    assert 0.3 < first / len(january) < 0.37
    assert sum(map(bool, january[first:])) / len(january[first:]) > 0.98
    february = cells(*defective)
    assert sum(map(bool, february)) / len(february) > 0.98


def test_adding_months_leaves_the_months_already_there(
    clean: Generated, defective: Generated, tmp_path: Path
) -> None:
    """`add` keeps what a folder holds: the source sensor sees only the new months change, and
    the month whose file ended in an unfinished line (the logger finished it)."""
    limit = 10**12
    plain = tmp_path / "plain"
    shutil.copytree(clean[0], plain)
    before = scan_directory(plain, DirectoryState(), limit).state
    added = generate(plain, [AUGUST], seed=SEED, add=True)
    assert added["months"] == ["2018-07", "2018-08"]
    assert scan_directory(plain, before, limit).changed.keys() == {"2018-08"}

    out = tmp_path / "defective"
    shutil.copytree(defective[0], out)
    before = scan_directory(out, DirectoryState(), limit).state
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("2019Floor*.csv")}
    december = generate(out, [Month(2018, 12)], seed=SEED, defects=True, add=True)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("2019Floor*.csv")} == mtimes
    after = scan_directory(out, before, limit)
    assert after.changed.keys() == {"2018-12"}
    manifest = generate(out, [Month(2019, 3)], seed=SEED, defects=True, add=True)
    assert manifest["months"] == ["2018-12", "2019-02", "2019-03"]
    assert scan_directory(out, after.state, limit).changed.keys() == {"2019-02", "2019-03"}
    unfinished = {d["month"] for d in manifest["defects"] if d["kind"] == "truncated_last_line"}
    assert unfinished == {"2018-12", "2019-03"}  # each year's last month
    assert manifest["totals"]["2018-12"] == december["totals"]["2018-12"]
    assert [d for d in manifest["defects"] if d["file"].startswith("2018")] == [
        d for d in december["defects"] if d["file"].startswith("2018")
    ]

    with pytest.raises(GeneratorError, match=r"generated with --seed 7 --defects; add months"):
        generate(out, [Month(2019, 4)], seed=SEED + 1, defects=True, add=True)
    (out / "manifest.json").unlink()
    with pytest.raises(GeneratorError, match="holds CU-BEMS files but no manifest.json"):
        generate(out, [Month(2019, 4)], seed=SEED, defects=True, add=True)


def test_same_seed_same_bytes_other_seed_other_bytes(
    clean: Generated, defective: Generated, tmp_path: Path
) -> None:
    for (out, manifest), month in ((clean, JULY), (defective, FEBRUARY)):
        again = tmp_path / f"again-{month}"
        assert generate(again, [month], seed=SEED, defects=manifest["with_defects"]) == manifest
        for name in manifest["files"]:
            assert (again / name).read_bytes() == (out / name).read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    (other / "2018Floor3.csv").write_text("stale")
    generate(other, [JULY], seed=SEED + 1, progress=True)
    replaced = (other / "2018Floor3.csv").read_bytes()
    assert replaced.startswith(b"Date,") and replaced != (clean[0] / "2018Floor3.csv").read_bytes()


def test_a_month_comes_out_the_same_when_generated_with_others(
    clean: Generated, tmp_path: Path
) -> None:
    out, manifest = clean
    both = generate(tmp_path, [AUGUST, JULY], seed=SEED)
    assert both["months"] == ["2018-07", "2018-08"]
    for name, entry in manifest["files"].items():
        alone = (out / name).read_bytes()
        assert (tmp_path / name).read_bytes().startswith(alone)
        assert both["files"][name]["months"]["2018-07"] == entry["months"]["2018-07"]


def test_unwritable_output_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with pytest.raises(GeneratorError, match=r"^cannot write to .*blocker.*: not a directory$"):
        generate(blocker, [JULY])
    with pytest.raises(GeneratorError, match=r"^cannot write to .*blocker/out: Not a directory$"):
        generate(blocker / "out", [JULY])
    with pytest.raises(GeneratorError, match="2017-01 before the data"):
        generate(tmp_path / "out", [Month(2017, 1)])
    with pytest.raises(GeneratorError, match="no months"):
        generate(tmp_path / "out", [])
