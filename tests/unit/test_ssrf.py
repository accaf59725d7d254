"""The SSRF guard: which addresses and URLs a webhook may target."""

from __future__ import annotations

import pytest

from gateway.security.ssrf import TargetPolicy, TargetRejected, forbidden_reason

FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("10.0.0.5", "private"),
    ("10.255.255.255", "private"),
    ("172.16.3.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.10", "private"),  # TEST-NET-1
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("fc00::1", "private"),  # unique local, fc00::/7
    ("fd12:3456:789a::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "private"),  # documentation
    ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"]


@pytest.mark.parametrize(("address", "why"), FORBIDDEN)
def test_forbidden_addresses(address: str, why: str) -> None:
    reason = forbidden_reason(address)
    assert reason is not None and why in reason
    with pytest.raises(TargetRejected) as caught:
        TargetPolicy().check_address(address)
    assert caught.value.code == "webhook_target_forbidden"


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(address) is None
    TargetPolicy().check_address(address)


def test_the_private_switch_allows_everything() -> None:
    for address, _why in FORBIDDEN:
        TargetPolicy(allow_private=True).check_address(address)


def _resolving_to(*addresses: str) -> TargetPolicy:
    return TargetPolicy(resolver=lambda host, port: list(addresses))


def test_a_hostname_resolving_to_loopback_is_refused() -> None:
    # The real resolver: `localhost` is loopback on every machine (no network needed).
    with pytest.raises(TargetRejected, match="loopback"):
        TargetPolicy().check_target("https://localhost/hooks")
    with pytest.raises(TargetRejected, match="loopback"):
        _resolving_to("127.0.0.1").check_target("https://hooks.partner.example/in")


def test_one_bad_address_among_several_is_enough_to_refuse() -> None:
    policy = _resolving_to("93.184.216.34", "10.0.0.7")
    with pytest.raises(TargetRejected, match="private"):
        policy.check_target("https://hooks.partner.example/in")


def test_public_targets_pass_and_return_their_addresses() -> None:
    policy = _resolving_to("93.184.216.34")
    assert policy.check_target("https://hooks.partner.example:8443/in?x=1") == ["93.184.216.34"]


def test_unresolvable_hosts_are_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(TargetRejected) as caught:
        TargetPolicy(resolver=fail).check_target("https://nowhere.invalid/")
    assert caught.value.code == "webhook_url_unresolvable"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://hooks.partner.example/in", "webhook_url_not_https"),
        ("ftp://hooks.partner.example/in", "webhook_url_not_https"),
        ("hooks.partner.example/in", "webhook_url_not_https"),
        ("https:///in", "webhook_url_invalid"),
        ("https://user:pw@hooks.partner.example/in", "webhook_url_invalid"),
        ("https://hooks.partner.example/in#frag", "webhook_url_invalid"),
        ("https://hooks.partner.example:99999/in", "webhook_url_invalid"),
        ("https://hooks.partner.example/in put", "webhook_url_invalid"),
        ("https://hooks.partner.example/" + "a" * 2100, "webhook_url_invalid"),
    ],
)
def test_malformed_or_insecure_urls_are_refused(url: str, code: str) -> None:
    with pytest.raises(TargetRejected) as caught:
        _resolving_to("93.184.216.34").check_target(url)
    assert caught.value.code == code


def test_http_only_when_allowed() -> None:
    policy = TargetPolicy(allow_http=True, resolver=lambda host, port: ["93.184.216.34"])
    policy.check_target("http://hooks.partner.example/in")
