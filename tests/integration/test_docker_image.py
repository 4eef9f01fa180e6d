"""The container image, built by a real docker daemon and serving /metrics on loopback.

No image registry is reachable, so the base image is made locally: `debootstrap --variant=minbase
bookworm` plus python3 (cached under .cache/ so reruns skip it), `docker import`-ed, and passed to the
Dockerfile as BASE_IMAGE. The daemon is our own: private socket, private data root, no bridge and no
iptables; builds and the container use the host network, and the exporter listens on 127.0.0.1 only.

What this machine lacks (dockerd, debootstrap) is installed from Debian with a bounded time. When the
daemon cannot be had or cannot start, the test is skipped with the reason; it never passes silently.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "docker-base"
BASE_TAR = CACHE / "bookworm-minbase-python3.tar"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
BASE_IMAGE = "footprint-test-base:bookworm"
IMAGE = "footprint-exporter:test"
INSTALL_TIMEOUT = 300
DEBOOTSTRAP_TIMEOUT = 300
BUILD_TIMEOUT = 420


def _skip(reason: str) -> None:
    pytest.skip(f"image test skipped: {reason}")


def _version() -> str:
    match = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert match, "pyproject.toml has no version"
    return match.group(1)


def _apt_install(*packages: str) -> None:
    """Install Debian packages (bounded in time); skip the test with the reason when that fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=INSTALL_TIMEOUT, env=env)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _skip(f"cannot install {' '.join(packages)}: {exc}")
    if proc.returncode != 0:
        _skip(f"apt-get install {' '.join(packages)} failed: {proc.stderr.strip()[-500:]}")


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        _apt_install(package)
        found = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if not found:
        _skip(f"{name} is still missing after installing {package}")
    return str(found)


@dataclass
class Docker:
    client: str
    host: str

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}
        proc = subprocess.run([self.client, *args], capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:2])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc


