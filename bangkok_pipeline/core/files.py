"""Files and folders written whole: readers see the old version or the new one, never half of
one, and a failure leaves nothing behind. What the project writes under BANGKOK_HOME is private
(folders 0700)."""

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bangkok_pipeline.core.failures import os_error_number


def private_dir(path: Path) -> Path:
    """`path` and its missing parents, created 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing_file(target: Path, durable: bool = False) -> Iterator[Path]:
    """Yield a path beside `target` to write; on success it replaces `target` in one rename
    (flushed to disk first, and the folder after, when `durable`); on failure it is removed."""
    part = target.with_name(f".{target.name}.part")
    try:
        yield part
        if durable:
            fsync(part)
        os.replace(part, target)
        if durable:
            fsync(target.parent)
    finally:
        part.unlink(missing_ok=True)


@contextmanager
def replacing_dir(target: Path) -> Iterator[Path]:
    """Yield an empty folder beside `target`; on success it becomes `target` in one rename.

    An OS error without a path (a full disk while Polars or Arrow write) is raised again as an
    OSError naming `target`, so that the message says where.
    """
    private_dir(target.parent)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    scratch.mkdir(mode=0o700)
    try:
        yield scratch
        replace_dir(target, scratch)
    except Exception as error:
        number = error.errno if isinstance(error, OSError) else os_error_number(str(error))
        if not number or (isinstance(error, OSError) and error.filename):
            raise
        raise OSError(number, os.strerror(number), str(target)) from error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def replace_dir(target: Path, source: Path) -> None:
    """Put folder `source` in place of `target` (renames only; readers never see half of it)."""
    private_dir(target.parent)
    old = target.with_name(f".{target.name}.old.{uuid.uuid4().hex[:8]}")
    if target.exists():
        os.rename(target, old)
    os.rename(source, target)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if missing) against other processes; the
    kernel releases it if the holder dies, so a crash never leaves it held."""
    with open(lock_file, "a") as handle:
        _lock(handle.fileno(), hold=True)
        try:
            yield
        finally:
            _lock(handle.fileno(), hold=False)


def _lock(fd: int, hold: bool) -> None:
    """Take or release the whole-file lock of `fd` (blocking)."""
    if sys.platform == "win32":  # not a supported platform (README), but no ImportError
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK if hold else msvcrt.LK_UNLCK, 1)
        return
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX if hold else fcntl.LOCK_UN)
