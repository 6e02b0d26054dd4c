"""A real S3 API on loopback: moto's server (`moto[server]`) in a process of its own, reached
through s3fs exactly as a bucket on AWS or MinIO would be (credentials and endpoint from the
standard `AWS_*` variables)."""

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fsspec

from bangkok_pipeline.runtime.services import free_port


class S3Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix="bangkok-moto-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a user sets to reach the bucket."""
        return {
            "AWS_ACCESS_KEY_ID": "test-key",
            "AWS_SECRET_ACCESS_KEY": "test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def start(self) -> "S3Server":
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    output = self.log.read_text()
                    raise RuntimeError(f"moto server did not start: {output}") from None
                time.sleep(0.1)

    def bucket(self, name: str) -> str:
        """Create bucket `name`; its URL."""
        fs = fsspec.filesystem(
            "s3",
            key=self.env["AWS_ACCESS_KEY_ID"],
            secret=self.env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=self.endpoint,
            skip_instance_cache=True,
        )
        fs.mkdir(name)
        return f"s3://{name}"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=30)
        self.log.unlink(missing_ok=True)
