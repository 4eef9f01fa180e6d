# The optional C twins of the ledger's hot code (_fastledger.c); absent where it could not be built.
from collections.abc import Mapping
from typing import Any

SLACK_RATIO: float
SLACK_SECONDS: float

def rule(prev_raw: float, new_raw: float, elapsed_seconds: float, max_watts: float, wrap_joules: float | None,
         restarted: bool, /) -> tuple[float | None, str]: ...
Op = tuple[str, tuple[str, ...], float | None, float]  # amount None: a removal, which it hands back
Addition = tuple[str, tuple[str, ...], float, float]

def apply_ops(totals: dict[str, dict[tuple[str, ...], float]], created: dict[str, dict[tuple[str, ...], float]],
              ops: list[Op] | list[Addition], /) -> int | None: ...
def steady_deltas(readings: list[Any], read_at: list[float], states: dict[Any, Any], suspects: dict[Any, Any],
                  state_type: type[tuple[Any, ...]], defaults: dict[str, float], fallback: float,
                  /) -> list[tuple[float, tuple[str, ...], float] | None]: ...
Judgement = tuple[list[tuple[Any, float]], dict[Any, tuple[str, ...]], dict[Any, float], float | None]

def judge_power(readings: list[Any], judged: list[tuple[float, tuple[str, ...], float]], seconds: float,
                /) -> Judgement | None: ...
def stage_energy(ops: list[Any], energy: list[tuple[Any, float]], figures: dict[Any, Any], lifetime: float,
                 g_per_j: float, m_per_j: float | None, seconds: float, now_wall: float,
                 names: tuple[str, str, str, str], /) -> float | None: ...
def charge_steady(readings: list[Any], read_at: list[float], seconds: float,
                  judging: tuple[Any, ...], charging: tuple[Any, ...], g_per_j: float, m_per_j: float | None,
                  server_grams: float | None, uncharged: bool, price: float | None, now_wall: float, /
                  ) -> tuple[Mapping[tuple[str, str, str], float], float | None, int] | None: ...
def charge_sample(totals: dict[str, Any], created: dict[str, Any], energy: list[tuple[Any, float]],
                  figures: dict[Any, Any], lifetime: float, g_per_j: float, m_per_j: float | None, seconds: float,
                  now_wall: float, names: tuple[str, str, str, str],
                  node: tuple[tuple[str, tuple[str, ...]], ...], server_grams: float | None, uncharged: bool,
                  pue: float, wue: float | None, grid_water: float | None, price: float | None,
                  /) -> int | None: ...
def stage_shares(ops: list[Any], shares: list[Any], scale: float, g_per_j: float, now_wall: float,
                 /) -> float | None: ...
def use_reading_type(cls: type[tuple[Any, ...]], positions: dict[str, int], /) -> None: ...
def render_lines(prefixes: dict[Any, str], series: Any, order: list[Any], go_float: Any, /) -> str: ...
