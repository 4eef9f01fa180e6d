"""A small real HTTP server on 127.0.0.1 that serves vLLM-like Prometheus metrics.

Why: the inference-efficiency rules and panels divide Footprint's attributed energy by vLLM's own
counters (`vllm:generation_tokens_total`, `vllm:request_success_total`, label `model_name`). This
serves those counters in vLLM's exposition shape, growing steadily with wall time so that Prometheus
sees a positive rate from the second scrape on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Model:
    name: str
    tokens_per_second: float = 250.0  # generated tokens
    requests_per_second: float = 2.0  # successful requests
    prompt_tokens_per_second: float = 400.0


@dataclass
class VllmServer:
    url: str
    port: int
    models: Sequence[Model]
    started: float

    def counters(self) -> dict[str, float]:
        """Counter values now: whole tokens and requests since start, never decreasing."""
        elapsed = time.monotonic() - self.started
        out = {}
        for m in self.models:
            out[f"generation_tokens/{m.name}"] = float(int(elapsed * m.tokens_per_second))
            out[f"prompt_tokens/{m.name}"] = float(int(elapsed * m.prompt_tokens_per_second))
            out[f"request_success/{m.name}"] = float(int(elapsed * m.requests_per_second))
        return out

    def render(self) -> str:
        values = self.counters()
        lines = []
        families = (
            ("vllm:generation_tokens_total", "generation_tokens", "Number of generation tokens processed.", ""),
            ("vllm:prompt_tokens_total", "prompt_tokens", "Number of prefill tokens processed.", ""),
            ("vllm:request_success_total", "request_success", "Count of successfully processed requests.",
             'finished_reason="stop",'),
        )
        for name, key, help_text, extra in families:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} counter")
            for m in self.models:
                lines.append(f'{name}{{{extra}model_name="{m.name}"}} {values[f"{key}/{m.name}"]}')
        lines.append("# HELP vllm:num_requests_running Number of requests currently running on GPU.")
        lines.append("# TYPE vllm:num_requests_running gauge")
        for m in self.models:
            lines.append(f'vllm:num_requests_running{{model_name="{m.name}"}} 4.0')
        return "\n".join(lines) + "\n"


@contextmanager
def serve_vllm(models: Sequence[Model] = (Model("meta-llama/Llama-3.1-8B-Instruct"),)) -> Iterator[VllmServer]:
    """Serve /metrics on a free 127.0.0.1 port until the block ends."""
    state: dict[str, VllmServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = state["server"].render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = int(httpd.server_address[1])
    state["server"] = VllmServer(f"http://127.0.0.1:{port}", port, tuple(models), time.monotonic())
    thread = threading.Thread(target=httpd.serve_forever, name="fake-vllm", daemon=True)
    thread.start()
    try:
        yield state["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
