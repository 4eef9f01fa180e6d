"""One rule for every number that comes from outside: settings, grid APIs, a peer exporter.

A value is accepted only if it is a real number written in ASCII (Python's own parsers also take
"nan", "inf", "1_000", Arabic-Indic digits, and JSON integers of any length, whose float() overflows),
finite, and inside the caller's range. Anything else raises `NumberError` with a fixed `reason`
(malformed, non_finite, out_of_range) that callers count or turn into a one-line config error.
"""

from __future__ import annotations

import math
import re

REASONS = ("malformed", "non_finite", "out_of_range")
MAX_TEXT = 64  # characters of a number written as text
MAX_INT_BITS = 128  # a JSON integer beyond this is no measurement (float() of 400 digits overflows)
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)


class NumberError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def bounded(raw: object, minimum: float | None = None, maximum: float | None = None, *,
            integer: bool = False) -> float:
    """`raw` (a JSON/YAML number or its text) as a finite float within [minimum, maximum]."""
    value: float
    if isinstance(raw, bool):
        raise NumberError("malformed", f"expected a number, got {raw!r}")
    if isinstance(raw, int):
        if raw.bit_length() > MAX_INT_BITS:
            raise NumberError("malformed", f"expected a number, got an integer of {raw.bit_length()} bits")
        value = float(raw)
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_TEXT or not _DECIMAL.fullmatch(text):
            shown = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."
            if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise NumberError("non_finite", f"expected a finite number, got {shown!r}")
            raise NumberError("malformed", f"expected a number, got {shown!r}")
        value = float(text)
    else:
        raise NumberError("malformed", f"expected a number, got {type(raw).__name__}")
    if not math.isfinite(value):
        raise NumberError("non_finite", f"expected a finite number, got {raw!r}")
    if integer and not value.is_integer():
        raise NumberError("malformed", f"expected a whole number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise NumberError("out_of_range", f"must be >= {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise NumberError("out_of_range", f"must be <= {maximum:g}, got {value:g}")
    return value
