"""One typed settings object, from four sources, weakest first: defaults, YAML file, FOOTPRINT_* env, flags.

Every option is declared once in `Settings` (its dotted key, type, default and help). The flag is
`--<key>`, the environment variable `FOOTPRINT_<KEY>` (dots and dashes become underscores), and the YAML
file may nest (`grid: {zone: DE}`) or use dotted keys (`grid.zone: DE`). Booleans also take
`--no-<key>`. Any bad input raises `ConfigError` with one line that names the key; the CLI turns it
into exit status 2. Unknown FOOTPRINT_* variables are errors too, except the service-link variables
the kubelet injects for Services named footprint-* (see `is_service_link`).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from footprint import numbers
from footprint.accounting.ledger import parse_max_watts


class ConfigError(Exception):
    """Bad configuration. The message is one line and starts with the offending key."""


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31557600.0}
# ASCII digits only: `\d` alone also matches other scripts' digits, which float() then accepts.
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", re.ASCII)
_SECONDS_RE = re.compile(r"\d+(?:\.\d+)?", re.ASCII)


def parse_duration(text: str) -> float:
    """Prometheus-style durations ("500ms", "1m30s", "4y"; y = 365.25 d) or plain seconds, as seconds.

    The one parser for every duration setting: NaN, infinities, negatives, exponents and non-ASCII
    digits are refused (float() takes them all, and a NaN interval disables every comparison)."""
    text = text.strip()
    if len(text) > 64:
        raise ValueError(f"not a duration: {text[:64]!r}... (use e.g. 500ms, 1s, 5m, 2h)")
    if _SECONDS_RE.fullmatch(text):
        total = float(text)
    else:
        pos, total = 0, 0.0
        for m in _DURATION_RE.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise ValueError(f"not a duration: {text!r} (use e.g. 500ms, 1s, 5m, 2h)")
    if not math.isfinite(total):
        raise ValueError(f"not a duration: {text!r} is too long a time")
    return total


def format_duration(seconds: float) -> str:
    for unit in ("y", "d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{seconds * 1000:g}ms"


def parse_listen_address(text: str) -> str:
    """`host:port`, `:port` (all interfaces) or `[v6]:port`; port 0 picks a free one (tests)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a listen address: {text!r} (use host:port or :port)")
    host = host.strip("[]")
    if host and host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
                raise ValueError(f"not a listen address: {text!r}") from exc
    return text


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


# --- option metadata -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    key: str
    kind: str  # str | bool | int | float | duration | list | choice
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False  # None allowed (unset)
    secret: bool = False  # never printed
    check: Callable[[Any], Any] | None = None


def opt(key: str, kind: str, default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"option": Option(key, kind, help, **kw)})


def opt_list(key: str, help: str) -> Any:
    return field(default_factory=tuple, metadata={"option": Option(key, "list", help)})


GRID_PROVIDERS = ("static", "constant", "electricitymaps", "watttime", "neso", "energinet", "carbonaware", "peer")


