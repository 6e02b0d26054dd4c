"""The sample week: files cut to whole days of each month, and the generated slice itself."""

from pathlib import Path

import pytest

from bangkok_pipeline.cli.main import run
from bangkok_pipeline.cli.operations import sample_source
from bangkok_pipeline.devtools.sample import SAMPLE_DAYS, keep_first_days, write_sample
from bangkok_pipeline.source.layout import parse_file_name


def test_keep_first_days_keeps_whole_days_of_every_month(tmp_path: Path) -> None:
    lines = ["Date,z1_Light(kW)"]
    for month, days in (("02", 28), ("03", 31)):
        lines += [f"2019-{month}-{day:02d} 00:00:00,1.0" for day in range(1, days + 1)]
        lines.append("not a timestamp,2.0")
    path = tmp_path / "2019Floor1.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    keep_first_days(path, 2)
    assert path.read_bytes().decode().split("\r\n") == [
        "Date,z1_Light(kW)",
        "2019-02-01 00:00:00,1.0",
        "2019-02-02 00:00:00,1.0",
        "2019-03-01 00:00:00,1.0",
        "2019-03-02 00:00:00,1.0",
        "",
    ]


def test_the_sample_is_the_first_week_of_july_2018_on_every_floor(tmp_path: Path) -> None:
    files = write_sample(tmp_path / "sample")
    assert sorted(parse_file_name(f.name).floor for f in files) == list(range(1, 8))  # type: ignore[union-attr]
    assert sorted(p.name for p in (tmp_path / "sample").iterdir()) == sorted(f.name for f in files)
    for path in files:
        body = path.read_text(encoding="utf-8-sig").splitlines()
        # lines of July 2018 (the generator's defects include other years and a month 13)
        dates = [line[:10] for line in body[1:] if line[:8] == "2018-07-"]
        assert min(dates) == "2018-07-01"
        assert max(dates[:-1]) == f"2018-07-{SAMPLE_DAYS:02d}"  # the last line may be unfinished


def test_sample_refuses_its_own_choices_being_overridden(capsys: object, tmp_path: Path) -> None:
    assert run(["load", "--sample", "--source", str(tmp_path)]) == 1
    assert "--sample picks its own source and month" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_sample_source_generates_the_week_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BANGKOK_HOME", str(tmp_path))
    directory = sample_source()
    assert "generating the sample week" in capsys.readouterr().out
    files = {p: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert len(files) == 7
    assert sample_source() == directory and capsys.readouterr().out == ""
    assert {p: p.stat().st_mtime_ns for p in directory.iterdir()} == files
