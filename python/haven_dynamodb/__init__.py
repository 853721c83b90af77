"""Haven, the DynamoDB-compatible server, for Python tests.

The wheel carries the `haven` binary (``binary_path()``; the ``haven`` command runs it) and a pytest
plugin (``haven_dynamodb.pytest_plugin``, registered automatically) whose fixtures start Haven in
memory on a free loopback port and hand out boto3 clients. Starting Haven takes milliseconds, so a
fresh server per test is affordable.
"""

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["HavenServer", "binary_path"]


def binary_path() -> Path:
    """The `haven` binary inside this package (``HAVEN_BINARY`` overrides it)."""
    override = os.environ.get("HAVEN_BINARY")
    return Path(override) if override else Path(__file__).parent / "bin" / "haven"


class HavenServer:
    """A `haven serve --in-memory` child on 127.0.0.1 and a free port; stop() or a `with` block
    ends it. ``args`` are more `haven serve` options (``["--isolation", "key-region"]``...)."""

    def __init__(self, args=(), start_timeout=30.0):
        command = [str(binary_path()), "serve", "--listen", "127.0.0.1:0", "--in-memory",
                   "--log-level", "warn", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        line = self._first_line(start_timeout)
        if "://" not in line:
            self.stop()
            raise RuntimeError(f"haven did not start: {line!r}")
        self.endpoint = line.strip().rsplit(" ", 1)[-1]

    def _first_line(self, timeout):
        """Haven's "listening" line, or an empty string if it exits or stays silent too long."""
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        ready = selector.select(timeout)
        selector.close()
        return self.process.stdout.readline().decode() if ready else ""

    def client(self, region="us-east-1", access_key_id="haven", secret="haven"):
        """A boto3 DynamoDB client for this server."""
        import boto3

        return boto3.client("dynamodb", endpoint_url=self.endpoint, region_name=region,
                            aws_access_key_id=access_key_id, aws_secret_access_key=secret)

    def stop(self):
        """Stops the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    """The ``haven`` command: runs the packaged binary with the same arguments."""
    binary = str(binary_path())
    os.execv(binary, [binary, *sys.argv[1:]])
