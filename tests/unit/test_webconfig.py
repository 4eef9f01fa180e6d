"""The exporter-toolkit web config: what loads, what is refused (naming the key), and basic auth."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
from footprint.config import ConfigError
from footprint.web.auth import BasicAuth, TokenBucket, allowed_san, client_network
from footprint.web.webconfig import RateLimit, load

from tests.support.exporter import REPO
from tests.support.tls import CA

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d, "test")
    ca.issue("server", ["127.0.0.1", "localhost"])
    return d


def basic(user: str, password: str | bytes) -> str:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return "Basic " + base64.b64encode(raw).decode()


def test_no_file_and_an_empty_file_mean_plain_http_without_auth(tmp_path: Path) -> None:
    for config in (load(""), load(write(tmp_path, ""))):
        assert config.tls is None and not config.users and config.ssl_context() is None


def test_a_full_config_loads(pki: Path) -> None:
    config = load(write(pki, f"""
tls_server_config:
  cert_file: server.pem
  key_file: server-key.pem
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: test-ca.pem
  client_allowed_sans: [prometheus.example, 127.0.0.1]
  min_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {HASH}
rate_limit:
  interval: 100ms
  burst: 20
"""))
    ctx = config.ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {"prometheus": HASH.encode()}
    assert config.headers == {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000"}
    assert config.rate_limit == RateLimit(0.1, 20)


def test_inline_certificate_and_key(pki: Path) -> None:
    cert, key = (pki / "server.pem").read_text(), (pki / "server-key.pem").read_text()
    indent = lambda text: "\n".join("    " + line for line in text.splitlines())  # noqa: E731
    config = load(write(pki, f"tls_server_config:\n  cert: |\n{indent(cert)}\n  key: |\n{indent(key)}\n"))
    assert config.ssl_context() is not None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("tls_server_confg: {}", "tls_server_confg: unknown key"),
        ("tls_server_config: {cert_file: s.pem, key_file: k.pem, ciphers: []}", "tls_server_config.ciphers: unknown"),
        ("http_server_config: {headers: {X-Powered-By: me}}", "http_server_config.headers.X-Powered-By"),
        ("http_server_config: {headers: {X-Frame-Options: allow}}", "http_server_config.headers.X-Frame-Options"),
        ("http_server_config: {http2: maybe}", "http_server_config.http2"),
        ("rate_limit: {interval: 1s, burst: 0}", "rate_limit.burst"),
        ("rate_limit: {interval: soon, burst: 1}", "rate_limit.interval"),
        ("rate_limit: {interval: nan, burst: 1}", "rate_limit.interval"),
        ("rate_limit: {interval: [1s], burst: 1}", "rate_limit.interval"),
        ("rate_limit: {interval: 1s, burst: " + "9" * 400 + "}", "rate_limit.burst"),
        ("rate_limit: {interval: 1s, burst: .inf}", "rate_limit.burst"),
        ("rate_limit: {interval: 1s, burst: 2.5}", "rate_limit.burst"),
        ("basic_auth_users: {alice: hunter2}", "basic_auth_users.alice: expected a bcrypt hash"),
        ("tls_server_config: {key_file: server-key.pem}", "tls_server_config.cert_file: missing"),
        ("tls_server_config: {cert_file: server.pem}", "tls_server_config.key_file: missing"),
        ("tls_server_config: {client_ca_file: test-ca.pem}", "tls_server_config.cert_file"),
        ("tls_server_config: {cert_file: nope.pem, key_file: server-key.pem}", "tls_server_config.cert_file: cannot"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, min_version: TLS14}",
         "tls_server_config.min_version: expected one of"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, min_version: TLS13, "
         "max_version: TLS12}", "tls_server_config.min_version: is above max_version"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, client_auth_type: "
         "RequireAnyClientCert, client_ca_file: test-ca.pem}", "tls_server_config.client_auth_type: "
         "RequireAnyClientCert accepts unverified"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, client_auth_type: "
         "RequireAndVerifyClientCert}", "tls_server_config.client_ca_file: needed"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, client_ca_file: test-ca.pem}",
         "tls_server_config.client_auth_type: client CA given"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, client_allowed_sans: [a]}",
         "tls_server_config.client_allowed_sans"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, curve_preferences: [X25519]}",
         "tls_server_config.curve_preferences: not supported"),
        ("tls_server_config: {cert_file: server.pem, key_file: server-key.pem, cipher_suites: [RC4]}",
         "tls_server_config.cipher_suites: unknown"),
        ("- a list", "(top level): expected a mapping"),
        ("tls_server_config: {cert_file: [server.pem], key_file: server-key.pem}", "tls_server_config.cert_file"),
    ],
)
def test_mistakes_are_config_errors_naming_the_key(pki: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(pki, text))
    assert str(err.value).startswith(f"web.config.file: {key}")
    assert "\n" not in str(err.value)


def test_the_exporter_exits_2_naming_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
    env["PYTHONPATH"] = str(REPO / "exporter")
    out = subprocess.run(
        [sys.executable, "-m", "footprint", "--web.listen-address=127.0.0.1:0", "--no-meter.nvml",
         f"--web.config.file={write(tmp_path, 'basic_auth_users: {}' + chr(10) + 'tls_server_config: {bogus: 1}')}"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert out.returncode == 2
    assert "tls_server_config.bogus: unknown key" in out.stderr.strip().splitlines()[-1]


def test_basic_auth_pays_bcrypt_once_per_good_credential() -> None:
    auth = BasicAuth({"prometheus": HASH.encode(), "grafana": HASH.encode()})
    assert auth.check(basic("prometheus", "s3cret")) == "ok"
    assert auth.check(basic("prometheus", "s3cret")) == "ok"
    assert auth.check(basic("prometheus", "s3cret")) == "ok"
    assert auth.verifications == 1
    assert auth.check(basic("grafana", "s3cret")) == "ok"
    assert auth.verifications == 2


def test_wrong_credentials_are_never_cached() -> None:
    auth = BasicAuth({"prometheus": HASH.encode()})
    for _ in range(3):
        assert auth.check(basic("prometheus", "wrong")) == "denied"
    assert auth.verifications == 3
    assert auth.check(basic("mallory", "s3cret")) == "denied"  # unknown user: costs a bcrypt check all the same
    assert auth.verifications == 4
    assert auth.check(basic("prometheus", "s3cret" + "x" * 80)) == "denied"  # bcrypt refuses > 72 bytes
    assert auth.check(basic("prometheus", "s3cret"), "10.0.0.2") == "ok"


def test_failed_logins_are_limited_per_client_network() -> None:
    """Past FAILURE_BURST uncached checks a client is refused without bcrypt work; other clients, and
    cached good credentials, are not affected. IPv4 on a dual-stack socket and an IPv6 /64 count as one."""
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert auth.check(basic("prometheus", "s3cret"), "10.0.0.1") == "ok"  # cached from here on
    for _ in range(BasicAuth.FAILURE_BURST):
        assert auth.check(basic("prometheus", "wrong"), "10.0.0.9") == "denied"
    spent = auth.verifications
    assert auth.check(basic("prometheus", "wrong"), "10.0.0.9") == "limited"
    assert auth.check(basic("prometheus", "s3cret"), "10.0.0.9") == "ok"  # a cached good one still passes
    assert auth.verifications == spent
    assert auth.check(basic("prometheus", "s3cret" + "x"), "10.0.0.3") == "denied"  # another client: checked
    assert client_network("::ffff:10.0.0.9") == "10.0.0.9"
    assert client_network("2001:db8:1:2:3::4") == client_network("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode(),
               "Basic " + base64.b64encode(b"\xff\xfe:pw").decode()],
)
def test_malformed_authorization_is_refused_without_bcrypt(header: str | None) -> None:
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert auth.check(header) == "denied"
    assert auth.verifications == 0


def test_no_users_means_no_auth() -> None:
    assert BasicAuth({}).check(None) == "ok"


def test_client_certificate_sans_match_exactly() -> None:
    cert = {"subjectAltName": (("DNS", "prometheus.monitoring.svc"), ("IP Address", "10.0.0.7"))}
    assert allowed_san(cert, ())
    assert allowed_san(cert, ("prometheus.monitoring.svc",))
    assert allowed_san(cert, ("10.0.0.7",))
    assert not allowed_san(cert, ("prometheus",))
    assert not allowed_san(None, ("10.0.0.7",))


def test_rate_limit_allows_the_burst_then_refuses() -> None:
    bucket = TokenBucket(RateLimit(interval=3600.0, burst=3))
    assert [bucket.allow() for _ in range(5)] == [True, True, True, False, False]
