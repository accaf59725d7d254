"""Outgoing HTTP: one way to build a pooled `requests.Session` with safe defaults.

Every adapter (providers, webhooks) builds its session here so they share the same rules:
connection pooling sized for the thread count, no retries inside urllib3 (retry decisions are
made once, by the caller's policy, so a money-moving POST is never silently re-sent), no proxy
or cookie settings picked up from the environment, and, where the caller asks for it, a guard
that vets the address of every new connection (used against SSRF and DNS rebinding).
Timeouts are explicit on every call: `Timeouts(connect, read).as_requests()`.
"""

from __future__ import annotations

import http.cookiejar
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

# Called with the peer IP of each new connection; raises to refuse it.
AddressGuard = Callable[[str], None]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Servers we call must not be able to plant state that is replayed to later calls."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _guarded_pools(guard: AddressGuard) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes whose connections check the connected peer before any byte is sent."""

    def checked(sock: socket.socket) -> socket.socket:
        try:
            guard(str(sock.getpeername()[0]))
        except BaseException:
            sock.close()
            raise
        return sock

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn())

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return checked(super()._new_conn())

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    return {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}


class _Adapter(HTTPAdapter):
    def __init__(self, *, pool_size: int, guard: AddressGuard | None) -> None:
        self._guard = guard
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        if self._guard is not None:
            self.poolmanager.pool_classes_by_scheme = _guarded_pools(self._guard)


def new_session(
    *,
    user_agent: str,
    pool_size: int = 10,
    address_guard: AddressGuard | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Session:
    """A pooled session: no env proxies/netrc, no cookies, no urllib3 retries.

    Pass `timeout=` and `allow_redirects=` explicitly on every request made with it.
    """
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    session.headers.update({"User-Agent": user_agent, **(headers or {})})
    adapter = _Adapter(pool_size=pool_size, guard=address_guard)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
