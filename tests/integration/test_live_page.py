"""The live page at `/`, served by the real exporter process, in a real headless Chromium (Selenium and
Debian's chromium) and without JavaScript (urllib), behind TLS and basic auth.

Hardware: two fake GPUs through real pynvml (one with an energy counter, one with only instant power, so
both provenances show) whose clock follows CLOCK_MONOTONIC, and a RAPL sysfs tree. Grid: the Electricity
Maps fake over HTTP, with a forecast, then stopped, so the chain must fall back to the static table.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from footprint.tracking import runlog
from footprint.web import page
from selenium.webdriver.remote.webdriver import WebDriver

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.fakes.nvml import FakeGpu, Scenario, fake_env
from tests.fakes.sysfs import RaplTree
from tests.integration.test_tls_auth import HASH, auth, client_context, exporter
from tests.support.browser import chromium, screenshot
from tests.support.exporter import ExporterProcess, start_exporter
from tests.support.promtext import Series, parse, pick, value
from tests.support.tls import CA

TOKEN = "em-token-live-page"
PAGE_NUMBERS = """
const out = {sample: document.body.dataset.sample || "", live: document.body.dataset.live || "", data: {}, text: {}};
for (const d of document.querySelectorAll("data[id]")) out.data[d.id] = [d.value, d.textContent, d.dataset.unit];
for (const id of ["grid-provider", "grid-fallback", "grid-signal", "grid-zone", "status"])
  out.text[id] = document.getElementById(id).textContent;
out.devices = Array.from(document.querySelectorAll("#devices tr[data-device]"),
  tr => [tr.dataset.device, tr.querySelector("data").id, tr.querySelector(".prov").textContent]);
out.chain = Array.from(document.querySelectorAll("#grid-chain li"), li => li.textContent);
out.runs = document.getElementById("runs").hidden ? null :
  Array.from(document.querySelectorAll("#run-rows th"), th => th.firstChild.textContent);
out.charts = Array.from(document.querySelectorAll("svg.chart"), s => [s.id, Number(s.dataset.points),
  Array.from(s.querySelectorAll("polyline"), p => p.getAttribute("points").trim().split(/\\s+/).length)
    .concat(Array.from(s.querySelectorAll("circle"), () => 1)),
  s.querySelectorAll("rect").length, s.getAttribute("role"), s.getAttribute("aria-label") || ""]);
