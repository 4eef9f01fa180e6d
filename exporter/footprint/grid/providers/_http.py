"""What every HTTP provider shares: one GET turned into JSON or a ProviderError with a fixed reason,
and tolerant parsing of numbers and times.

Error messages name the host and path only: credentials travel in headers or basic auth, never in a
URL or a message.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

from footprint import numbers
from footprint.grid.base import MAX_PLAUSIBLE_INTENSITY, ForecastPoint, ProviderError

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237
MAX_BODY = 8 * 1024 * 1024  # bytes; a grid answer is a few kB, a 48 h 5-minute forecast well under 1 MB


class HttpStatusError(ProviderError):
    """The API answered with an error status; `status` lets a provider tell "no such plan" from a fault."""

    def __init__(self, reason: str, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(reason, message, retry_after)
        self.status = status


class Http:
    def __init__(
        self, name: str, session: requests.Session, timeout: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.session = session
        self.timeout = timeout
        self.clock = clock
        self.dropped = new_dropped()  # values this provider's answers held that failed validation
        # A CA bundle path, passed with each request: requests lets REQUESTS_CA_BUNDLE override a
        # session's own `verify` (psf/requests#3829), so setting it on the session is not enough.
        self.verify: bool | str = True

    def get_json(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        not_found: str = "http_4xx",
    ) -> Any:
        """GET and decode JSON. `not_found` is the reason a 404 (and 400) means for this call."""
        parts = urlsplit(url)
        where = f"{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"
        try:
            with self.session.get(
                url, params=params, headers=headers, auth=auth, timeout=self.timeout, allow_redirects=False,
                stream=True, verify=self.verify,
            ) as resp:
                body = b""
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_BODY:
                        break
        except requests.Timeout:
            raise ProviderError("timeout", f"{self.name}: no answer from {where} within {self.timeout:g}s") from None
        except requests.exceptions.SSLError:
            raise ProviderError("connection", f"{self.name}: TLS with {where} failed (certificate not trusted? "
                                "check the CA file)") from None
        except requests.ConnectionError:
            raise ProviderError("connection", f"{self.name}: cannot connect to {where}") from None
        except requests.RequestException as exc:
            raise ProviderError("connection", f"{self.name}: {type(exc).__name__} talking to {where}") from None
        status = resp.status_code
        if status == 429:
            retry = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
            hint = f", retry after {retry:g}s" if retry is not None else ""
            raise HttpStatusError("rate_limited", f"{self.name}: HTTP 429 from {where}{hint}", status, retry)
        if status in (401, 403):
            raise HttpStatusError("auth", f"{self.name}: HTTP {status} from {where} (check the credentials)", status)
        if status in (400, 404):
            raise HttpStatusError(not_found, f"{self.name}: HTTP {status} from {where}{_detail(body)}", status)
        if status >= 500:
            raise HttpStatusError("http_5xx", f"{self.name}: HTTP {status} from {where}", status)
        if not 200 <= status < 300:
            raise HttpStatusError("http_4xx", f"{self.name}: HTTP {status} from {where}", status)
        if len(body) > MAX_BODY:
            raise ProviderError("malformed", f"{self.name}: answer from {where} is larger than {MAX_BODY} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
            raise ProviderError("malformed", f"{self.name}: answer from {where} is not JSON") from None


def _detail(body: bytes) -> str:
    """A short, printable excerpt of an error answer (APIs say "zone not found" there)."""
    text = re.sub(r"[^ -~]+", " ", body[:160].decode("utf-8", "replace")).strip()
    return f": {text}" if text else ""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from `Retry-After`: delta-seconds (ASCII digits; "²" is a digit to str.isdigit() and
    not to float()) or an HTTP date. Anything else is ignored: the feed's own backoff applies."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


_DELTA_SECONDS = re.compile(r"\d{1,10}", re.ASCII)
_TZ_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def parse_time(value: Any) -> float | None:
    """ISO 8601 as the grid APIs write it ("...Z", "+00:00", no seconds, fractions, or no zone = UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    m = re.fullmatch(r"(.*T\d{2}:\d{2}(?::\d{2})?)(\.\d+)?([+-]\d{2}:?\d{2})?", text, re.ASCII)
    if not m:
        return None
    base, frac, tz = m.group(1), m.group(2) or "", m.group(3) or "+00:00"
    if len(tz) == 5:
        tz = tz[:3] + ":" + tz[3:]
    frac = frac[:7].ljust(7, "0") if frac else ""
    try:
        ts = datetime.fromisoformat(base + frac + tz).timestamp()
    except (ValueError, OverflowError):
        return None
    return ts if 0.0 <= ts <= MAX_TIMESTAMP else None


MAX_TIMESTAMP = 4102444800.0  # 2100-01-01: a grid time past it (or before 1970) is not one
POINT_REASONS = ("malformed", "non_finite", "out_of_range", "missing_field")


def new_dropped() -> Counter[str]:
    """Dropped values by reason, every reason present from the start (rate() works, and the feed's
    reader never sees the dict change size while a refresh thread counts)."""
    return Counter(dict.fromkeys(POINT_REASONS, 0))


def intensity(raw: Any, *, scale: float = 1.0) -> float:
    """An intensity from an answer, through the one number rule (numbers.bounded): finite, 0..3000
    g/kWh. Raises NumberError (reason malformed, non_finite or out_of_range)."""
    value = numbers.bounded(raw) * scale
    return numbers.bounded(value, 0.0, MAX_PLAUSIBLE_INTENSITY)


def timestamp(raw: Any) -> float:
    """Unix seconds from an answer (a peer's JSON numbers), finite and within 1970..2100."""
    return numbers.bounded(raw, 0.0, MAX_TIMESTAMP)


def number(name: str, obj: Any, key: str, *, scale: float = 1.0) -> float:
    """A required intensity field: missing or null -> missing_field, not a number -> malformed,
    negative, NaN or absurd -> out_of_range. Never 0 for "no data"."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise ProviderError("missing_field", f"{name}: answer has no {key!r}")
    raw = obj[key]
    if raw is None:
        raise ProviderError("missing_field", f"{name}: {key!r} is null (no data for now)")
    if not isinstance(raw, (int, float)):  # a number written as a JSON string is not one
        raise ProviderError("malformed", f"{name}: {key!r} is not a number")
    try:
        return intensity(raw, scale=scale)
    except numbers.NumberError as exc:
        reason = "malformed" if exc.reason == "malformed" else "out_of_range"
        raise ProviderError(reason, f"{name}: {key} is not a plausible g/kWh value: {exc}") from None


def optional_number(obj: Any, key: str, dropped: Counter[str], *, scale: float = 1.0) -> float | None:
    """A forecast point's value: anything implausible is counted in `dropped` by reason and skipped."""
    raw = obj.get(key) if isinstance(obj, Mapping) else None
    if raw is None:
        dropped["missing_field"] += 1
        return None
    if not isinstance(raw, (int, float)):
        dropped["malformed"] += 1
        return None
    try:
        return intensity(raw, scale=scale)
    except numbers.NumberError as exc:
        dropped[exc.reason] += 1
        return None


def forecast_points(rows: Any, time_key: str, value_key: str, dropped: Counter[str], *,
                    scale: float = 1.0) -> tuple[ForecastPoint, ...]:
    """A forecast list's usable points, oldest first; one without a readable time or a plausible value is
    skipped and counted (a forecast is advice: a bad point never fails the reading)."""
    points = []
    for row in rows if isinstance(rows, list) else []:
        start = parse_time(row.get(time_key)) if isinstance(row, Mapping) else None
        if start is None:
            dropped["malformed"] += 1
            continue
        value = optional_number(row, value_key, dropped, scale=scale)
        if value is not None:
            points.append(ForecastPoint(start, value))
    return tuple(sorted(points, key=lambda p: p.start))


def items(name: str, obj: Any, key: str) -> list[Any]:
    """A required list field."""
    if not isinstance(obj, Mapping) or key not in obj:
        raise ProviderError("missing_field", f"{name}: answer has no {key!r}")
    value = obj[key]
    if not isinstance(value, list):
        raise ProviderError("malformed", f"{name}: {key!r} is not a list")
    return value


class Throttle:
    """At most one call every `every` seconds: providers ask for the forecast far less often than for the
    value now (it changes slowly, and it costs quota)."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._at: float | None = None

    def due(self, now: float) -> bool:
        """True (and the next call counted from `now`) when `every` seconds passed since the last one."""
        if self._at is not None and now - self._at < self.every:
            return False
        self._at = now
        return True
