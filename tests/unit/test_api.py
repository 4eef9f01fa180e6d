"""/api/v1/summary and /api/v1/history of a fixed scenario (golden files), the server-rendered page, the
greenest-window rule, the top workloads and the run file reader.

The scenario uses the real parts: the RAPL meter on a sysfs tree, the sampler, accountant and ledger,
and the grid feed fetching from the Electricity Maps fake over HTTP; every clock is fixed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from footprint import config
from footprint.accounting.accountant import WORKLOAD_EMISSIONS, WORKLOAD_ENERGY, Accountant
from footprint.accounting.ledger import Ledger
from footprint.grid.feed import GridFeed
from footprint.meters.registry import rapl_meter
from footprint.sampler import Sampler
from footprint.tracking import runlog
from footprint.web import page
from footprint.web.api import FORECAST_POINTS, MAX_DEVICES, TOP_WORKLOADS, LiveView, forecast_ahead
from footprint.web.history import Mark, PowerHistory, Totals
from footprint.web.runs import MAX_RUNS, TAIL_BYTES, RecentRuns
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.fakes.sysfs import RaplTree
from tests.support.fixed_grid import FixedGrid

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOKEN = "em-token-api-golden"
T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def em() -> Iterator[ElectricityMapsFake]:
    wall = Clock(T0)
    with serving(ElectricityMapsFake(TOKEN, clock=wall)) as server:
        server.state.forecast = [(-7200.0, 150.0), (-1800.0, 400.0), (1800.0, 300.0), (5400.0, 210.5), (9000.0, 250.0)]
        yield server


def scenario(tmp_path: Path, em: ElectricityMapsFake) -> tuple[LiveView, Clock]:
    wall: Clock = em.clock  # type: ignore[assignment]
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    settings = config.load([
        f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path}", "--pue=1.2", "--embodied.cpu-kgco2e=30",
        "--embodied.server-kgco2e=1000", "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
        f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.fallback=static",
    ], env={})
    grid = GridFeed(settings, clock=wall)
    grid.refresh_due()
    ledger = Ledger()
    sampler = Sampler([rapl_meter(settings)], ledger, Accountant(settings), grid, 1.0, clock=wall, wall=wall)
    view = LiveView(sampler, ledger, PowerHistory(2.0, points=4), grid.api_payload, settings.pue, False,
                    started_at=T0, wall=wall)
    sampler.on_sample = view.sampled
    sampler.sample()
    for uj in (12_000_000, 18_000_000, 6_000_000, 30_000_000, 9_000_000, 15_000_000):
        wall.t += 1.0
        tree.advance("intel-rapl:0", uj)
        tree.advance("intel-rapl:0:1", uj // 4)
        sampler.sample()
    return view, wall


def check_golden(name: str, payload: object) -> None:
    text = json.dumps(payload, indent=1, sort_keys=True) + "\n"
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; rerun with UPDATE_GOLDEN=1 if intended (and docs/api.md)"


def test_golden_summary_and_history(tmp_path: Path, em: ElectricityMapsFake) -> None:
    view, _ = scenario(tmp_path, em)
    summary = view.summary()
    check_golden("api_summary.json", summary)
    check_golden("api_history.json", view.history_payload())
    # The figures a bug would break, by hand: 15 J + 3.75 J over the last second, 1.2 x 322 g/kWh.
    assert summary["power"]["node_watts"] == pytest.approx(18.75)
    joules = (12 + 18 + 6 + 30 + 9 + 15) * 1.25
    assert summary["energy"]["since_start"]["energy_joules"] == pytest.approx(joules)
    assert summary["energy"]["lifetime"]["emissions_grams"] == pytest.approx(joules * 1.2 * 322 / 3.6e6)
    assert summary["grid"]["forecast"]["greenest"] == {"start": T0 + 5400, "end": T0 + 9000, "value": 210.5}
    assert [p["value"] for p in summary["grid"]["forecast"]["points"]] == [400.0, 300.0, 210.5, 250.0]  # 1st: over


def not_json(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def test_the_json_is_strict_and_small(tmp_path: Path, em: ElectricityMapsFake) -> None:
    view, _ = scenario(tmp_path, em)
    routes = page.pages(view)
    for path in ("/api/v1/summary", "/api/v1/history"):
        body, ctype = routes[path]()
        assert ctype == "application/json"
        json.loads(body, parse_constant=not_json)
        assert len(body) < 8192


def numbers(html: str) -> dict[str, tuple[str, str]]:
    """id -> (exact value, shown text) of every <data> element."""
    return {m[1]: (m[2], unescape(m[4])) for m in
            re.finditer(r'<data id="([^"]+)" value="([^"]*)" data-unit="([^"]+)">([^<]*)</data>', html)}


def test_the_page_holds_every_number_without_javascript(tmp_path: Path, em: ElectricityMapsFake) -> None:
    view, _ = scenario(tmp_path, em)
    summary = view.summary()
    html = page.render(summary, view.history_payload()).decode()
    shown = numbers(html)
    assert shown["node-watts"] == (repr(18.75), "18.8 W")
    assert shown["grid-value"] == ("322.0", "322.0 gCO2e/kWh")
    assert shown["green-value"] == ("210.5", "210.5 gCO2e/kWh")
    assert shown["pue"] == ("1.2", "1.20")
    joules = summary["energy"]["since_start"]["energy_joules"]
    assert shown["since_start-energy"] == (repr(joules), f"{joules:.1f} J")
    assert shown["embodied-share"][1].endswith(" %")
    assert "measured (hardware energy counter)" in html and "electricitymaps" in html
    assert re.search(r'id="chart-node"[^>]*data-points="4"', html)  # 4 steps of 2 s
    assert html.count("<polyline") == 3  # node, package, dram
    assert 'data-points="4"' in html.split('id="chart-forecast"')[1][:200]


def test_outside_text_is_escaped(tmp_path: Path, em: ElectricityMapsFake) -> None:
    view, _ = scenario(tmp_path, em)
    summary = view.summary()
    summary["workloads"] = {"enabled": True, "count": 1, "top": [
        {"namespace": "ns", "pod": "<script>alert(1)</script>", "container": "c&d", "workload": "w",
         "energy_joules": 1.0, "emissions_grams": 0.1}]}
    summary["grid"]["chain"][0]["last_error"] = '"><img src=x>'
    html = page.render(summary, view.history_payload()).decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "c&amp;d" in html


def test_top_workloads_sum_components_and_are_capped() -> None:
    ledger = Ledger()
    for i in range(TOP_WORKLOADS + 5):
        labels = ("ns", f"pod-{i}", "main", f"job-{i}")
        ledger.add(WORKLOAD_ENERGY, (*labels, "gpu"), 100.0 * i, T0)
        ledger.add(WORKLOAD_ENERGY, (*labels, "cpu"), 1.0, T0)
        ledger.add(WORKLOAD_EMISSIONS, labels, 0.01 * i, T0)
    sampler = Sampler([], ledger, Accountant(config.load([], env={})), FixedGrid(100.0), 1.0)
    view = LiveView(sampler, ledger, PowerHistory(1.0), lambda: {}, 1.0, True)
    top = view.summary()["workloads"]
    assert top["enabled"] and top["count"] == TOP_WORKLOADS + 5
    assert [w["pod"] for w in top["top"]] == [f"pod-{i}" for i in range(TOP_WORKLOADS + 4, 4, -1)]
    assert top["top"][0]["energy_joules"] == 100.0 * (TOP_WORKLOADS + 4) + 1.0
    assert top["top"][0]["emissions_grams"] == pytest.approx(0.01 * (TOP_WORKLOADS + 4))


points = st.lists(st.fixed_dictionaries({
    "start": st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.text(max_size=3)),
    "value": st.one_of(st.floats(0, 3000), st.just(float("inf")), st.none()),
}), max_size=120)


@given(points)
def test_greenest_window_is_the_lowest_point_not_over_yet(raw: list[dict[str, object]]) -> None:
    now = 0.0
    ahead, best = forecast_ahead(raw, now)
    assert len(ahead) <= FORECAST_POINTS
    assert [p["start"] for p in ahead] == sorted(p["start"] for p in ahead)
    if best is None:
        assert ahead == []
        return
    assert best["value"] == min(p["value"] for p in ahead)
    assert best["end"] > now and {"start": best["start"], "value": best["value"]} in ahead


def run_row(i: int) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in runlog.COLUMNS}
    row.update(run_id=f"run-{i}", started_at="2026-12-01T21:30:00.000Z", duration_seconds=60.0 + i,
               energy_joules=1000.0 * i, emissions_grams=0.5 * i, tags={"model": "bert"}, devices={}, exit_code=0)
    return row


@pytest.mark.parametrize("name", ["runs.csv", "runs.jsonl"])
def test_runs_are_the_last_ones_of_the_file_newest_first(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    runs = RecentRuns(str(path))
    assert runs.payload()["error"] and runs.payload()["runs"] == []  # not there yet: said, not fatal
    for i in range(MAX_RUNS + 3):
        runlog.write_row(path, run_row(i))
    got = runs.payload()
    assert [r["run_id"] for r in got["runs"]] == [f"run-{i}" for i in range(MAX_RUNS + 2, 2, -1)]
    assert got["runs"][0]["energy_joules"] == 1000.0 * (MAX_RUNS + 2) and got["runs"][0]["exit_code"] == 0
    assert got["error"] is None and got["skipped"] == 0
    with open(path, "a") as fh:
        fh.write("garbage,\n" if name.endswith(".csv") else '{"run_id": "x", "energy_joules": "NaN"}\n[1]\n')
    assert runs.payload()["skipped"] >= 1 and runs.payload()["runs"][0]["run_id"] == f"run-{MAX_RUNS + 2}"


def test_a_huge_run_file_is_read_from_its_tail_only(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    with open(path, "w") as fh:
        fh.write("x" * (4 * TAIL_BYTES) + "\n")  # one monstrous line first
    runlog.write_row(path, run_row(7))
    got = RecentRuns(str(path)).payload()
    assert [r["run_id"] for r in got["runs"]] == ["run-7"]


@given(st.lists(st.text(max_size=60), max_size=30))
def test_any_run_file_gives_bounded_clean_rows(tmp_path_factory: pytest.TempPathFactory, lines: list[str]) -> None:
    path = tmp_path_factory.mktemp("runs") / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="replace")
    got = RecentRuns(str(path)).payload()
    assert len(got["runs"]) <= MAX_RUNS
    for r in got["runs"]:
        assert isinstance(r["run_id"], str) and r["run_id"]
        assert all(r[k] is None or 0 <= r[k] <= 1e15 for k in ("energy_joules", "emissions_grams"))


def test_payloads_stay_within_their_documented_bounds() -> None:
    """The worst case docs/api.md promises: MAX_DEVICES devices with a full history of 5-digit watts,
    TOP_WORKLOADS workloads with long names, a 48-point forecast, MAX_RUNS runs of long ids."""
    ledger = Ledger()
    for i in range(500):
        ledger.add(WORKLOAD_ENERGY, ("n" * 63, f"{'p' * 250}{i}", "c" * 63, "w" * 63, "gpu"), 1e9 + i, T0)
    history = PowerHistory(1.0)
    sampler = Sampler([], ledger, Accountant(config.load([], env={})), FixedGrid(100.0), 1.0)
    forecast = [{"start": T0 + 1800.0 * i, "value": 1234.5678 + i} for i in range(200)]
    grid = {"accounting": {"value": 300.0, "provider": "electricitymaps", "signal": "average", "zone": "DE",
                           "forecast": forecast}, "chain": [{"provider": "x" * 40, "signal": "average"}] * 8}
    view = LiveView(sampler, ledger, history, lambda: grid, 1.0, True, wall=lambda: T0)
    for t in range(300):  # 99,999.999 W from each device, and from the node
        devices: dict[tuple[str, ...], float] = {("gpu", f"GPU-{'f' * 36}-{i}", "nvml_power"): 99999.999 * t
                                                 for i in range(MAX_DEVICES + 10)}
        history.record(Mark(Totals(T0 + t, 99999.999 * t, 1e9), devices, set(devices)))
    summary, hist = page.pages(view)["/api/v1/summary"]()[0], page.pages(view)["/api/v1/history"]()[0]
    assert len(json.loads(hist)["devices"]) == MAX_DEVICES
    assert len(json.loads(summary)["workloads"]["top"]) == TOP_WORKLOADS
    assert len(json.loads(summary)["grid"]["forecast"]["points"]) == FORECAST_POINTS
    assert len(hist) < 200_000 and len(summary) < 32_000, (len(hist), len(summary))


# --- the live page records only the samples that may end a step ------------------------------------


def twin_views(tmp_path: Path, step: float, start: float) -> tuple[Sampler, LiveView, LiveView, Clock, RaplTree]:
    """One sampler (the RAPL meter on a sysfs tree, 1 s interval) feeding two live views: `lazy`, as the
    exporter wires it, and `every`, which records every sample (what the page did before)."""
    wall = Clock(start)
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    settings = config.load([f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path}"], env={})
    ledger = Ledger()
    sampler = Sampler([rapl_meter(settings)], ledger, Accountant(settings), FixedGrid(300.0), 1.0, clock=wall,
                      wall=wall)
    lazy = LiveView(sampler, ledger, PowerHistory(step, points=8), lambda: {}, 1.0, False, started_at=start, wall=wall)
    every = LiveView(sampler, ledger, PowerHistory(step, points=8), lambda: {}, 1.0, False, started_at=start,
                     wall=wall)

    def sampled() -> None:
        lazy.sampled()
        every._catch_up()

    sampler.on_sample = sampled
    return sampler, lazy, every, wall, tree


@settings(max_examples=40, deadline=None)
@given(step=st.sampled_from([1.0, 2.0, 3.0, 7.0]), offset=st.floats(-8.0, -0.5),
       samples=st.lists(st.tuples(st.floats(0.6, 1.45), st.integers(1_000_000, 30_000_000),
                                  st.integers(0, 9).map(lambda n: n == 0)),  # asked: one sample in ten
                        min_size=15, max_size=30))
def test_a_page_shows_what_recording_every_sample_shows(tmp_path_factory: pytest.TempPathFactory, step: float,
                                                        offset: float,
                                                        samples: list[tuple[float, int, bool]]) -> None:
    """While samples come within 1.45 intervals of each other (jitter, not a stall), the page (summary and
    history, asked at any sample) is what it was when every sample was recorded. Every run crosses UTC
    midnight, where "today" starts: 7 s steps do not divide a day, so there the day ends inside a step."""
    sampler, lazy, every, wall, tree = twin_views(tmp_path_factory.mktemp("twin"), step, 1_750_032_000.0 + offset)
    sampler.sample()
    for gap, microjoules, ask in samples:
        wall.t += gap
        tree.advance("intel-rapl:0", microjoules)
        tree.advance("intel-rapl:0:1", microjoules // 4)
        sampler.sample()
        if ask:
            assert lazy.summary() == every.summary()
    assert lazy.history_payload() == every.history_payload()
    assert lazy.summary() == every.summary()


def test_most_samples_are_not_recorded_and_a_stall_leaves_a_gap_not_a_wrong_point(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    sampler, lazy, _, wall, tree = twin_views(tmp_path, 15.0, 1_750_032_000.0)  # midnight, a step start
    marks: list[float] = []
    record = lazy.history.record

    def counted(mark: Mark) -> tuple[Totals | None, Totals | None]:
        marks.append(mark.totals.at - 1_750_032_000.0)
        return record(mark)

    monkeypatch.setattr(lazy.history, "record", counted)
    sampler.sample()
    for _ in range(42):  # 43 samples, one a second: two whole steps of 15 s, and most of a third
        wall.t += 1.0
        tree.advance("intel-rapl:0", 10_000_000)  # 10 W
        sampler.sample()
    assert marks == [0.0, 14.0, 29.0]  # the first sample, then the last of each step
    wall.t += 5.0  # a stall: 42 was the last sample of its step, too early to be recorded
    tree.advance("intel-rapl:0", 30_000_000)
    sampler.sample()
    points = lazy.history_payload()["node"]
    assert marks[-1] == 47.0  # asked: the page catches up with the latest sample
    # 0 -> 14 and 14 -> 29: 10 W. The step the stall ended is a gap, as a step after a pause is, and the
    # step in progress starts at its own first sample: the 18 s from 29 to 47 are shown nowhere, never
    # drawn over the wrong time.
    assert points == [10.0, 10.0, None, None]
