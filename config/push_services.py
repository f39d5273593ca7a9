"""Which Web Push endpoints the server will POST to: known push services on public addresses.

A Web Push endpoint is a URL the client hands us, so every check here stands between a
user and a server-side request (SSRF). The rules, in docs/notifications.md#push-services:

- the endpoint is https, on the default port, with no user info or fragment;
- its host is on HOTSPOT_PUSH_SERVICE_HOSTS: an entry matches that host exactly, and an
  entry `*.example.com` matches any host under example.com (not example.com itself);
- IP-literal hosts are refused, and at send time every address a host resolves to must be
  public (no loopback, private, link-local, multicast, reserved or unspecified address,
  also not when wrapped in IPv6: IPv4-mapped, 6to4, NAT64).

HOTSPOT_PUSH_ALLOW_PRIVATE_TARGETS (tests only; refused in production) lets a local push
stand-in through: http, an explicit port, IP-literal hosts and loopback or private
addresses. The host list applies in every mode.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from yarl import URL

if TYPE_CHECKING:
    from config.settings import Settings

# The push services of the browsers in use: Chrome, Edge (Chromium), Opera, Samsung Internet
# and Brave use FCM; Firefox Mozilla's autopush; Safari Apple's; legacy Edge WNS.
DEFAULT_PUSH_SERVICE_HOSTS = (
    "fcm.googleapis.com",
    "*.push.services.mozilla.com",
    "web.push.apple.com",
    "*.notify.windows.com",
)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# A host name, or "*." and a name of at least two labels (no "*.com").
_HOST_PATTERN = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\*\.{_LABEL}(?:\.{_LABEL})+)$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# RFC 6052's well-known NAT64 prefix: the low 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class EndpointRefused(ValueError):
    """A push endpoint or address the server will not send to; reason is a stable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def host_patterns(value: object) -> object:
    """HOTSPOT_PUSH_SERVICE_HOSTS as a list: comma-separated or a JSON array, lower-cased."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            value = json.loads(text)
        else:
            value = text.split(",")
    if not isinstance(value, list | tuple):
        return value
    patterns = [str(part).strip().lower().rstrip(".") for part in value]
    for pattern in patterns:
        if pattern and not _HOST_PATTERN.match(pattern):
            raise ValueError(f"{pattern!r} is not a host name or *.domain pattern")
    return [p for p in patterns if p]


def host_listed(host: str, patterns: tuple[str, ...]) -> bool:
    """Whether a (lower-case) host matches one of the patterns."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def _effective(address: IpAddress) -> IpAddress:
    """The IPv4 address an IPv6 address carries traffic to, if it embeds one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_refusal(address: IpAddress, allow_private: bool) -> str | None:
    """Why the server must not connect to this address (a fixed phrase), or None."""
    address = _effective(address)
    # Order matters: ::1 is also "reserved" and 127.0.0.1 also "private".
    if address.is_unspecified:
        return "unspecified address"
    if address.is_loopback:
        return None if allow_private else "loopback address"
    if address.is_link_local:
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address.is_reserved:
        return "reserved address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "site-local address"
    if address.is_private:
        return None if allow_private else "private address"
    if not address.is_global:
        return "non-public address"
    return None


@dataclass(frozen=True)
class PushTargets:
    """The push service hosts endpoints may name, and whether private addresses are allowed."""

    hosts: tuple[str, ...] = DEFAULT_PUSH_SERVICE_HOSTS
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PushTargets:
        return cls(tuple(settings.push_service_hosts), settings.push_allow_private_targets)

    def check_endpoint(self, endpoint: str) -> URL:
        """The endpoint parsed as the HTTP client will parse it; EndpointRefused if not allowed.

        Parsing with yarl, the parser aiohttp itself uses, leaves no room for a URL that this
        check reads one way and the client connects to another way.
        """
        try:
            url = URL(endpoint)
        except ValueError:
            raise EndpointRefused("url", "must be an absolute URL") from None
        host = url.raw_host
        if not url.absolute or not host:
            raise EndpointRefused("url", "must be an absolute URL")
        if url.raw_user is not None or url.raw_password is not None or url.raw_fragment:
            raise EndpointRefused("url", "must not carry user info or a fragment")
        if url.scheme != "https" and not (self.allow_private and url.scheme == "http"):
            raise EndpointRefused("url_scheme", "must be an https URL")
        if url.explicit_port not in (None, 443) and not self.allow_private:
            raise EndpointRefused("url_port", "must use the default https port")
        literal = _ip_literal(host)
        if literal is not None and not self.allow_private:
            raise EndpointRefused("url_host", "must name a push service by host name, not an "
                                              "IP address")
        if literal is not None and (why := address_refusal(literal, True)) is not None:
            raise EndpointRefused("url_host", f"must not be a {why}")
        if not host_listed(host, self.hosts):
            raise EndpointRefused("url_host", "is not on a known push service; see "
                                              "HOTSPOT_PUSH_SERVICE_HOSTS")
        return url


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