return out;
"""
SCALE = {  # the units page.fmt writes, by the unit of the exact value: how many of it one shown unit is
    "W": {"W": 1.0}, "J": {"J": 1.0, "Wh": 3600.0, "kWh": 3.6e6}, "g": {"mgCO2e": 0.001, "gCO2e": 1.0, "kgCO2e": 1e3},
    "gkwh": {"gCO2e/kWh": 1.0}, "pue": {"": 1.0}, "ratio": {"%": 0.01}, "s": {"s": 1.0, "min": 60.0, "h": 3600.0},
}


@pytest.fixture
def em() -> Iterator[ElectricityMapsFake]:
    with serving(ElectricityMapsFake(TOKEN)) as server:
        server.state.forecast = [(-1800.0, 410.0), (1800.0, 300.0), (5400.0, 210.5), (9000.0, 250.0)]
        yield server


@pytest.fixture
def live(tmp_path: Path, em: ElectricityMapsFake) -> Iterator[ExporterProcess]:
    scenario = tmp_path / "scenario"
    Scenario(gpus=[FakeGpu(power=[(0.0, 240.0)]), FakeGpu(power=[(0.0, 95.0)], energy_counter=False)],
             time=None, epoch=time.monotonic()).write(scenario)
    RaplTree(tmp_path / "sys", packages=1, dram=True)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    runs = tmp_path / "runs.csv"  # what `measure --output=runs.csv` writes
    for i, name in enumerate(("bert-lr3e-4", "bert-lr1e-4")):
        row: dict[str, object] = dict.fromkeys(runlog.COLUMNS)
        row.update(run_id=name, duration_seconds=60.0 * (i + 1), energy_joules=36_000.0 * (i + 1),
                   emissions_grams=4.2 * (i + 1), tags={}, devices={})
        runlog.write_row(runs, row)
    args = [f"--web.runs-file={runs}", "--sample.interval=500ms", "--web.history-step=1s", "--no-meter.estimate",
            "--pue=1.3", f"--path.sysfs={tmp_path}/sys", "--grid.provider=electricitymaps",
            f"--grid.electricitymaps.url={em.url}/v3",
            f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.fallback=static",
            "--grid.refresh-interval=1s", "--grid.max-age=4s", "--grid.timeout=500ms"]
    with start_exporter(args, env=fake_env(scenario)) as exp:
        yield exp


def wait(driver: WebDriver, what: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    """Read the page until check(numbers) holds; fail with what the page showed."""
    deadline = time.monotonic() + timeout
    while True:
        shown: dict[str, Any] = driver.execute_script(PAGE_NUMBERS)
        if check(shown):
            return shown
        assert time.monotonic() < deadline, f"page never showed {what}: {shown}"
        time.sleep(0.05)


def same_sample(driver: WebDriver, exp: ExporterProcess) -> tuple[dict[str, Any], Series]:
    """The page's numbers and a scrape of the same sample: taken right after the page shows a new sample
    (it refreshes every 0.1 s, samples come every 0.5 s), retried if a sample slipped in between."""
    last = ""
    for _ in range(20):
        shown = wait(driver, "a new sample", lambda s, seen=last: s["sample"] and s["sample"] != seen)
        last = shown["sample"]
        series = parse(exp.scrape())
        if value(series, "footprint_sample_duration_seconds_count") == int(shown["sample"]):
            return shown, series
    raise AssertionError("no scrape ever matched the page's sample")


def exact(shown: dict[str, Any], ident: str) -> float:
    return float(shown["data"][ident][0])


def assert_text_matches(ident: str, raw: str, text: str, unit: str) -> None:
    """The shown text is the exact value rounded to the digits shown, in the unit shown."""
    m = re.fullmatch(r"(-?[0-9.]+) ?(.*)", text.strip())
    assert m, f"{ident}: {text!r} is not a number with a unit"
    number, shown_unit = m[1], m[2]
    assert shown_unit in SCALE[unit], f"{ident}: unit {shown_unit!r} in {text!r}"
    decimals = len(number.split(".")[1]) if "." in number else 0
    scale = SCALE[unit][shown_unit]
    assert abs(float(number) * scale - float(raw)) <= (0.5 * 10**-decimals + 1e-9) * scale, (ident, raw, text)


def test_live_page_in_chromium(live: ExporterProcess, em: ElectricityMapsFake) -> None:
    with chromium() as driver:
        driver.get(live.url + "/?refresh=0.1")
        wait(driver, "live data and charts with points", lambda s: s["live"] == "1" and all(
            c[1] >= 3 for c in s["charts"] if c[0].startswith("chart-dev") or c[0] == "chart-node"))

        # The numbers on the page are /metrics of the same sample, exactly, and their text says so.
        shown, s = same_sample(driver, live)
        assert exact(shown, "node-watts") == value(s, "footprint_node_power_watts") > 0
        rows = {device: (ident, prov) for device, ident, prov in shown["devices"]}
        assert set(rows) == {"gpu/0/nvml", "gpu/1/nvml_power", "cpu/package-0/rapl", "dram/dram-0/rapl"}
        for device, (ident, _) in rows.items():
            component, name, source = device.split("/")
            watts = value(s, "footprint_power_watts", component=component, device=name, source=source)
            assert exact(shown, ident) == watts, device
        assert rows["gpu/0/nvml"][1].startswith("measured") and rows["gpu/1/nvml_power"][1].startswith("integrated")
        assert exact(shown, "lifetime-energy") == value(s, "footprint_node_energy_joules_total") > 0
        assert exact(shown, "lifetime-grams") == value(s, "footprint_node_emissions_grams_total") > 0
        embodied = sum(pick(s, "footprint_embodied_emissions_grams_total").values())
        assert exact(shown, "embodied-grams") == pytest.approx(embodied, rel=1e-12)
        acc = "footprint_grid_accounting_intensity_grams_per_kilowatt_hour"
        assert exact(shown, "grid-value") == value(s, acc, provider="electricitymaps") == 322
        assert exact(shown, "pue") == value(s, "footprint_pue_ratio") == 1.3
        greenest = value(s, "footprint_grid_forecast_min_grams_per_kilowatt_hour", provider="electricitymaps")
        assert exact(shown, "green-value") == greenest == 210.5
        for ident, (raw, text, unit) in shown["data"].items():
            if raw:
                assert_text_matches(ident, raw, text, unit)
        assert shown["text"]["grid-provider"] == "electricitymaps"
        assert shown["text"]["grid-fallback"] == "not active"
        assert shown["runs"] == ["bert-lr1e-4", "bert-lr3e-4"]  # the run file's rows, newest first
        assert shown["data"]["run-0-energy"][1] == "20.00 Wh"

        # Charts hold points; every chart and table is labelled for screen readers.
        charts = {c[0]: c for c in shown["charts"]}
        assert set(charts) >= {"chart-node", "chart-dev-0", "chart-dev-1", "chart-dev-2", "chart-dev-3",
                               "chart-forecast"}
        for ident, (_, points, drawn, bars, role, label) in charts.items():
            assert role == "img" and label, ident
            if ident == "chart-forecast":
                assert points == bars == 4  # the hour we are in and three ahead
            else:
                assert sum(drawn) == points >= 3, ident  # every point drawn: on a line, or a dot
        a11y = driver.execute_script("""return {lang: document.documentElement.lang,
            live: document.getElementById("status").getAttribute("aria-live"),
            uncaptioned: Array.from(document.querySelectorAll("table")).filter(t => !t.caption).length,
            overflow: document.documentElement.scrollWidth - window.innerWidth};""")
        assert a11y == {"lang": "en", "live": "polite", "uncaptioned": 0, "overflow": 0}  # fits a phone
        assert_contrast(driver)

        # page.js formats exactly as page.py does (the JavaScript-off page and the live one agree).
        cases = [(v, u) for u in ("W", "J", "g", "gkwh", "ratio", "pue", "s")
                 for v in (0.0, 0.000123456, 0.012345678, 7.3141, 59.94, 123.456789, 3599.97, 8765.4321, 4.2e6, 9.87e7)]
        js = driver.execute_script("return arguments[0].map(c => window.footprintFormat(c[0], c[1]));", cases)
        assert js == [page.fmt(v, u) for v, u in cases]
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        print(f"screenshot: {screenshot(driver, 'live-page-phone')}")

        # The provider dies: the page says so and names the static table in use, as /metrics does.
        em.stop()
        after = wait(driver, "the fallback", lambda s: s["text"]["grid-provider"] == "static"
                     and s["text"]["grid-fallback"].startswith("active"))
        assert any(li.startswith("electricitymaps (average): down") for li in after["chain"]), after["chain"]
        s = live.wait_until(static_in_use)
        assert value(s, "footprint_grid_fallback_active") == 1
        assert exact(after, "grid-value") == value(s, acc, provider="static") == 381  # DE in the static table
        screenshot(driver, "live-page-phone-fallback")

    with chromium(width=1280, height=900, dark=True) as driver:
        driver.get(live.url + "/")
        wait(driver, "live data", lambda s: s["live"] == "1")
        assert_contrast(driver, dark=True)
        screenshot(driver, "live-page-desktop-dark")


def static_in_use(text: str) -> Series | None:
    series = parse(text)
    return series if pick(series, "footprint_grid_accounting_intensity_grams_per_kilowatt_hour", provider="static") \
        else None


def luminance(css: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css)[:3])
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def assert_contrast(driver: WebDriver, dark: bool = False) -> None:
    """WCAG AA (4.5:1) for body text and the muted text (captions, provenance) on the cards."""
    colors = driver.execute_script("""const c = e => getComputedStyle(document.querySelector(e));
        return {bg: c("section").backgroundColor, page: c("body").backgroundColor, text: c("h2").color,
                muted: c(".prov").color, link: c("nav a").color};""")
    assert (luminance(colors["page"]) < 0.1) == dark, colors  # the theme followed prefers-color-scheme
    for fg, bg in (("text", "bg"), ("muted", "bg"), ("link", "page")):
        hi, lo = sorted((luminance(colors[fg]), luminance(colors[bg])), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (fg, bg, colors)


PATHS = ("/", "/api/v1/summary", "/api/v1/history", "/static/page.js", "/static/page.css")


def test_page_without_javascript_behind_tls_and_basic_auth(tmp_path: Path) -> None:
    ca = CA(tmp_path, "footprint-test")
    server = ca.issue("server", ["127.0.0.1", "localhost"])
    config = f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n" \
             f"basic_auth_users:\n  prometheus: {HASH}\n"
    RaplTree(tmp_path / "sys", packages=1, dram=False)
    ctx = client_context(ca)
    with exporter(tmp_path / "sys", config, ctx, auth()) as exp:
        base = f"https://127.0.0.1:{exp.port}"

        def get(path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
            req = urllib.request.Request(base + path, headers=headers)
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
                    return resp.status, resp.headers["Content-Type"], resp.read()
            except urllib.error.HTTPError as err:
                return err.code, err.headers["Content-Type"], err.read()

        for path in PATHS:
            assert get(path, {})[0] == 401, path
        for path in PATHS[:2]:  # a wrong password costs a bcrypt check (5 a client before 429)
            assert get(path, auth(password="wrong"))[0] == 401, path
        deadline = time.monotonic() + 15
        while True:  # the second sample is the first with power (the first one is a baseline)
            status, ctype, body = get("/", auth())
            html = body.decode()
            if 'id="node-watts" value=""' not in html:
                break
            assert time.monotonic() < deadline, html
            time.sleep(0.1)
        assert status == 200 and ctype == "text/html; charset=utf-8"
        text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())  # what a browser without JS shows
        # RAPL measures the package; the helper's exporter estimates DRAM, so the node total says estimated.
        assert re.search(r"Node: [0-9]+\.[0-9] W estimated \(model, not a meter\)", text), text
        assert re.search(r"cpu package-0 .{0,40} [0-9]+\.[0-9] W rapl: measured \(hardware energy counter\)", text)
        assert re.search(r"300\.0 gCO2e/kWh", text)  # the constant provider of the helper
        assert re.search(r"All time from \d{4}-\d\d-\d\d \d\d:\d\d UTC [0-9.]+ J [0-9.]+ [mk]?gCO2e", text), text
        assert "JavaScript is off" in html and '<meta http-equiv="refresh" content="30">' in html
        assert "<script>" not in html and "http://" not in html.replace(base, "")  # nothing inline, nothing outside
        for path, kind in (("/api/v1/summary", "application/json"), ("/api/v1/history", "application/json"),
                           ("/static/page.js", "text/javascript; charset=utf-8"),
                           ("/static/page.css", "text/css; charset=utf-8")):
            status, ctype, _ = get(path, auth())
            assert (status, ctype) == (200, kind), path