@dataclass(frozen=True)
class Settings:
    # The file itself (only meaningful as a flag or env).
    config: str = opt("config", "str", "", "YAML configuration file")
    # Web
    web_listen_address: str = opt(
        "web.listen-address", "str", ":10180", "address to serve /metrics on", check=parse_listen_address
    )
    web_config_file: str = opt("web.config.file", "str", "", "exporter-toolkit web config (TLS, basic auth)")
    web_history_step: float = opt(
        "web.history-step", "duration", 15.0, "one point of the live page's power charts (240 points: 1 hour at "
        "15s; never finer than sample.interval)", minimum=0.01, maximum=3600.0
    )
    web_runs_file: str = opt("web.runs-file", "str", "", "run file of `measure --output` to list on the live page")
    web_enable_created_series: bool = opt(
        "web.enable-created-series", "bool", False, "also expose each counter's _created series (both formats)"
    )
    # Host paths (node_exporter style, so tests run on fixture trees)
    path_sysfs: str = opt("path.sysfs", "str", "/sys", "sysfs mount point")
    path_procfs: str = opt("path.procfs", "str", "/proc", "procfs mount point")
    path_cgroup: str = opt("path.cgroup", "str", "/sys/fs/cgroup", "cgroup v2 mount point")
    path_rocm: str = opt(
        "path.rocm", "str", "", "ROCm install holding lib/libamd_smi.so (empty: the amdsmi bindings' own search)"
    )
    # Sampling
    sample_interval: float = opt(
        "sample.interval", "duration", 1.0, "time between samples", minimum=0.01, maximum=3600.0
    )
    # Logging
    log_level: str = opt("log.level", "choice", "info", "log level", choices=("debug", "info", "warn", "error"))
    log_format: str = opt("log.format", "choice", "logfmt", "log format", choices=("logfmt", "json"))
    # Meters: auto-detected when on; off skips detection entirely
    meter_rapl: bool = opt("meter.rapl", "bool", True, "Intel/AMD RAPL through powercap sysfs")
    meter_nvml: bool = opt("meter.nvml", "bool", True, "NVIDIA GPUs through NVML")
    meter_amdsmi: bool = opt(
        "meter.amdsmi", "bool", True, "AMD GPUs through amdsmi (amdgpu hwmon power where amdsmi is missing)"
    )
    meter_estimate: bool = opt("meter.estimate", "bool", True, "estimate CPU/DRAM power where no meter covers it")
    counter_max_watts: tuple[str, ...] = opt(
        "counter.max-watts", "list", (), "power ceiling per component, over each device's own (gpu=1500,cpu=800): "
        "a counter delta above ceiling x elapsed is a glitch, never energy", check=parse_max_watts,
    )
    estimate_cpu_idle_watts: float = opt(
        "estimate.cpu-idle-watts", "float", 10.0, "CPU power at 0 % utilisation (whole machine)", minimum=0.0,
        maximum=100_000.0
    )
    estimate_cpu_max_watts: float = opt(
        "estimate.cpu-max-watts", "float", 65.0, "CPU power at 100 % utilisation (whole machine)", minimum=0.0,
        maximum=100_000.0
    )
    estimate_dram_watts_per_gib: float = opt(
        "estimate.dram-watts-per-gib", "float", 0.375, "DRAM power per GiB installed", minimum=0.0, maximum=100.0
    )
    # Facility
    pue: float = opt("pue", "float", 1.0, "power usage effectiveness of the facility", minimum=1.0, maximum=5.0)
    # Grid
    grid_provider: str = opt("grid.provider", "choice", "static", "first grid provider", choices=GRID_PROVIDERS)
    grid_fallback: tuple[str, ...] = opt_list("grid.fallback", "further providers, in order (comma separated)")
    grid_zone: str = opt("grid.zone", "str", "", "grid zone: ISO 3166 country or a provider's zone id")
    grid_refresh_interval: float = opt(
        "grid.refresh-interval", "duration", 300.0, "how often providers are asked", minimum=1.0, maximum=86400.0
    )
    grid_max_age: float = opt(
        "grid.max-age", "duration", 7200.0, "after this, a provider's value is stale: next in chain",
        minimum=1.0, maximum=30 * 86400.0,
    )
    grid_timeout: float = opt("grid.timeout", "duration", 10.0, "HTTP timeout", minimum=0.1, maximum=120.0)
    grid_accounting_signal: str = opt(
        "grid.accounting-signal", "choice", "average",
        "average always drives the emissions counters; marginal adds footprint_marginal_emissions_grams_total",
        choices=("average", "marginal"),
    )
    grid_region_label: str = opt(
        "grid.region", "str", "", "cloud region or Kubernetes topology.kubernetes.io/region value (static table)"
    )
    grid_constant_value: float | None = opt(
        "grid.constant.value", "float", None, "gCO2e/kWh for the constant provider", optional=True,
        minimum=0.0, maximum=3000.0,
    )
    grid_electricitymaps_url: str = opt(
        "grid.electricitymaps.url", "str", "https://api.electricitymaps.com/v3", "Electricity Maps API base URL"
    )
    grid_electricitymaps_token_file: str = opt(
        "grid.electricitymaps.token-file", "str", "", "file holding the Electricity Maps auth token"
    )
    grid_watttime_url: str = opt("grid.watttime.url", "str", "https://api.watttime.org", "WattTime API base URL")
    grid_watttime_username: str = opt("grid.watttime.username", "str", "", "WattTime user name")
    grid_watttime_password_file: str = opt(
        "grid.watttime.password-file", "str", "", "file holding the WattTime password"
    )
    grid_neso_url: str = opt("grid.neso.url", "str", "https://api.carbonintensity.org.uk", "NESO API base URL")
    grid_neso_region: int | None = opt(
        "grid.neso.region", "int", None, "NESO region id 1-17 (national if unset)", optional=True,
        minimum=1, maximum=17,
    )
    grid_energinet_url: str = opt(
        "grid.energinet.url", "str", "https://api.energidataservice.dk", "Energi Data Service base URL"
    )
    grid_carbonaware_url: str = opt("grid.carbonaware.url", "str", "", "Carbon Aware SDK WebAPI base URL")
    grid_peer_url: str = opt("grid.peer.url", "str", "", "another Footprint exporter's base URL")
    grid_peer_ca_file: str = opt(
        "grid.peer.ca-file", "str", "", "CA bundle that signs the peer's certificate (https peer URL)"
    )
    grid_peer_username: str = opt("grid.peer.username", "str", "", "basic auth user name for the peer")
    grid_peer_password_file: str = opt(
        "grid.peer.password-file", "str", "", "file holding the peer's basic auth password"
    )
    grid_static_file: str = opt(
        "grid.static.file", "str", "", "CSV adding region -> zone rows and zone figures to the static table"
    )
    grid_electricitymaps_token: str = opt(
        "grid.electricitymaps.token", "str", "", "Electricity Maps auth token (use the env variable)", secret=True
    )
    grid_watttime_region: str = opt(
        "grid.watttime.region", "str", "", "WattTime region, e.g. CAISO_NORTH (default: grid.zone)"
    )
    grid_watttime_password: str = opt(
        "grid.watttime.password", "str", "", "WattTime password (use the env variable)", secret=True
    )
    grid_carbonaware_signal: str = opt(
        "grid.carbonaware.signal", "choice", "average", "signal of the Carbon Aware SDK's data source",
        choices=("average", "marginal"),
    )
    # Kubernetes attribution
    kubernetes_enabled: bool = opt("kubernetes.enabled", "bool", False, "attribute energy to pods")
    kubernetes_node_name: str = opt(
        "kubernetes.node-name", "str", "", "this node's name (default: $NODE_NAME)"
    )
    kubernetes_api_url: str = opt(
        "kubernetes.api-url", "str", "", "API server URL (default: in-cluster service environment)"
    )
    kubernetes_token_file: str = opt(
        "kubernetes.token-file", "str", "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "service-account token",
    )
    kubernetes_ca_file: str = opt(
        "kubernetes.ca-file", "str", "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", "API server CA"
    )
    kubernetes_pod_resources_socket: str = opt(
        "kubernetes.pod-resources-socket", "str", "/var/lib/kubelet/pod-resources/kubelet.sock",
        "kubelet pod-resources socket",
    )
    kubernetes_workload_label: str = opt(
        "kubernetes.workload-label", "str", "footprint.dev/workload", "pod label: training | inference"
    )
    kubernetes_refresh_interval: float = opt(
        "kubernetes.refresh-interval", "duration", 30.0, "how often pods are listed", minimum=1.0, maximum=3600.0
    )
    attribution_processes: bool = opt(
        "attribution.processes", "bool", False, "bare metal: attribute to process groups"
    )
    attribution_group_by: str = opt(
        "attribution.group-by", "choice", "comm", "process grouping key", choices=("comm", "slurm-job")
    )
    attribution_max_series: int = opt(
        "attribution.max-series", "int", 5000, "cap on workload series", minimum=1, maximum=1_000_000
    )
    attribution_interval: float = opt(
        "attribution.interval", "duration", 5.0,
        "how often energy is split among workloads (0: every sample); what is drawn in between is "
        "exposed as footprint_attribution_pending_* and attributed at the next pass or a clean stop",
        minimum=0.0, maximum=3600.0,
    )
    attribution_grace_period: float = opt(
        "attribution.grace-period", "duration", 300.0, "how long a gone pod's series stay", minimum=0.0,
        maximum=30 * 86400.0,
    )
    # Restart safety
    state_file: str = opt("state.file", "str", "", "checkpoint file (empty: no checkpoint)")
    state_checkpoint_interval: float = opt(
        "state.checkpoint-interval", "duration", 30.0, "time between checkpoints", minimum=1.0, maximum=86400.0
    )
    state_gap_wait: float = opt(
        "state.gap-wait", "duration", 300.0,
        "after a restart, how long saved counters wait for their device's first read, and the gap's charge "
        "for the grid chain's first answer; then they are dropped (counted) or charged at the value in use",
        minimum=0.0, maximum=86400.0,
    )
    # Embodied, water, cost
    embodied_lifetime: float = opt(
        "embodied.lifetime", "duration", 4 * 31557600.0, "expected hardware lifetime for amortisation",
        minimum=86400.0, maximum=30 * 31557600.0,
    )
    embodied_gpu_kgco2e: float | None = opt(
        "embodied.gpu-kgco2e", "float", None, "manufacturing kgCO2e per GPU (overrides the model table)",
        optional=True, minimum=0.0, maximum=1_000_000.0,
    )
    embodied_cpu_kgco2e: float | None = opt(
        "embodied.cpu-kgco2e", "float", None, "manufacturing kgCO2e per CPU package", optional=True, minimum=0.0,
        maximum=1_000_000.0,
    )
    embodied_server_kgco2e: float | None = opt(
        "embodied.server-kgco2e", "float", None, "manufacturing kgCO2e of the rest of the server", optional=True,
        minimum=0.0, maximum=1_000_000.0,
    )
    water_wue: float | None = opt(
        "water.wue", "float", None, "site water usage effectiveness, litres per kWh of IT energy", optional=True,
        minimum=0.0, maximum=100.0,
    )
    water_grid_intensity: float | None = opt(
        "water.grid-intensity", "float", None, "water consumed per kWh of grid electricity, litres", optional=True,
        minimum=0.0, maximum=1000.0,
    )
    cost_price_per_kwh: float | None = opt(
        "cost.price-per-kwh", "float", None, "electricity price per kWh (facility energy)", optional=True, minimum=0.0,
        maximum=1_000_000.0,
    )
    cost_currency: str = opt("cost.currency", "str", "USD", "ISO 4217 currency of the price")
    cost_schedule: tuple[str, ...] = opt_list(
        "cost.schedule", "time-of-use prices, UTC: HH:MM-HH:MM=price,... (overrides price-per-kwh inside)"
    )

    # Where each key's value came from: default | file | env | flag (for doctor).
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def origin(self, key: str) -> str:
        return self.origins.get(key, "default")


