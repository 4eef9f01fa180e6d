"""Real Prometheus and Alertmanager processes (and a webhook receiver) on 127.0.0.1 for tests.

Everything here is a context manager that starts the real thing on a free loopback port with its own
temporary data directory, waits (bounded) until it reports ready, and stops it on exit:

    with start_prometheus(scrape_configs=[static_job("footprint", [exporter.port])],
                          rule_files=[RULES / "recording.yml"]) as prom:
        prom.wait_for_query("footprint_node_power_watts", timeout=30)
        value = prom.query_value('sum(footprint_node_power_watts)')

    with receive_webhooks() as hook, \\
         start_alertmanager(webhook_config(hook.url)) as am, \\
         start_prometheus(..., alertmanager=am) as prom:
        payload = hook.wait_for(lambda p: ..., timeout=60)

Binaries come from PATH or <repo>/.tools/bin (`make tools`); a missing one fails with that hint.
Prometheus shows its first scrape about 5 s after start (a fixed discovery tick), so waits on scraped
data should allow 30 s or more on a busy CI machine.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.support.exporter import free_port
from tests.support.tools import tool

T = TypeVar("T")

DEFAULT_INTERVAL = "1s"


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2,
               context: Callable[[], str] | None = None) -> T:
    """Call `predicate` until it returns something truthy and return that; fail after `timeout` s.

    `what` names the awaited condition in the failure message, `context()` adds diagnostics (logs).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            extra = f"\n{context()}" if context else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


class _Server:
    """A child process serving HTTP on 127.0.0.1:port, logging to a file in its temp directory."""

    name = "server"

    def __init__(self, proc: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"

    def log(self, tail: int = 4000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} log (last {tail} chars) ---\n{text[-tail:]}"

    def get_json(self, path: str, params: Mapping[str, str] | None = None, method: str = "GET") -> Any:
        """One HTTP call to the server; HTTP errors fail with the body (it names the PromQL mistake)."""
        query = urllib.parse.urlencode(params or {})
        if method == "POST":
            req = urllib.request.Request(self.url + path, data=query.encode(), method="POST")
        else:
            req = urllib.request.Request(self.url + path + (f"?{query}" if query else ""))
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            raise AssertionError(f"{self.name} {path} {params or ''}: HTTP {exc.code}: {body}") from None

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}\n{self.log()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> None:
        wait_until(self._ready, timeout, f"{self.name} to be ready on {self.url}", interval=0.1, context=self.log)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)


@contextmanager
def _run(cls: type[_Server], build_args: Callable[[Path, int], list[str]], ready_timeout: float,
         workdir: Path | None) -> Iterator[Any]:
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix=f"footprint-{cls.name}-")) if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / f"{cls.name}.log").open("wb")
    proc = subprocess.Popen(build_args(workdir, port), stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=workdir)
    server = cls(proc, port, workdir)
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()
        log.close()
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


