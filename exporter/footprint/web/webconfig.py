"""The Prometheus exporter-toolkit web configuration file (`--web.config.file`): TLS and basic auth.

Same keys as node_exporter and friends, so one file serves every exporter on a node:

    tls_server_config: {cert_file, key_file | cert, key, client_auth_type, client_ca_file | client_ca,
                        client_allowed_sans, min_version, max_version, cipher_suites,
                        prefer_server_cipher_suites}
    http_server_config: {http2, headers}
    basic_auth_users: {user: bcrypt hash}
    rate_limit: {interval, burst}

The file is read once at start. Anything wrong, including an unknown key, is a ConfigError naming the
key (exit status 2): a security setting that is silently ignored is worse than none. Settings this
server cannot honour are refused the same way: `curve_preferences` (Python's ssl sets one curve at
most) and the client auth types that accept a certificate without verifying it (RequestClientCert,
RequireAnyClientCert; the toolkit itself calls them insecure). `http2` is accepted and has no effect:
this server speaks HTTP/1.1, which is what Prometheus scrapes with.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from footprint import numbers
from footprint.config import ConfigError, load_yaml, parse_duration

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
INSECURE_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert")
# Go's names (crypto/tls CipherSuites()) -> OpenSSL's. TLS 1.3 suites are not configurable in Go
# either: accepted, no effect.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
}
HEADERS = {  # header -> allowed values (empty: any)
    "Content-Security-Policy": (),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": (),
    "Strict-Transport-Security": (),
}
_BCRYPT_RE = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")
_TLS_KEYS = {
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    "client_allowed_sans", "min_version", "max_version", "cipher_suites", "prefer_server_cipher_suites",
    "curve_preferences",
}


@dataclass(frozen=True)
class TLSConfig:
    cert_file: str = ""
    key_file: str = ""
    cert: str = ""  # inline PEM
    key: str = ""
    client_auth_type: str = "NoClientCert"
    client_ca_file: str = ""
    client_ca: str = ""
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True


@dataclass(frozen=True)
class RateLimit:
    interval: float  # seconds between requests on average
    burst: int


@dataclass(frozen=True)
class WebConfig:
    tls: TLSConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    path: str = ""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server context, or None without TLS. Raises ConfigError if the files do not load."""
        if self.tls is None:
            return None
        return _ssl_context(self.tls, self.path)


def _err(path: str, key: str, what: str) -> ConfigError:
    return ConfigError(f"web.config.file: {key}: {what} (in {path})")


