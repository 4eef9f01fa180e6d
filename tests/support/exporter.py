"""Start the real exporter as a subprocess on a free loopback port, and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ExporterProcess:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def get(self, path: str = "/metrics", headers: Mapping[str, str] | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        with urllib.request.urlopen(req, timeout=5) as resp:
            return bytes(resp.read())

    def scrape(self) -> str:
        return self.get("/metrics").decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, predicate: Callable[[str], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
        """Scrape until predicate(text) is truthy; return its value. Fails with the log on timeout."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.scrape()
                result = predicate(last)
                if result:
                    return result
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s; last scrape:\n{last[-3000:]}\nlog:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)


@contextmanager
def start_exporter(
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    ready_timeout: float = 10.0,
    wrap: Sequence[str] = (),
) -> Iterator[ExporterProcess]:
    """Run `python -m footprint` with `args` on 127.0.0.1:<free port> and wait until /metrics answers.

    The environment is the test's own minus FOOTPRINT_* (so a developer's settings never leak in), plus `env`.
    `wrap` runs the command through another (e.g. `unshare` for a container's own host name).
    """
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO / "exporter") + os.pathsep + full_env.get("PYTHONPATH", "")
    log_fd, log_name = tempfile.mkstemp(prefix="footprint-", suffix=".log")
    cmd = [*wrap, sys.executable, "-m", "footprint", f"--web.listen-address=127.0.0.1:{port}", *args]
    proc = subprocess.Popen(cmd, stdout=log_fd, stderr=subprocess.STDOUT, env=full_env)
    os.close(log_fd)
    exporter = ExporterProcess(proc, port, Path(log_name))
    try:
        exporter.wait_until(lambda text: "footprint_build_info" in text, timeout=ready_timeout)
        yield exporter
    finally:
        exporter.stop()
        Path(log_name).unlink(missing_ok=True)
