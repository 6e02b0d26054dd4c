"""A small, realistic slice of the dataset for demos and UI work: the first week of July 2018,
all seven floors, with the generator's real-world defects.

Why a week: a whole month is ~9 M readings and takes ~25 s to load; a week is ~2 M and loads in
a few seconds, yet still has every floor, zone and channel, gaps, and defects to quarantine.
"""

import shutil
import tempfile
from pathlib import Path

from bangkok_pipeline.core.files import replacing_file
from bangkok_pipeline.core.months import Month
from bangkok_pipeline.devtools.generator import generate
from bangkok_pipeline.source.layout import parse_file_name

SAMPLE_MONTH = Month(2018, 7)
SAMPLE_DAYS = 7
# What a newcomer sees after loading the sample, and why it is not a fault.
EXPECTED_FINDINGS = (
    "note: the sample carries the generator's defects on purpose: an extra column (kept in the "
    "raw layer only), lines set aside in the quarantine table, gaps; and it holds 7 of July's 31 "
    "days, so the month's coverage check shows failed (a warning) in the UI. Real CU-BEMS "
    "files: see the README."
)


def keep_first_days(path: Path, days: int) -> None:
    """Cut every month of one `{year}Floor{n}.csv` down to its first `days` days (whole lines)."""
    source = parse_file_name(path.name)
    if source is None:
        raise ValueError(f"{path.name} is not a CU-BEMS file name")
    data = path.read_bytes()
    for number in range(1, 13):
        month = Month(source.year, number)
        cut = data.find(f"\n{month}-{days + 1:02d} ".encode())
        if cut == -1:
            continue
        resume = data.find(f"\n{month.next()}-".encode(), cut)
        data = data[: cut + 1] + (data[resume + 1 :] if resume != -1 else b"")
    with replacing_file(path) as part:
        part.write_bytes(data)


def write_sample(out: Path, seed: int = 42) -> list[Path]:
    """Generate the sample week into `out` (its CU-BEMS files replaced); return the files."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".sample-") as scratch:
        work = Path(scratch)
        generate(work, [SAMPLE_MONTH], seed=seed, defects=True)
        written = []
        for path in sorted(work.iterdir()):
            if parse_file_name(path.name) is None:
                continue
            keep_first_days(path, SAMPLE_DAYS)
            target = out / path.name
            shutil.move(path, target)
            written.append(target)
    return written


def has_sample(out: Path) -> bool:
    return out.is_dir() and any(parse_file_name(p.name) for p in out.iterdir())


class SampleError(ValueError):
    """A sample request that contradicts other options."""