def options() -> dict[str, tuple[str, Option]]:
    """Dotted key -> (dataclass field name, Option)."""
    out = {}
    for f in dataclasses.fields(Settings):
        o = f.metadata.get("option")
        if o is not None:
            out[o.key] = (f.name, o)
    return out


_OPTIONS = options()


def env_name(key: str) -> str:
    return "FOOTPRINT_" + re.sub(r"[.-]", "_", key).upper()


# The variables the kubelet injects into every container for every Service of its namespace
# (enableServiceLinks, on by default), from kubernetes/kubernetes pkg/kubelet/envvars/envvars.go:
# NAME is the Service name upper-cased with '-' -> '_', PROTO one of TCP, UDP, SCTP; for the first port
# <NAME>_SERVICE_PORT and <NAME>_PORT, for each named port <NAME>_SERVICE_PORT_<PORTNAME>, for each port
# <NAME>_PORT_<port>_<PROTO>{,_PROTO,_PORT,_ADDR}. A chart release named footprint creates Services
# footprint-node and footprint-grid, hence FOOTPRINT_NODE_SERVICE_HOST and friends. Each shape is also
# matched on its value, so only what the kubelet would write is ignored.
_IP = r"[0-9A-Fa-f:.]+"
_URL = rf"(?:tcp|udp|sctp)://(?:{_IP}|\[{_IP}\]):\d+"
_SERVICE_LINKS = [
    (re.compile(r"[A-Z0-9_]+_SERVICE_HOST"), re.compile(_IP)),
    (re.compile(r"[A-Z0-9_]+_SERVICE_PORT(?:_[A-Z0-9_]+)?"), re.compile(r"\d{1,5}")),
    (re.compile(r"[A-Z0-9_]+_PORT"), re.compile(_URL)),
    (re.compile(r"[A-Z0-9_]+_PORT_\d{1,5}_(?:TCP|UDP|SCTP)"), re.compile(_URL)),
    (re.compile(r"[A-Z0-9_]+_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_PROTO"), re.compile(r"tcp|udp|sctp")),
    (re.compile(r"[A-Z0-9_]+_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_PORT"), re.compile(r"\d{1,5}")),
    (re.compile(r"[A-Z0-9_]+_PORT_\d{1,5}_(?:TCP|UDP|SCTP)_ADDR"), re.compile(_IP)),
]