@pytest.fixture(scope="module")
def docker() -> Iterator[Docker]:
    """Our own dockerd on a private socket and data root, stopped and removed at the end."""
    if os.geteuid() != 0:
        _skip("dockerd and debootstrap need root")
    dockerd = _tool("dockerd", "docker.io")
    # The client shipped with this daemon (a newer one elsewhere on PATH would want BuildKit plugins).
    client = next(
        (str(p) for p in (Path(dockerd).parent.parent / "bin" / "docker", Path("/usr/bin/docker")) if p.exists()),
        shutil.which("docker"),
    )
    if client is None:
        _skip("no docker client next to dockerd")
    work = Path(tempfile.mkdtemp(prefix="fp-dockerd-"))
    host = f"unix://{work}/docker.sock"
    log_path = work / "dockerd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                dockerd,
                f"--data-root={work}/data",
                f"--exec-root={work}/exec",
                f"--pidfile={work}/dockerd.pid",
                f"--host={host}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Docker(str(client), host)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                _skip(f"dockerd exited with {proc.returncode}: {log_path.read_text(errors='replace')[-800:]}")
            if daemon.run("version", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                _skip(f"dockerd did not answer within 60 s: {log_path.read_text(errors='replace')[-800:]}")
            time.sleep(0.2)
        yield daemon
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        # dockerd leaves its default network namespace bind-mounted under the exec root.
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(f"{work}/")), reverse=True):
            subprocess.run(["umount", "--lazy", mount], capture_output=True, timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def _debian_mirror() -> str:
    """The Debian mirror apt already uses (deb822 or one-line sources), for debootstrap."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        text = path.read_text(errors="replace") if path.is_file() else ""
        for pattern in (r"^URIs:\s*(\S+)", r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+\s"):
            for uri in re.findall(pattern, text, re.M):
                if "security" not in uri:
                    return str(uri)
    return "http://deb.debian.org/debian"


def _base_tarball() -> Path:
    """A Debian bookworm minbase root with python3 as a tarball, made once and cached under .cache/."""
    if BASE_TAR.exists():
        return BASE_TAR
    debootstrap = _tool("debootstrap", "debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = [debootstrap, "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(root), _debian_mirror()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _skip(f"debootstrap took longer than {DEBOOTSTRAP_TIMEOUT} s")
        if proc.returncode != 0:
            _skip(f"debootstrap failed: {(proc.stdout + proc.stderr).strip()[-800:]}")
        partial = Path(tmp) / "base.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=300)
        partial.rename(BASE_TAR)  # atomic: an interrupted run never leaves a half-made cache
    return BASE_TAR


@pytest.fixture(scope="module")
def base_image(docker: Docker) -> str:
    """The debootstrap base, plus this machine's local CA certificates (/usr/local/share/ca-certificates):
    where egress goes through a TLS-inspecting proxy, pip inside the build must trust what the host trusts."""
    docker.run("import", str(_base_tarball()), f"{BASE_IMAGE}-raw", timeout=300)
    local_cas = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))
    with tempfile.TemporaryDirectory() as context:
        for i, ca in enumerate(local_cas):
            shutil.copy(ca, Path(context) / f"local-{i}.crt")
        copy = "COPY *.crt /usr/local/share/ca-certificates/\nRUN update-ca-certificates\n" if local_cas else ""
        (Path(context) / "Dockerfile").write_text(f"FROM {BASE_IMAGE}-raw\n{copy}")
        docker.run("build", "--network", "host", "-t", BASE_IMAGE, context, timeout=120)
    return BASE_IMAGE


@pytest.fixture(scope="module")
def image(docker: Docker, base_image: str) -> tuple[str, str]:
    """Build the repository's Dockerfile on the local base; returns (tag, build output)."""
    proc = docker.run(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "-t",
        IMAGE,
        str(REPO),
        timeout=BUILD_TIMEOUT,
    )
    return IMAGE, proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_build_context_is_small(image: tuple[str, str]) -> None:
    """.dockerignore keeps .venv, .cache, .tools and tests out of the context."""
    match = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", image[1])
    assert match, image[1][:500]
    size = float(match.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[match.group(2)]
    assert size < 5e6, f"build context is {match.group(0)}"


def test_image_metadata(docker: Docker, image: tuple[str, str]) -> None:
    fmt = "{{json .Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}|{{json .Config.Labels}}"
    user, entrypoint, ports, labels = (
        docker.run("image", "inspect", "--format", fmt, image[0]).stdout.strip().split("|")
    )
    assert user == '"65532:65532"'
    assert entrypoint == '["footprint-exporter"]'
    assert '"10180/tcp"' in ports
    for key in ("title", "description", "version", "licenses", "source"):
        assert f'"org.opencontainers.image.{key}"' in labels
    assert f'"org.opencontainers.image.version":"{_version()}"' in labels
    out = docker.run("run", "--rm", "--network", "none", image[0], "version").stdout
    assert out.strip() == f"footprint-exporter {_version()}"


def test_container_serves_metrics_on_loopback_locked_down(docker: Docker, image: tuple[str, str]) -> None:
    """Run as the chart does (read-only root, no capabilities, no privilege escalation) and scrape."""
    port = _free_port()
    name = f"footprint-test-{uuid.uuid4().hex[:8]}"
    docker.run(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        image[0],
        f"--web.listen-address=127.0.0.1:{port}",
        "--grid.zone=DE",
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while "footprint_build_info" not in text:
            if time.monotonic() > deadline:
                logs = docker.run("logs", name, check=False).stdout + docker.run("logs", name, check=False).stderr
                pytest.fail(f"no metrics on 127.0.0.1:{port} within 60 s; container log:\n{logs[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    text = resp.read().decode()
            except OSError:
                time.sleep(0.2)
        assert f'footprint_build_info{{version="{_version()}"}} 1.0' in text
        assert re.search(r"^footprint_node_power_watts [0-9.e+-]+$", text, re.M)
        assert 'footprint_grid_carbon_intensity_grams_per_kilowatt_hour{grid_zone="DE"' in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200
        state = docker.run("inspect", "--format", "{{.State.Running}} {{.Config.User}}", name).stdout.split()
        assert state == ["true", "65532:65532"]
    finally:
        docker.run("rm", "--force", name, check=False)
