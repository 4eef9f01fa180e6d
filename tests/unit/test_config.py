"""Settings: sources in order, and every kind of bad input exits 2 with one line naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from footprint import config
from footprint.config import ConfigError

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