def is_service_link(name: str, value: str) -> bool:
    """Whether NAME=value has the shape of a Kubernetes service-link variable (see above)."""
    return any(n.fullmatch(name) and v.fullmatch(value) for n, v in _SERVICE_LINKS)


def _unknown(key: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(_OPTIONS), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigError(f"{key}: unknown key in {where}{hint}")


def _convert(key: str, o: Option, raw: Any) -> Any:
    """Turn a raw value (string from env/flag, or a YAML scalar) into the option's type, or fail.

    Numbers and durations go through one check (numbers.bounded): finite, ASCII, inside the option's
    range, so no setting can be NaN, infinite or negative where the code divides or compares by it."""
    try:
        if o.optional and (raw is None or raw == ""):
            return None
        value: Any
        if o.kind == "bool":
            if isinstance(raw, bool):
                value = raw
            elif str(raw).lower() in ("true", "1", "yes", "on"):
                value = True
            elif str(raw).lower() in ("false", "0", "no", "off"):
                value = False
            else:
                raise ValueError(f"expected true or false, got {raw!r}")
        elif o.kind in ("int", "float"):
            number = numbers.bounded(raw, o.minimum, o.maximum, integer=o.kind == "int")
            value = int(number) if o.kind == "int" else number
        elif o.kind == "duration":
            if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
                raise ValueError(f"expected a duration, got {raw!r}")
            value = numbers.bounded(parse_duration(str(raw)), o.minimum, o.maximum)
        elif o.kind == "list":
            items = raw if isinstance(raw, list) else str(raw).split(",")
            value = tuple(str(i).strip() for i in items if str(i).strip())
        elif o.kind == "choice":
            value = str(raw).strip().lower()
            if value not in o.choices:
                raise ValueError(f"expected one of {', '.join(o.choices)}, got {raw!r}")
        else:
            if isinstance(raw, (dict, list)):
                raise ValueError(f"expected a string, got {type(raw).__name__}")
            value = str(raw)
        if o.check is not None:
            o.check(value)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return value


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and key not in _OPTIONS:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


MAX_FILE_BYTES = 1024 * 1024  # a settings or web config file is a few kB
MAX_YAML_NODES = 10_000  # after aliases are expanded: a "billion laughs" file stops here
MAX_YAML_DEPTH = 64


def read_secret(path: str, key: str) -> str:
    """A secret from a file (API tokens, passwords); errors name the key and path, never the content."""
    text = read_text(path, key).strip()
    if not text:
        raise ConfigError(f"{key}: {path} is empty")
    return text


def read_text(path: str, key: str) -> str:
    """The text of a file named by setting `key`; errors name the key and path, never the content."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{key}: file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{key}: {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{key}: {path} is not UTF-8 text (byte {exc.start})") from None


def _check_yaml_graph(root: yaml.Node, key: str, path: str) -> None:
    """Refuse what yaml.safe_load would turn into a hang or a crash: an alias inside its own anchor (a
    recursive structure), nesting past MAX_YAML_DEPTH, or more than MAX_YAML_NODES nodes once aliases
    are expanded (aliases share one node object, so a few lines can stand for billions)."""
    count = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    open_ids: list[int] = []  # the nodes on the path to the current one (for cycles)
    while stack:
        node, depth = stack.pop()
        del open_ids[depth:]
        if id(node) in open_ids:
            raise ConfigError(f"{key}: {path} has an alias inside its own anchor (a recursive structure)")
        count += 1
        if count > MAX_YAML_NODES:
            raise ConfigError(f"{key}: {path} expands to more than {MAX_YAML_NODES} values (aliases?)")
        if depth >= MAX_YAML_DEPTH:
            raise ConfigError(f"{key}: {path} is nested more than {MAX_YAML_DEPTH} levels deep")
        open_ids.append(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        stack.extend((child, depth + 1) for child in reversed(children))


def load_yaml(path: str, key: str) -> Any:
    """The YAML document in a file named by setting `key`; a syntax error says the line, not the content."""
    text = read_text(path, key)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_graph(node, key, path)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{key}: {path} is not valid YAML{where}") from None
    except RecursionError:
        raise ConfigError(f"{key}: {path} is nested too deeply") from None
    finally:
        loader.dispose()


def _read_file(path: str) -> dict[str, Any]:
    data = load_yaml(path, "config")
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: {path} must hold a mapping of keys to values")
    out = {}
    for key, value in _flatten(data):
        if key not in _OPTIONS or key == "config":
            raise _unknown(key, path)
        if value is not None:  # `state:\n  file:` is an empty value: the key is unset, not "None"
            out[key] = value
    return out


def _parse_flags(argv: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"{arg}: unexpected argument (flags look like --key=value)")
        name, eq, value = arg[2:].partition("=")
        negated = False
        if name not in _OPTIONS and name.startswith("no-") and name[3:] in _OPTIONS:
            name, negated = name[3:], True
        if name not in _OPTIONS:
            raise _unknown(name, "flags")
        o = _OPTIONS[name][1]
        if o.kind == "bool" and not eq:
            out[name] = not negated
        elif negated:
            raise ConfigError(f"{name}: --no-{name} only applies to true/false settings")
        elif eq:
            out[name] = value
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"{name}: missing value")
            i += 1
            out[name] = argv[i]
        i += 1
    return out


def load(argv: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from defaults < YAML file < FOOTPRINT_* env < flags. Raises ConfigError."""
    env = os.environ if env is None else env
    flags = _parse_flags(argv)
    known_env = {env_name(k): k for k in _OPTIONS}
    env_values = {}
    for name, value in env.items():
        if not name.startswith("FOOTPRINT_"):
            continue
        if name not in known_env:
            if is_service_link(name, value):
                continue  # injected by the kubelet for a Service named footprint-*, not a setting
            # A typo in an environment variable is as wrong as one in a file.
            raise ConfigError(f"{name}: unknown FOOTPRINT_ environment variable")
        env_values[known_env[name]] = value

    config_path = flags.get("config") or env_values.get("config") or ""
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_path:
        layers.append(("file", _read_file(config_path)))
    layers.append(("env", env_values))
    layers.append(("flag", flags))

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, layer in layers:
        for key, raw in layer.items():
            field_name, o = _OPTIONS[key]
            values[field_name] = _convert(key, o, raw)
            origins[key] = origin
    settings = Settings(**values, origins=origins)
    if settings.estimate_cpu_max_watts < settings.estimate_cpu_idle_watts:
        raise ConfigError("estimate.cpu-max-watts: must be >= estimate.cpu-idle-watts")
    for name in settings.grid_fallback:
        if name not in GRID_PROVIDERS:
            raise ConfigError(f"grid.fallback: unknown provider {name!r} (known: {', '.join(GRID_PROVIDERS)})")
    return settings


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """(key, shown value, origin) for doctor; secrets and secret files are never read here."""
    rows = []
    for key, (field_name, o) in _OPTIONS.items():
        value = getattr(settings, field_name)
        if o.kind == "duration":
            shown = format_duration(value)
        elif o.kind == "list":
            shown = ",".join(value)
        elif value is None:
            shown = "(unset)"
        else:
            shown = str(value)
        rows.append((key, "<hidden>" if o.secret and value else shown, settings.origin(key)))
    return rows
