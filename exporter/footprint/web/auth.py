"""Enforcing the web config on each connection: client certificate SANs, basic auth (bcrypt, bounded
and rate limited per client network) and the request rate limit. Parsing the file is webconfig.py's job."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import bcrypt

from footprint.web.webconfig import RateLimit


def allowed_san(cert: Mapping[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """Whether a verified client certificate (ssl's getpeercert()) names one of `allowed` exactly."""
    if not allowed:
        return True
    if not cert:
        return False
    want = {_normal(v) for v in allowed}
    return any(_normal(value) in want for _kind, value in cert.get("subjectAltName", ()))


def _normal(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value.strip()


def client_network(address: str) -> str:
    """Who a failed login is charged to: the IPv4 address, or the IPv6 /64 (one host's usual share;
    per address, one host could rotate through 2^64 of them). IPv4 seen on a dual-stack socket
    (::ffff:a.b.c.d) counts as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class BasicAuth:
    """bcrypt-checked basic auth with a small cache of verified credentials and a per-client budget
    for failures.

    bcrypt is slow on purpose (tens of ms); paying it on every scrape would make auth the exporter's
    main cost and a cheap way to burn its CPU. Verified credentials are remembered as a keyed hash
    (never the password), so a repeat scrape costs one HMAC. At most `parallel` bcrypt checks run at
    once, so a flood of wrong passwords cannot take every core; and each client network may have at
    most FAILURE_BURST uncached checks outstanding or failed, earning one back every
    FAILURE_WAIT_SECONDS, so that flood cannot queue in front of the real scraper either: past its
    budget a client gets "limited" (429) without any bcrypt work. A good credential refunds its check.
    Unknown users still cost one bcrypt check, so timing does not tell which users exist.
    """

    CACHE_SIZE = 256
    FAILURE_BURST = 5
    FAILURE_WAIT_SECONDS = 2
    MAX_CLIENTS = 4096  # failure budgets remembered (oldest forgotten first)

    def __init__(self, users: Mapping[str, bytes], parallel: int = 2) -> None:
        self.users = dict(users)
        self.verifications = 0  # bcrypt checks made (tests and debugging)
        self._key = secrets.token_bytes(32)
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()
        self._bcrypt = threading.BoundedSemaphore(parallel)
        self._decoy = next(iter(self.users.values()), b"")
        self._budgets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def _take(self, client: str) -> bool:
        """Reserve one uncached check for `client`; False when its failure budget is spent."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._budgets.pop(client, (float(self.FAILURE_BURST), now))
            tokens = min(float(self.FAILURE_BURST), tokens + (now - at) / self.FAILURE_WAIT_SECONDS)
            ok = tokens >= 1.0
            self._budgets[client] = (tokens - 1.0 if ok else tokens, now)
            while len(self._budgets) > self.MAX_CLIENTS:
                self._budgets.popitem(last=False)
        return ok

    def _refund(self, client: str) -> None:
        with self._lock:
            tokens, at = self._budgets.get(client, (0.0, time.monotonic()))
            self._budgets[client] = (min(float(self.FAILURE_BURST), tokens + 1.0), at)

    def check(self, header: str | None, client: str = "") -> str:
        """"ok" when the Authorization header carries a configured user and the right password (or no
        users are configured), "limited" when `client` spent its failure budget, else "denied"."""
        if not self.users:
            return "ok"
        creds = _parse_basic(header)
        if creds is None:
            return "denied"
        user, password = creds
        hashed = self.users.get(user)
        token = hmac.new(self._key, b"\0".join((user.encode(), password, hashed or b"")), hashlib.sha256).digest()
        with self._lock:
            if hashed is not None and token in self._ok:
                return "ok"
        if not self._take(client):
            return "limited"
        with self._bcrypt:
            self.verifications += 1
            try:
                good = bcrypt.checkpw(password, hashed or self._decoy)
            except ValueError:  # > 72 bytes, NUL bytes: bcrypt refuses, and so do we
                good = False
        if not good or hashed is None:
            return "denied"
        self._refund(client)
        with self._lock:
            if len(self._ok) >= self.CACHE_SIZE:
                self._ok.clear()
            self._ok.add(token)
        return "ok"


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


class TokenBucket:
    """The toolkit's rate_limit: `burst` requests at once, refilled at one per `interval`."""

    def __init__(self, limit: RateLimit) -> None:
        self.rate = 1.0 / limit.interval
        self.burst = float(limit.burst)
        self._tokens = self.burst
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False
