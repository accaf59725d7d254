"""Which webhook targets the gateway may call (server-side request forgery guard).

A partner chooses its webhook URL, and the gateway runs inside the bank's network: unchecked,
a URL such as `https://10.0.0.5/admin` or `http://169.254.169.254/` would turn the dispatcher
against internal systems. Targets must resolve only to globally routable unicast addresses
(IPv4 and IPv6; IPv6 forms that embed an IPv4 address are judged by that address). The check
runs when an endpoint is created or changed, again before each delivery (DNS can change), and a
connection-level guard (`adapters.http`) re-checks the address actually connected to, which
defeats DNS rebinding between the check and the connect.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
MAX_URL_LENGTH = 2048


class TargetRejected(Exception):
    """A URL or address the gateway will not call; `code` is stable, `reason` is partner-safe."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (A and AAAA), as the connecting code would see them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: str | IPAddress) -> str | None:
    """Why the gateway must not connect to `address`, or None if it is a public unicast one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "is a local-use translated address"
        if ip.teredo is not None:
            return "is a Teredo tunnel address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return forbidden_reason(embedded)
    checks = (
        (ip.is_unspecified, "is unspecified"),
        (ip.is_loopback, "is a loopback address"),
        (ip.is_link_local, "is a link-local address"),
        (ip.is_multicast, "is a multicast address"),
        (ip.is_reserved, "is a reserved address"),
        (ip.is_private, "is a private address"),
        (not ip.is_global, "is not globally routable"),
    )
    for failed, reason in checks:
        if failed:
            return reason
    return None


@dataclass(frozen=True)
class TargetPolicy:
    """What this deployment allows; production keeps both switches off."""

    allow_http: bool = False
    allow_private: bool = False
    resolver: Resolver = system_resolver

    def check_url(self, url: str) -> SplitResult:
        """Validate the form of an endpoint URL (no DNS); returns it split."""
        if len(url) > MAX_URL_LENGTH:
            raise TargetRejected("webhook_url_invalid", "The URL is too long")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise TargetRejected("webhook_url_invalid", "The URL is not valid") from None
        allowed = ("https", "http") if self.allow_http else ("https",)
        if parts.scheme not in allowed:
            raise TargetRejected("webhook_url_not_https", "The URL must use https://")
        if not parts.hostname:
            raise TargetRejected("webhook_url_invalid", "The URL has no host")
        if parts.username is not None or parts.password is not None:
            raise TargetRejected(
                "webhook_url_invalid", "The URL must not contain credentials (user:password@)"
            )
        if parts.fragment:
            raise TargetRejected("webhook_url_invalid", "The URL must not contain a fragment")
        if port == 0:
            raise TargetRejected("webhook_url_invalid", "The URL has an invalid port")
        if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
            raise TargetRejected("webhook_url_invalid", "The URL contains whitespace")
        return parts

    def check_address(self, address: str) -> None:
        """Refuse an address the gateway must not connect to (the connection-level guard)."""
        if self.allow_private:
            return
        reason = forbidden_reason(address)
        if reason is not None:
            raise TargetRejected(
                "webhook_target_forbidden",
                f"The URL's host resolves to an address that {reason}",
            )

    def check_target(self, url: str) -> list[str]:
        """Full check: URL form, DNS resolution, and every resolved address."""
        parts = self.check_url(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError):
            raise TargetRejected(
                "webhook_url_unresolvable", "The URL's host name does not resolve"
            ) from None
        if not addresses:
            raise TargetRejected("webhook_url_unresolvable", "The URL's host name does not resolve")
        for address in addresses:
            self.check_address(address)
        return addresses