class PrometheusServer(_Server):
    """A running Prometheus: query it through its HTTP API."""

    name = "prometheus"

    def api(self, path: str, **params: str) -> Any:
        """`data` of a successful /api/v1 answer (POST, so long PromQL fits)."""
        body = self.get_json(f"/api/v1/{path}", params, method="POST")
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result list, each `{"metric": {labels}, "value": [ts, "text"]}`."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_value(self, expr: str) -> float | None:
        """The value of a query that yields at most one series (None when it yields none)."""
        result = self.query(expr)
        assert len(result) <= 1, f"{expr} returned {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None

    def wait_for_query(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until `expr` returns at least one series (e.g. after the first scrapes)."""
        return wait_until(lambda: self.query(expr), timeout, f"PromQL {expr!r} to return data", context=self.log)

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) as Prometheus evaluates them."""
        return list(self.api("alerts")["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])


class AlertmanagerServer(_Server):
    """A running single-node Alertmanager (no cluster port)."""

    name = "alertmanager"

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds (API v2)."""
        return list(self.get_json("/api/v2/alerts"))


def static_job(job: str, ports: Sequence[int], labels: Mapping[str, str] | None = None,
               interval: str = DEFAULT_INTERVAL, **extra: Any) -> dict[str, Any]:
    """A scrape config for targets on 127.0.0.1:<port>, with optional target labels."""
    group: dict[str, Any] = {"targets": [f"127.0.0.1:{p}" for p in ports]}
    if labels:
        group["labels"] = dict(labels)
    return {"job_name": job, "scrape_interval": interval, "static_configs": [group], **extra}


@contextmanager
def start_prometheus(
    scrape_configs: Sequence[Mapping[str, Any]],
    rule_files: Sequence[Path] = (),
    alertmanager: AlertmanagerServer | None = None,
    interval: str = DEFAULT_INTERVAL,
    workdir: Path | None = None,
    ready_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> Iterator[PrometheusServer]:
    """Run Prometheus with these scrape configs and rule files; scrape and evaluate every `interval`.

    `alertmanager` wires alert delivery to that Alertmanager. Data lives in `workdir` (default: a temp
    directory removed afterwards). The config is checked by Prometheus itself: a bad one fails startup
    with its log in the message.
    """
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [dict(c) for c in scrape_configs],
    }
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{alertmanager.port}"]}]}]}

    def args(wd: Path, port: int) -> list[str]:
        (wd / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        return [tool("prometheus"), f"--config.file={wd / 'prometheus.yml'}", f"--storage.tsdb.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url=http://127.0.0.1:{port}/",
                "--log.level=warn", *extra_args]

    with _run(PrometheusServer, args, ready_timeout, workdir) as server:
        yield server


def webhook_config(url: str, group_wait: str = "1s", group_interval: str = "1s") -> dict[str, Any]:
    """An Alertmanager config that sends every alert, grouped by alertname, to one webhook at once."""
    return {
        "route": {"receiver": "webhook", "group_by": ["alertname"], "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": "1h"},
        "receivers": [{"name": "webhook", "webhook_configs": [{"url": url, "send_resolved": True}]}],
    }


@contextmanager
def start_alertmanager(
    config: Mapping[str, Any],
    workdir: Path | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[AlertmanagerServer]:
    """Run Alertmanager with `config` on 127.0.0.1, clustering off (it would bind 0.0.0.0:9094)."""

    def args(wd: Path, port: int) -> list[str]:
        (wd / "alertmanager.yml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
        return [tool("alertmanager"), f"--config.file={wd / 'alertmanager.yml'}", f"--storage.path={wd / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url=http://127.0.0.1:{port}/",
                "--cluster.listen-address=", "--log.level=warn"]

    with _run(AlertmanagerServer, args, ready_timeout, workdir) as server:
        yield server


@dataclass
class WebhookReceiver:
    """Collects the JSON bodies POSTed to `url` (Alertmanager's webhook notifications)."""

    url: str
    payloads: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.payloads)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert in every notification so far, in arrival order."""
        return [alert for payload in self.received() for alert in payload.get("alerts", [])]

    def wait_for_alert(self, predicate: Callable[[dict[str, Any]], bool], timeout: float,
                       context: Callable[[], str] | None = None) -> dict[str, Any]:
        """The first delivered alert matching `predicate`; fail after `timeout` s with what did arrive."""

        def found() -> dict[str, Any] | None:
            return next((a for a in self.alerts() if predicate(a)), None)

        def describe() -> str:
            seen = json.dumps(self.alerts(), indent=1)[-3000:]
            return f"delivered so far: {seen}" + (f"\n{context()}" if context else "")

        return wait_until(found, timeout, "a matching alert at the webhook", context=describe)


@contextmanager
def receive_webhooks() -> Iterator[WebhookReceiver]:
    """An HTTP server on 127.0.0.1:<free port> that records every POSTed JSON body."""
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver._lock:
                receiver.payloads.append(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{httpd.server_address[1]}/alerts")
    thread = threading.Thread(target=httpd.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
