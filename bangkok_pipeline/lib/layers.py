"""Where the file layers of a month live under BANGKOK_HOME, written atomically.

`raw/<month>/`: one Parquet per source file (every line, every column, as text) and
`manifest.json` (headers, sensors, fingerprints). `validated/<month>/`: `readings.parquet`
(ts, sensor_id, value sorted by sensor and time), `quarantine.parquet`, `fingerprints.parquet`
and `summary.json`. A layer is replaced whole: it is written to a temporary folder and renamed.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bangkok_pipeline import settings
from bangkok_pipeline.lib.failures import os_error_number


def layer_dir(layer: str, month: str, home: Path | None = None) -> Path:
    return (home or settings.bangkok_home()) / "layers" / layer / month


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside `target`; on success it becomes `target` in one rename.

    An OS error without a path (a full disk while Polars or Arrow write) is raised again as an
    OSError naming `target`, so that the message says where.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    scratch.mkdir()
    try:
        yield scratch
        old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex[:8]}")
        if target.exists():
            os.rename(target, old)
        os.rename(scratch, target)
        shutil.rmtree(old, ignore_errors=True)
    except Exception as error:
        number = error.errno if isinstance(error, OSError) else os_error_number(str(error))
        if not number or (isinstance(error, OSError) and error.filename):
            raise
        raise OSError(number, os.strerror(number), str(target)) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


def read_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: materialize the upstream asset first")
    return json.loads(path.read_text())
