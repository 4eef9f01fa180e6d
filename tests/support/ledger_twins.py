"""The ledger's optional C twins (accounting/_fastledger.c) taken away, as where they are not built: for tests
that run a ledger, tracker, accountant, sampler or exposition path both ways."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def python_ledger() -> Iterator[None]:
    """Every module that holds `_fastledger` as it imported it without it, and the counter rule in Python."""
    from footprint import sampler
    from footprint.accounting import accountant, ledger
    from footprint.exposition import metrics

    modules: tuple[Any, ...] = (ledger, accountant, sampler, metrics)  # each holds it as it imported it
    saved = [module._fastledger for module in modules], ledger._rule
    for module in modules:
        module._fastledger = None
    ledger._rule = ledger._python_rule
    try:
        yield
    finally:
        for module, fast in zip(modules, saved[0], strict=True):
            module._fastledger = fast
        ledger._rule = saved[1]
