"""Reading a source file (BOM, CRLF, unfinished last line, broken files) and its raw layer."""

from pathlib import Path

import polars as pl
import pytest

from bangkok_pipeline.source.files import (
    INCOMPLETE,
    LINE_NO,
    RAW_LINE,
    SourceError,
    month_of_lines,
    raw_month_frame,
    read_source_lines,
)

HEADER = "Date,z1_Light(kW),z1_Plug(kW),z1_S1(degC)"
LINES = [
    "2018-07-31 23:58:00,0.5,1.25,27.1",
    "2018-07-31 23:59:00,,1.5,",
    "2018-08-01 00:00:00,0.75,2,27.3",
]


def write(tmp_path: Path, data: str | bytes, name: str = "2018Floor1.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def reconstruct(raw: pl.DataFrame, header: tuple[str, ...]) -> list[str]:
    """The original lines back from the raw layer: `raw_line` if set, else the joined fields."""
    joined = pl.concat_str([pl.col(name) for name in header], separator=",")
    return raw.select(pl.coalesce(RAW_LINE, joined)).to_series().to_list()


def test_bom_and_crlf_read_like_a_clean_file(tmp_path: Path) -> None:
    text = "\n".join([HEADER, *LINES]) + "\n"
    clean = read_source_lines(write(tmp_path, text, "2018Floor1.csv"))
    variants = {
        "bom": b"\xef\xbb\xbf" + text.encode(),
        "crlf": text.replace("\n", "\r\n").encode(),
        "both": b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(),
    }
    for label, data in variants.items():
        source = read_source_lines(write(tmp_path, data, f"2018Floor{len(label)}.csv"))
        assert source.header == clean.header
        assert source.lines.equals(clean.lines)
        assert source.bom == (label != "crlf")
        assert source.crlf == (label != "bom")
        for month in ("2018-07", "2018-08"):
            assert raw_month_frame(source, month).equals(raw_month_frame(clean, month))
    assert not clean.bom and not clean.crlf and not clean.incomplete_last_line


def test_raw_frame_rebuilds_every_line_exactly(tmp_path: Path) -> None:
    lines = [
        *LINES[:2],
        "### gateway reboot ###",
        "",
        '"2018-07-31 23:59:30",1,2,3',
        "2018-07-31 23:59:40,1,2,3,4",
        "2018-07-31 23:59:50,1,2\t,3",
        "2018-7-31 23:59:55,,,",
        LINES[2],
    ]
    source = read_source_lines(write(tmp_path, "\n".join([HEADER, *lines]) + "\n"))
    rebuilt: list[str] = []
    for month in source.months():
        raw = raw_month_frame(source, month)
        assert raw.columns == [LINE_NO, *source.header, RAW_LINE, INCOMPLETE]
        assert all(raw.schema[name] == pl.String for name in source.header)
        rebuilt += reconstruct(raw, source.header)
    assert rebuilt == lines
    july = raw_month_frame(source, "2018-07")
    assert july.get_column(LINE_NO).to_list() == list(range(2, 10))
    assert july.row(1, named=True)["z1_Light(kW)"] == ""  # an empty field is "", not null
    assert july.row(1, named=True)[RAW_LINE] is None
    broken = july.filter(pl.col(RAW_LINE).is_not_null())
    assert broken.get_column(LINE_NO).to_list() == [4, 5, 6, 7]  # garbage, blank, quote, 5 fields
    assert broken.get_column("Date").null_count() == 4


def test_unknown_column_is_kept_in_the_raw_frame(tmp_path: Path) -> None:
    header = "Date,z2_CO2(ppm),z1_Light(kW)"
    source = read_source_lines(write(tmp_path, f"{header}\n2018-07-01 00:00:00,415,0.5\n"))
    raw = raw_month_frame(source, "2018-07")
    assert raw.row(0, named=True)["z2_CO2(ppm)"] == "415"


def test_last_line_without_newline_is_flagged(tmp_path: Path) -> None:
    cut = "2018-08-01 00:00:00,0.7"
    path = write(tmp_path, "\n".join([HEADER, *LINES[:2], cut]))
    source = read_source_lines(path)
    assert source.incomplete_last_line
    # placed with the line before it, whatever its own Date says
    assert source.months() == ["2018-07"]
    raw = raw_month_frame(source, "2018-07")
    last = raw.row(-1, named=True)
    assert (last[LINE_NO], last[RAW_LINE], last[INCOMPLETE]) == (4, cut, True)
    assert raw.get_column(INCOMPLETE).to_list() == [False, False, True]
    assert reconstruct(raw, source.header) == [*LINES[:2], cut]


def test_file_with_a_final_newline_is_complete(tmp_path: Path) -> None:
    source = read_source_lines(write(tmp_path, HEADER + "\n" + LINES[0] + "\n"))
    assert not source.incomplete_last_line
    assert not raw_month_frame(source, "2018-07").get_column(INCOMPLETE).any()


def test_file_without_date_column_names_file_line_and_expectation(tmp_path: Path) -> None:
    path = write(tmp_path, "Time,z1_Light(kW)\n2018-07-01 00:00:00,1\n", "2018Floor4.csv")
    with pytest.raises(SourceError) as error:
        read_source_lines(path)
    assert str(error.value) == ("2018Floor4.csv line 1: expected first column 'Date', found 'Time'")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "2018Floor1.csv: empty file"),
        (b"\xef\xbb\xbf", "2018Floor1.csv: empty file"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)), "binary content"),
        (b"\x89\xfe\xff\x01junk,more\n\x93\x94\n", "2018Floor1.csv line 1: not UTF-8 text"),
        (b"Date,a,a\n", "line 1: column 'a' appears twice"),
        (b"Date,line_no\n", "line 1: column name 'line_no' is reserved"),
    ],
)
def test_unreadable_files_raise_source_error(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        read_source_lines(write(tmp_path, data))


def test_lines_with_odd_bytes_become_unparseable_not_fatal(tmp_path: Path) -> None:
    data = "\n".join([HEADER, LINES[0], "2018-07-31 23:59:00,\x1f,1,2", LINES[1]]).encode()
    data += b"\n2018-07-31 23:59:30,\xff,1,2\n"
    source = read_source_lines(write(tmp_path, data))
    raw = raw_month_frame(source, "2018-07")
    assert raw.height == 4
    flagged = raw.filter(pl.col(RAW_LINE).is_not_null()).get_column(LINE_NO).to_list()
    assert flagged == [3, 5]


def test_month_of_lines_takes_own_date_else_nearest_valid_line() -> None:
    lines = pl.DataFrame(
        {
            "line": [
                "garbage at the top",
                "2018-07-31 23:59:00,1",
                "2018-07-31 24:00:00,1",  # not a real time
                "2018-08-01 00:00:00,1",
                "01/08/2018 00:01,1",
                "2018-08-01 00:02:60,1",  # leap second: invalid
                "2018-08-01 00:03:00",
            ]
        }
    )
    assert month_of_lines(lines).to_list() == ["2018-07"] * 3 + ["2018-08"] * 4
    assert month_of_lines(pl.DataFrame({"line": ["x", "y"]})).to_list() == [None, None]