def _mapping(value: Any, path: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _err(path, key, "expected a mapping")
    return value


def _string(value: Any, path: str, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _err(path, key, f"expected a string, got {type(value).__name__}")
    return value


def _strings(value: Any, path: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _err(path, key, "expected a list of strings")
    return tuple(value)


def _unknown(data: Mapping[str, Any], known: set[str], path: str, prefix: str) -> None:
    for key in data:
        if key not in known:
            raise _err(path, prefix + key, "unknown key")


def load(path: str) -> WebConfig:
    """Parse and check the file; "" means no file (plain HTTP, no auth). Raises ConfigError."""
    if not path:
        return WebConfig()
    top = _mapping(load_yaml(path, "web.config.file"), path, "(top level)")
    _unknown(top, {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}, path, "")
    config = WebConfig(
        tls=_tls(_mapping(top.get("tls_server_config"), path, "tls_server_config"), path),
        users=_users(_mapping(top.get("basic_auth_users"), path, "basic_auth_users"), path),
        headers=_headers(_mapping(top.get("http_server_config"), path, "http_server_config"), path),
        rate_limit=_rate_limit(_mapping(top.get("rate_limit"), path, "rate_limit"), path),
        path=path,
    )
    config.ssl_context()  # load the certificates now: a bad file is a startup error, not a runtime one
    return config


def _tls(data: dict[str, Any], path: str) -> TLSConfig | None:
    p = "tls_server_config."
    _unknown(data, _TLS_KEYS, path, p)
    if data.get("curve_preferences"):
        raise _err(path, p + "curve_preferences", "not supported by footprint-exporter (OpenSSL's defaults apply); "
                   "remove it")
    s = {k: _string(data.get(k), path, p + k) for k in (
        "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
        "min_version", "max_version")}
    for inline, file_key in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if s[inline] and s[file_key]:
            raise _err(path, p + inline, f"give {inline} or {file_key}, not both")
    has_cert, has_key = bool(s["cert"] or s["cert_file"]), bool(s["key"] or s["key_file"])
    auth = s["client_auth_type"] or "NoClientCert"
    has_ca = bool(s["client_ca"] or s["client_ca_file"])
    sans = _strings(data.get("client_allowed_sans"), path, p + "client_allowed_sans")
    if not has_cert and not has_key:
        if has_ca or auth != "NoClientCert" or sans:
            raise _err(path, p + "cert_file", "client certificate settings need the server's cert_file and key_file")
        return None  # as in the toolkit: no certificate, no TLS
    if not has_cert:
        raise _err(path, p + "cert_file", "missing (key_file is set)")
    if not has_key:
        raise _err(path, p + "key_file", "missing (cert_file is set)")
    if auth in INSECURE_CLIENT_AUTH:
        raise _err(path, p + "client_auth_type", f"{auth} accepts unverified certificates and is not supported; "
                   "use RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise _err(path, p + "client_auth_type", f"expected one of {', '.join(CLIENT_AUTH)}, got {auth!r}")
    if auth != "NoClientCert" and not has_ca:
        raise _err(path, p + "client_ca_file", f"needed for client_auth_type {auth}")
    if has_ca and auth == "NoClientCert":
        raise _err(path, p + "client_auth_type", "client CA given without a client auth policy: "
                   "set RequireAndVerifyClientCert")
    if sans and auth != "RequireAndVerifyClientCert":
        raise _err(path, p + "client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        versions[key] = s[key] or default
        if versions[key] not in TLS_VERSIONS:
            raise _err(path, p + key, f"expected one of {', '.join(TLS_VERSIONS)}, got {versions[key]!r}")
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise _err(path, p + "min_version", "is above max_version")
    suites = _strings(data.get("cipher_suites"), path, p + "cipher_suites")
    for name in suites:
        if name not in CIPHER_SUITES:
            raise _err(path, p + "cipher_suites", f"unknown or insecure cipher suite {name!r}")
    prefer = data.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise _err(path, p + "prefer_server_cipher_suites", "expected true or false")
    return TLSConfig(
        cert_file=s["cert_file"], key_file=s["key_file"], cert=s["cert"], key=s["key"],
        client_auth_type=auth, client_ca_file=s["client_ca_file"], client_ca=s["client_ca"],
        client_allowed_sans=sans, min_version=versions["min_version"], max_version=versions["max_version"],
        cipher_suites=suites, prefer_server_cipher_suites=prefer,
    )


def _resolve(base: str, name: str) -> str:
    """Relative file names are relative to the web config file, as in the toolkit."""
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(os.path.abspath(base)), name)


def _ssl_context(tls: TLSConfig, path: str) -> ssl.SSLContext:
    p = "tls_server_config."
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.minimum_version = TLS_VERSIONS[tls.min_version]
        ctx.maximum_version = TLS_VERSIONS[tls.max_version]
    except (ValueError, ssl.SSLError) as exc:
        raise _err(path, p + "min_version", f"not available in this OpenSSL: {exc}") from None
    try:
        if tls.cert:
            _load_inline_chain(ctx, tls)
        else:
            ctx.load_cert_chain(_resolve(path, tls.cert_file), _resolve(path, tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise _err(path, p + ("cert" if tls.cert else "cert_file"),
                   f"cannot load the certificate and key: {getattr(exc, 'strerror', None) or exc}") from None
    if tls.client_auth_type != "NoClientCert":
        try:
            if tls.client_ca:
                ctx.load_verify_locations(cadata=tls.client_ca)
            else:
                ctx.load_verify_locations(cafile=_resolve(path, tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise _err(path, p + ("client_ca" if tls.client_ca else "client_ca_file"),
                       f"cannot load the CA: {getattr(exc, 'strerror', None) or exc}") from None
        ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    ciphers = [CIPHER_SUITES[name] for name in tls.cipher_suites if CIPHER_SUITES[name]]
    if ciphers:
        try:
            ctx.set_ciphers(":".join(ciphers))
        except ssl.SSLError:
            raise _err(path, p + "cipher_suites", "none of these suites is available in this OpenSSL") from None
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _load_inline_chain(ctx: ssl.SSLContext, tls: TLSConfig) -> None:
    """ssl only loads certificates from files: write the inline PEM to a private temp dir briefly."""
    with tempfile.TemporaryDirectory(prefix="footprint-tls-") as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for name, text in ((cert, tls.cert), (key, tls.key)):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(text)
        ctx.load_cert_chain(cert, key)


def _users(data: dict[str, Any], path: str) -> dict[str, bytes]:
    users = {}
    for user, hashed in data.items():
        if not isinstance(hashed, str) or not _BCRYPT_RE.match(hashed):
            raise _err(path, f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$10$...)")
        users[user] = hashed.encode("ascii")
    return users


def _headers(data: dict[str, Any], path: str) -> dict[str, str]:
    p = "http_server_config."
    _unknown(data, {"http2", "headers"}, path, p)
    if not isinstance(data.get("http2", True), bool):
        raise _err(path, p + "http2", "expected true or false")
    headers = {}
    for name, value in _mapping(data.get("headers"), path, p + "headers").items():
        if name not in HEADERS:
            raise _err(path, f"{p}headers.{name}", f"not one of {', '.join(HEADERS)}")
        text = _string(value, path, f"{p}headers.{name}")
        if "\r" in text or "\n" in text:
            raise _err(path, f"{p}headers.{name}", "must be one line")
        allowed = HEADERS[name]
        if text and allowed and text.lower() not in allowed:
            raise _err(path, f"{p}headers.{name}", f"expected one of {', '.join(allowed)}")
        if text:
            headers[name] = text
    return headers


def _rate_limit(data: dict[str, Any], path: str) -> RateLimit | None:
    _unknown(data, {"interval", "burst"}, path, "rate_limit.")
    if not data:
        return None
    raw_interval = data.get("interval", "0")
    try:
        if isinstance(raw_interval, (bool, dict, list)):
            raise ValueError(f"expected a duration, got {type(raw_interval).__name__}")
        interval = numbers.bounded(parse_duration(str(raw_interval)), 0, 86400.0)
    except ValueError as exc:
        raise _err(path, "rate_limit.interval", str(exc)) from None
    try:
        burst = int(numbers.bounded(data.get("burst", 0), 0, 1_000_000, integer=True))
    except numbers.NumberError as exc:
        raise _err(path, "rate_limit.burst", f"expected a whole number 0-1000000: {exc}") from None
    if interval <= 0:
        return None  # the toolkit's "0 disables the limiter"
    if burst == 0:
        raise _err(path, "rate_limit.burst", "0 would refuse every request")
    return RateLimit(interval, burst)


# --- enforcement -------------------------------------------------------------------------------------
