"""The embedded tables and the static/constant providers: what a user with no API key gets."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
from footprint import config
from footprint.grid.feed import GridFeed
from footprint.grid.providers import static

DATA = Path(static.__file__).resolve().parent.parent / "data"


def feed(*flags: str) -> GridFeed:
    f = GridFeed(config.load(list(flags), env={}))
    f.refresh_due()
    return f


def test_tables_are_well_formed() -> None:
    with open(DATA / "countries.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 60
    zones = [r["zone"] for r in rows]
    assert len(zones) == len(set(zones))
    for r in rows:
        assert len(r["zone"]) == 2 and r["zone"].isupper()
        assert 0 < float(r["value"]) < 1500 and r["year"] in ("2022", "2023") and r["source"]
    with open(DATA / "cloud_regions.csv", encoding="utf-8") as fh:
        regions = list(csv.DictReader(fh))
    assert len({r["region"] for r in regions}) == len(regions)
    assert sum(1 for r in regions if r["cloud"] == "gcp" and r["value"]) >= 40
    readme = (DATA / "README.md").read_text()
    assert "CC BY 4.0" in readme and "transcribed" in readme


@pytest.mark.parametrize(
    ("flags", "zone", "value"),
    [
        (["--grid.zone=DE"], "DE", 381.0),
        (["--grid.zone=fr"], "FR", 56.0),
        (["--grid.region=europe-west4"], "NL", 208.81),  # Google's own figure for the region
        (["--grid.region=us-west-2"], "US-NW-BPAT", 79.23),  # AWS region -> zone -> Google's figure
        (["--grid.region=westeurope"], "NL", 268.0),  # Azure region -> zone -> country average
        (["--grid.zone=US-CAL-CISO"], "US-CAL-CISO", 169.28),
        (["--grid.zone=US-TEX-XYZ"], "US", 386.0),  # unknown sub-zone -> its country
        (["--grid.zone=DK-DK1"], "DK", 152.0),
        (["--grid.zone=DK1"], "DK", 152.0),
    ],
)
def test_static_resolves_zone_and_region(flags: list[str], zone: str, value: float) -> None:
    r = feed(*flags).accounting_intensity()
    assert (r.provider, r.signal, r.zone, r.value, r.estimated) == ("static", "average", zone, value, True)


def test_no_zone_is_world_average_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="footprint.grid"):
        f = GridFeed(config.load([], env={}))
    r = f.accounting_intensity()  # before any refresh too: never None
    assert (r.value, r.zone, r.provider) == (475.0, "world", "static")
    assert "world average 475 g/kWh (IEA 2019)" in caplog.text


def test_unknown_zone_for_static_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.zone: 'XX'"):
        GridFeed(config.load(["--grid.zone=XX"], env={}))


def test_unknown_zone_is_fine_when_static_is_only_the_fallback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="footprint.grid"):
        f = feed("--grid.provider=constant", "--grid.constant.value=200", "--grid.zone=CAISO_NORTH",
                 "--grid.fallback=static")
    assert f.accounting_intensity().value == 200.0
    assert "no figure for 'CAISO_NORTH'" in caplog.text


def test_constant_needs_its_value() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.constant\.value: required"):
        GridFeed(config.load(["--grid.provider=constant"], env={}))


def test_constant_is_used_and_is_the_primary() -> None:
    f = feed("--grid.provider=constant", "--grid.constant.value=123.5", "--grid.zone=SE")
    r = f.accounting_intensity()
    assert (r.value, r.provider, r.zone, r.signal) == (123.5, "constant", "SE", "average")
    assert not f.fallback_active()
    assert f.marginal() is None


def test_constant_follows_marginal_accounting() -> None:
    f = feed("--grid.provider=constant", "--grid.constant.value=700", "--grid.accounting-signal=marginal")
    assert f.accounting_intensity().signal == "average"  # the emissions counters: the static table
    marginal = f.marginal()
    assert marginal is not None and marginal.value == 700.0


def test_duplicate_provider_in_chain_is_rejected() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.fallback: provider 'static' appears twice"):
        GridFeed(config.load(["--grid.fallback=static"], env={}))


def test_user_table_extends_regions(tmp_path: Path) -> None:
    table = tmp_path / "regions.csv"
    table.write_text("region,zone,value,year,source\nonprem-fra-1,DE,,,\nlab-basement,,,,\n")
    with pytest.raises(config.ConfigError, match=r"^grid\.static\.file: .*:3: zone is empty"):
        GridFeed(config.load([f"--grid.static.file={table}", "--grid.region=onprem-fra-1"], env={}))
    table.write_text("region,zone,value,year,source\nonprem-fra-1,DE,,,\nlab,XX-LAB,42,2025,meter\n,DE,300,2025,PPA\n")
    f = feed(f"--grid.static.file={table}", "--grid.region=onprem-fra-1")
    assert (f.accounting_intensity().zone, f.accounting_intensity().value) == ("DE", 300.0)
    assert feed(f"--grid.static.file={table}", "--grid.region=LAB").accounting_intensity().value == 42.0
