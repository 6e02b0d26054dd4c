"""Folders of files kept in object storage (any fsspec URL: `s3://bucket/prefix`, `gs://…`,
`memory://…`), so that processes that share no disk can hand them over.

A folder is a prefix of objects and counts as present only once its `_COMPLETE` marker, written
after every file, exists: a writer that dies half-way leaves nothing a reader takes for whole.
Small texts (pointers) are single objects, replaced in one PUT. Credentials and endpoint come from
the library's usual environment (for S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`). Every failure is an `ObjectStoreError` naming the URL.
"""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import fsspec

from bangkok_pipeline.core.files import replacing_dir

MARKER = "_COMPLETE"


class ObjectStoreError(OSError):
    """Object storage could not be read or written; the message names the URL and the reason."""


class ObjectStore:
    """Folders and texts under one URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            # Not fsspec's cached instance: the endpoint and credentials are read now, not reused.
            self.fs, self.base = fsspec.core.url_to_fs(self.url, skip_instance_cache=True)
        except (ImportError, ValueError) as error:  # an unknown scheme, a missing driver
            raise ObjectStoreError(f"{self.url}: {error}") from None

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    @contextmanager
    def _errors(self, doing: str, key: str) -> Iterator[None]:
        try:
            yield
        except ObjectStoreError:
            raise
        except Exception as error:  # the driver's own (botocore, aiohttp, OSError): one line
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ObjectStoreError(f"cannot {doing} {self.url}/{key}: {reason}") from error

    def upload(self, folder: Path, key: str) -> None:
        """Put every file of `folder` under `key`, then its marker. What an earlier attempt left
        there goes first, marker first, so a retried upload is never taken for whole half-way."""
        with self._errors("write", key):
            self._delete(key)
            for path in sorted(folder.iterdir()):
                self.fs.put_file(str(path), self._path(f"{key}/{path.name}"))
            self.fs.pipe_file(self._path(f"{key}/{MARKER}"), b"")

    def complete(self, key: str) -> bool:
        """Whether the folder `key` was uploaded whole."""
        with self._errors("read", key):
            self.fs.invalidate_cache()
            return bool(self.fs.exists(self._path(f"{key}/{MARKER}")))

    def download(self, key: str, folder: Path) -> Path:
        """The complete folder `key` as the local `folder` (replaced whole); returns `folder`."""
        with self._errors("read", key), replacing_dir(folder) as part:
            for name in self._names(key):
                if name != MARKER:
                    self.fs.get_file(self._path(f"{key}/{name}"), str(part / name))
        return folder

    def children(self, key: str) -> list[str]:
        """The names directly under `key` (none if it does not exist)."""
        with self._errors("list", key):
            return self._names(key)

    def _names(self, key: str) -> list[str]:
        self.fs.invalidate_cache()
        try:
            entries = self.fs.ls(self._path(key), detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)

    def read_text(self, key: str) -> str | None:
        with self._errors("read", key):
            try:
                return bytes(self.fs.cat_file(self._path(key))).decode()
            except FileNotFoundError:
                return None

    def write_text(self, key: str, text: str) -> None:
        with self._errors("write", key):
            self.fs.pipe_file(self._path(key), text.encode())

    def remove(self, key: str) -> None:
        """Remove the folder or object `key`, marker first; a missing one is not an error."""
        with self._errors("remove", key):
            self._delete(key)

    def _delete(self, key: str) -> None:
        for path in (self._path(f"{key}/{MARKER}"), self._path(key)):
            with suppress(FileNotFoundError):
                self.fs.rm(path, recursive=True)
