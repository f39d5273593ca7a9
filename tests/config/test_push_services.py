"""Which Web Push endpoints and addresses the server will send to (config/push_services.py)."""

from __future__ import annotations

import ipaddress
import os

import pytest

from config import SettingsError, load_settings
from config.push_services import (
    DEFAULT_PUSH_SERVICE_HOSTS,
    EndpointRefused,
    PushTargets,
    address_refusal,
    host_listed,
)

DEFAULTS = PushTargets()
# What the tests' local stand-in needs: the test-only setting and 127.0.0.1 on the list.
STANDIN = PushTargets((*DEFAULT_PUSH_SERVICE_HOSTS, "127.0.0.1"), allow_private=True)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HOTSPOT_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("endpoint", [
    "https://fcm.googleapis.com/fcm/send/abc:def",
    "https://fcm.googleapis.com/wp/abc",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
    "https://web.push.apple.com/QGuQyavXut",
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAA",
    "https://FCM.googleapis.com./fcm/send/x",
    "https://fcm.googleapis.com:443/fcm/send/x",
])
def test_known_push_services_are_accepted(endpoint: str) -> None:
    assert DEFAULTS.check_endpoint(endpoint).raw_host is not None


@pytest.mark.parametrize(("endpoint", "reason"), [
    ("http://fcm.googleapis.com/fcm/send/x", "url_scheme"),
    ("ftp://fcm.googleapis.com/x", "url_scheme"),
    ("https://fcm.googleapis.com:8443/fcm/send/x", "url_port"),
    ("https://user:pw@fcm.googleapis.com/fcm/send/x", "url"),
    ("https://fcm.googleapis.com/fcm/send/x#frag", "url"),
    ("https://evil.example/fcm/send/x", "url_host"),
    ("https://fcm.googleapis.com.evil.example/x", "url_host"),
    ("https://evilfcm.googleapis.com/x", "url_host"),
    ("https://push.services.mozilla.com/x", "url_host"),  # "*." needs a subdomain
    ("https://localhost/x", "url_host"),
    ("https://127.0.0.1/x", "url_host"),
    ("https://10.0.0.7/x", "url_host"),
    ("https://169.254.169.254/latest/meta-data", "url_host"),
    ("https://8.8.8.8/x", "url_host"),
    ("https://[::1]/x", "url_host"),
    ("https://[::ffff:127.0.0.1]/x", "url_host"),
    ("https://2130706433/x", "url_host"),
    ("https://0x7f.1/x", "url_host"),
    ("https://evil.example\\@fcm.googleapis.com/x", "url"),
    ("fcm.googleapis.com/fcm/send/x", "url"),
])
def test_other_endpoints_are_refused_by_default(endpoint: str, reason: str) -> None:
    with pytest.raises(EndpointRefused) as refused:
        DEFAULTS.check_endpoint(endpoint)
    assert refused.value.reason == reason


def test_the_test_setting_lets_a_listed_loopback_standin_through_and_nothing_else() -> None:
    assert STANDIN.check_endpoint("http://127.0.0.1:8123/wp/a").port == 8123
    for endpoint in ("http://127.0.0.2:8123/wp/a",  # not listed
                     "https://localhost/wp/a"):
        with pytest.raises(EndpointRefused):
            STANDIN.check_endpoint(endpoint)
    # Even with the test setting: never the cloud metadata address, multicast or 0.0.0.0.
    for host in ("169.254.169.254", "224.0.0.1", "0.0.0.0"):
        targets = PushTargets((host,), allow_private=True)
        with pytest.raises(EndpointRefused) as refused:
            targets.check_endpoint(f"http://{host}/x")
        assert refused.value.reason == "url_host"


def test_host_patterns_match_exactly_or_any_subdomain() -> None:
    patterns = ("fcm.googleapis.com", "*.notify.windows.com")
    assert host_listed("fcm.googleapis.com", patterns)
    assert not host_listed("x.fcm.googleapis.com", patterns)
    assert host_listed("a.b.notify.windows.com", patterns)
    assert not host_listed("notify.windows.com", patterns)
    assert not host_listed("evilnotify.windows.com", patterns)
    assert not host_listed("notify.windows.com.evil.example", patterns)


@pytest.mark.parametrize(("address", "refusal", "with_test_setting"), [
    ("142.250.74.106", None, None),
    ("2a00:1450:4007:80e::200a", None, None),
    ("::ffff:142.250.74.106", None, None),
    ("127.0.0.1", "loopback address", None),
    ("127.8.9.10", "loopback address", None),
    ("::1", "loopback address", None),
    ("::ffff:127.0.0.1", "loopback address", None),
    ("64:ff9b::7f00:1", "loopback address", None),  # NAT64 to 127.0.0.1
    ("2002:7f00:1::", "loopback address", None),  # 6to4 around 127.0.0.1
    ("10.1.2.3", "private address", None),
    ("172.16.0.1", "private address", None),
    ("192.168.1.1", "private address", None),
    ("::ffff:10.0.0.1", "private address", None),
    ("fd12:3456::1", "private address", None),
    ("169.254.169.254", "link-local address", "link-local address"),
    ("fe80::1", "link-local address", "link-local address"),
    ("::ffff:169.254.169.254", "link-local address", "link-local address"),
    ("224.0.0.1", "multicast address", "multicast address"),
    ("239.255.255.250", "multicast address", "multicast address"),
    ("ff02::1", "multicast address", "multicast address"),
    ("0.0.0.0", "unspecified address", "unspecified address"),
    ("::", "unspecified address", "unspecified address"),
    ("240.0.0.1", "reserved address", "reserved address"),
    ("255.255.255.255", "reserved address", "reserved address"),
    ("::127.0.0.1", "reserved address", "reserved address"),  # IPv4-compatible, deprecated
    ("fec0::1", "site-local address", "site-local address"),
    ("100.64.0.1", "non-public address", "non-public address"),  # carrier-grade NAT
])
def test_address_classes(address: str, refusal: str | None, with_test_setting: str | None) -> None:
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, allow_private=False) == refusal
    assert address_refusal(ip, allow_private=True) == with_test_setting


def test_the_host_list_and_the_test_setting_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert tuple(settings.push_service_hosts) == DEFAULT_PUSH_SERVICE_HOSTS
    # Off by default, dev mode included: dev is where the SSRF used to be open.
    assert settings.env == "dev" and settings.push_allow_private_targets is False
    monkeypatch.setenv("HOTSPOT_PUSH_SERVICE_HOSTS", "fcm.googleapis.com, *.Push.Example.")
    assert load_settings().push_service_hosts == ["fcm.googleapis.com", "*.push.example"]
    monkeypatch.setenv("HOTSPOT_PUSH_SERVICE_HOSTS", '["web.push.apple.com"]')
    assert load_settings().push_service_hosts == ["web.push.apple.com"]
    for bad in ("https://fcm.googleapis.com", "*.com", "*", "fcm.googleapis.com/x"):
        monkeypatch.setenv("HOTSPOT_PUSH_SERVICE_HOSTS", bad)
        with pytest.raises(SettingsError, match="HOTSPOT_PUSH_SERVICE_HOSTS"):
            load_settings()


def test_the_test_setting_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTSPOT_PUSH_ALLOW_PRIVATE_TARGETS", "true")
    assert load_settings().push_allow_private_targets is True
    monkeypatch.setenv("HOTSPOT_ENV", "production")
    monkeypatch.setenv("HOTSPOT_JWT_SECRET", "x" * 40)
    with pytest.raises(SettingsError, match="HOTSPOT_PUSH_ALLOW_PRIVATE_TARGETS"):
        load_settings()
