"""Settings: sources in order, and every kind of bad input exits 2 with one line naming the key."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from footprint import config, numbers
from footprint.config import ConfigError
from hypothesis import given
from hypothesis import strategies as st

from tests.support.exporter import REPO


def test_defaults_file_env_flags_in_order(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("grid:\n  zone: FR\n  refresh-interval: 10m\npue: 1.2\nsample.interval: 5s\n")
    s = config.load(["--config", str(f), "--pue=1.4"], env={"FOOTPRINT_GRID_ZONE": "DE"})
    assert s.grid_zone == "DE" and s.origin("grid.zone") == "env"
    assert s.pue == 1.4 and s.origin("pue") == "flag"
    assert s.sample_interval == 5.0 and s.origin("sample.interval") == "file"
    assert s.grid_refresh_interval == 600.0
    assert s.web_listen_address == ":10180" and s.origin("web.listen-address") == "default"


def test_booleans_and_lists() -> None:
    s = config.load(["--no-meter.rapl", "--kubernetes.enabled", "--grid.fallback=static, constant"], env={})
    assert s.meter_rapl is False and s.kubernetes_enabled is True
    assert s.grid_fallback == ("static", "constant")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("4y", 4 * 365.25 * 86400), ("3", 3.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert config.parse_duration(text) == pytest.approx(seconds)


BAD = [
    (["--grid.zon=DE"], {}, "grid.zon", "did you mean grid.zone"),
    (["--pue=abc"], {}, "pue", "number"),
    (["--sample.interval=-1s"], {}, "sample.interval", "duration"),
    (["--sample.interval=0s"], {}, "sample.interval", ">="),
    (["--web.listen-address=nonsense"], {}, "web.listen-address", "listen address"),
    (["--web.listen-address=:99999"], {}, "web.listen-address", "listen address"),
    (["--log.format=xml"], {}, "log.format", "logfmt, json"),
    (["--config=/nonexistent/footprint.yaml"], {}, "config", "not found"),
    (["--pue=0.5"], {}, "pue", ">= 1"),
    ([], {"FOOTPRINT_GRID_ZOEN": "DE"}, "FOOTPRINT_GRID_ZOEN", "unknown"),
    (["--meter.rapl=maybe"], {}, "meter.rapl", "true or false"),
    (["--grid.fallback=nowhere"], {}, "grid.fallback", "unknown provider"),
]


@pytest.mark.parametrize(("argv", "env", "key", "words"), BAD)
def test_bad_settings_name_the_key(argv: list[str], env: dict[str, str], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(argv, env=env)
    message = str(err.value)
    assert message.startswith(key), message
    assert words in message
    assert "\n" not in message


def test_bad_file_key_and_type(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("grid:\n  zone: DE\n  bogus: 1\n")
    with pytest.raises(ConfigError, match=r"^grid\.bogus: unknown key"):
        config.load(["--config", str(f)], env={})
    f.write_text("pue: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"^pue: "):
        config.load(["--config", str(f)], env={})
    f.write_text("pue: 1.2\n  bad indent: [\n")
    with pytest.raises(ConfigError, match=r"^config: .* not valid YAML"):
        config.load(["--config", str(f)], env={})


@pytest.mark.parametrize(("argv", "key"), [(["--grid.zon=DE"], "grid.zon"), (["--log.format=xml"], "log.format"),
                                           (["--config=/nope.yaml"], "config")])
def test_cli_exits_2_with_one_line(argv: list[str], key: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "footprint", *argv], capture_output=True, text=True, timeout=30,
        env={"PYTHONPATH": str(REPO / "exporter"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert key in lines[0] and "Traceback" not in proc.stderr


def test_every_option_has_an_env_name_and_help() -> None:
    opts = config.options()
    assert "web.listen-address" in opts and "grid.watttime.password-file" in opts
    for key, (_, o) in opts.items():
        assert o.help, key


# --- hostile and careless input (issue 16) --------------------------------------------------------

NUMERIC = [k for k, (_, o) in config.options().items() if o.kind in ("int", "float", "duration")]
DURATIONS = [k for k, (_, o) in config.options().items() if o.kind == "duration"]


def test_every_numeric_setting_has_a_range() -> None:
    """The number rule needs both bounds: a setting without a maximum takes 1e308."""
    for key in NUMERIC:
        o = config.options()[key][1]
        assert o.minimum is not None and o.maximum is not None, key


@pytest.mark.parametrize("key", DURATIONS)
@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "-1s", "-5", "1e3", "٣s", "9" * 400, "", "1s "
                                  "garbage"])
def test_every_duration_refuses_nan_inf_and_negatives(key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load([f"--{key}={text}"], env={})
    assert str(err.value).startswith(f"{key}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("key", [k for k in NUMERIC if config.options()[k][1].kind != "duration"])
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e999", "9" * 400, "١", "0x10", "1_0"])
def test_every_number_refuses_non_finite_and_odd_spellings(key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load([f"--{key}={text}"], env={})
    assert str(err.value).startswith(f"{key}: ")


def test_the_cli_exits_2_on_a_nan_interval() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "footprint", "--sample.interval=nan"], capture_output=True, text=True, timeout=30,
        env={"PYTHONPATH": str(REPO / "exporter"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and proc.stderr.startswith("footprint-exporter: sample.interval: ")


def test_an_empty_yaml_value_means_unset(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("state:\n  file:\npue:\ngrid:\n  zone: FR\n")
    s = config.load(["--config", str(f)], env={"FOOTPRINT_PUE": "1.3"})
    assert s.state_file == "" and s.origin("state.file") == "default"
    assert s.pue == 1.3 and s.grid_zone == "FR"


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 10)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))

HOSTILE_FILES = [
    (b"pue: 1.2\ngrid:\n  zone: \xff\xfe\n", "not UTF-8"),
    (b"a: &a [*a]\n", "alias inside its own anchor"),
    (b"grid: &g {zone: *g}\n", "alias inside its own anchor"),
    (LAUGHS.encode(), "more than"),
    (b"[" * 5000 + b"]" * 5000, "nested"),
    (b"x: " + b"[" * 80 + b"]" * 80, "nested"),
    (b"pue: 1.2\n" + b"#" * (2 * 1024 * 1024), "larger than"),
]


@pytest.mark.parametrize(("data", "words"), HOSTILE_FILES, ids=["utf8", "self-alias", "self-alias-map", "laughs",
                                                                 "deep", "deeper-than-limit", "huge"])
def test_hostile_yaml_is_one_line_naming_the_key(tmp_path: Path, data: bytes, words: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(data)
    with pytest.raises(ConfigError) as err:
        config.load(["--config", str(f)], env={})
    message = str(err.value)
    assert message.startswith("config: ") and words in message and "\n" not in message


@pytest.mark.parametrize("flag", ["--config", "--web.config.file"])
@pytest.mark.parametrize("data", [b"\xff\xfe: 1\n", b"a: &a [*a]\n"], ids=["latin1", "self-alias"])
def test_cli_exits_2_on_hostile_config_and_web_config(tmp_path: Path, flag: str, data: bytes) -> None:
    f = tmp_path / "c.yaml"
    f.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-m", "footprint", f"{flag}={f}", "--web.listen-address=127.0.0.1:0", "--log.level=error"],
        capture_output=True, text=True, timeout=30, env={"PYTHONPATH": str(REPO / "exporter"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and flag[2:] in lines[0] and "Traceback" not in proc.stderr


def test_aliases_that_are_not_bombs_still_work(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("x-zone: &zone DE\ngrid:\n  zone: *zone\n".replace("x-zone", "grid.region"))
    assert config.load(["--config", str(f)], env={}).grid_zone == "DE"


# --- properties ---------------------------------------------------------------------------------

_UNITS = st.sampled_from(["ms", "s", "m", "h", "d", "w", "y"])


@given(st.lists(st.tuples(st.integers(0, 10_000), _UNITS), min_size=1, max_size=4))
def test_duration_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    assert config.parse_duration(text) == pytest.approx(sum(n * config._DURATION_UNITS[u] for n, u in parts))


@given(st.text(max_size=30))
def test_duration_is_finite_and_non_negative_or_refused(text: str) -> None:
    try:
        seconds = config.parse_duration(text)
    except ValueError:
        return
    assert math.isfinite(seconds) and seconds >= 0


@given(st.integers(0, 10**6), _UNITS)
def test_format_duration_round_trips(n: int, unit: str) -> None:
    seconds = config.parse_duration(f"{n}{unit}")
    assert config.parse_duration(config.format_duration(seconds)) == pytest.approx(seconds)


_RAW = st.one_of(st.text(max_size=70), st.floats(), st.integers(-(10**500), 10**500), st.booleans(), st.none(),
                 st.lists(st.integers(), max_size=2))


@given(_RAW, st.floats(-1e6, 0), st.floats(0, 1e6), st.booleans())
def test_bounded_number_is_finite_in_range_or_a_reasoned_error(raw: object, lo: float, hi: float,
                                                                integer: bool) -> None:
    try:
        value = numbers.bounded(raw, lo, hi, integer=integer)
    except numbers.NumberError as exc:
        assert exc.reason in numbers.REASONS
        return
    assert math.isfinite(value) and lo <= value <= hi
    assert not integer or value.is_integer()
    assert not isinstance(raw, (bool, list)) and raw is not None


@given(st.dictionaries(st.sampled_from(NUMERIC), _RAW.filter(lambda r: r is not None), max_size=3))
def test_any_numeric_values_load_in_range_or_fail_naming_a_key(values: dict[str, object]) -> None:
    argv = [f"--{k}={v}" for k, v in values.items()]
    try:
        s = config.load(argv, env={})
    except ConfigError as exc:
        assert str(exc).split(":")[0] in values
        return
    for key in values:
        field_name, o = config.options()[key]
        got = getattr(s, field_name)
        assert (o.optional and got is None) or (math.isfinite(got) and o.minimum <= got <= o.maximum)
