"""Which callbacks the hub may call: no loopback, private, link-local or metadata addresses.

A hub makes HTTP requests to URLs that strangers give it, which makes it a tool for reaching
what sits behind it (server-side request forgery): the cloud metadata service at
169.254.169.254, a database on 10.0.0.5, the admin port on 127.0.0.1. So every callback is
checked after DNS resolution, when the subscription is requested and again before every request
to it, and the request then goes to the very address that was checked (the connection is pinned
to it, with the original ``Host`` and TLS server name), so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot slip through.

Only globally routable addresses pass, plus the networks of ``WebSubSettings.allow_networks``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx

from .settings import WebSubSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


#: Host names whose checked address is remembered at once; expired ones are dropped beyond.
_CHECKED_HOSTS = 10_000
#: Seconds an IP literal's verdict is remembered (it changes only with the settings).
_LITERAL_SECONDS = 3600.0


class CallbackRefused(ValueError):
    """The callback is not one this hub calls; the message says why, for the subscriber."""


@dataclass(frozen=True)
class PinnedRequest:
    """A request to a checked address: the URL names the IP, headers keep the host name."""

    url: httpx.URL
    headers: dict[str, str]
    extensions: dict[str, str]


def decode_unreserved(url: str) -> str:
    """Decode percent-encoded unreserved characters, as WebSub 5.1.1 requires of hubs.

    ``https://a.example/%7Euser`` and ``https://a.example/~user`` are the same callback.
    """

    def replace(match: re.Match[str]) -> str:
        character = chr(int(match.group(1), 16))
        return character if character in _UNRESERVED_CHARACTERS else match.group(0)

    return _UNRESERVED.sub(replace, url)


def describe(address: IPAddress) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if address.is_private:
        return "a private address"
    if address.is_multicast:
        return "a multicast address"
    return "an address that is not publicly routable"


#: IPv6 networks whose last 32 bits carry an IPv4 address that traffic ends up at: NAT64
#: (RFC 6052's well-known prefix and RFC 8215's local-use prefix), IPv4-translated (RFC 2765)
#: and the deprecated IPv4-compatible form (``::a.b.c.d``, RFC 4291).
_LOW_32_BITS_EMBED = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it embeds one.

    IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 (``64:ff9b::/96``,
    ``64:ff9b:1::/48``), 6to4 (``2002::/16``) and Teredo (``2001::/32``, the client) addresses
    all end up at an IPv4 host, so that host is what the hub must judge: ``[::7f00:1]`` and
    ``[64:ff9b::7f00:1]`` are 127.0.0.1 in disguise.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) > 1 and any(address in net for net in _LOW_32_BITS_EMBED):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _unwrap(address: IPAddress) -> IPAddress:
    """The address traffic to ``address`` reaches: the embedded IPv4 one, if there is one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return inner
    return address


class CallbackGuard:
    """Checks callback URLs against the hub's policy, and pins requests to checked addresses."""

    def __init__(self, settings: WebSubSettings) -> None:
        self.settings = settings
        #: (host, port) -> (first checked address, loop time it is trusted until).
        self._checked: dict[tuple[str, int], tuple[IPAddress, float]] = {}

    def parse(self, callback: str) -> httpx.URL:
        """The callback as a URL, or :class:`CallbackRefused` if it is not an http(s) URL."""
        if len(callback) > self.settings.max_callback_length:
            raise CallbackRefused(
                f"hub.callback is longer than {self.settings.max_callback_length} characters."
            )
        try:
            url = httpx.URL(callback)
        except (httpx.InvalidURL, ValueError) as exc:
            raise CallbackRefused(f"hub.callback is not a valid URL: {exc}.") from None
        if url.scheme not in ("http", "https"):
            raise CallbackRefused("hub.callback must be an http:// or https:// URL.")
        if not url.host:
            raise CallbackRefused("hub.callback must name a host.")
        return url

    def allowed(self, address: IPAddress) -> bool:
        inner = _unwrap(address)
        if any(inner in net or address in net for net in self.settings.networks):
            return True
        return inner.is_global and not inner.is_multicast

    async def resolve(self, url: httpx.URL) -> list[IPAddress]:
        """Every address the callback's host resolves to; all of them must be allowed."""
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                url.host, port, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise CallbackRefused(
                f"hub.callback host {url.host!r} does not resolve: {exc}."
            ) from None
        addresses: list[IPAddress] = []
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        for address in addresses:
            self._refuse_unless_allowed(url.host, address)
        if not addresses:
            raise CallbackRefused(f"hub.callback host {url.host!r} has no address.")
        return addresses

    def _refuse_unless_allowed(self, host: str, address: IPAddress) -> None:
        if not self.allowed(address):
            raise CallbackRefused(
                f"hub.callback host {host!r} resolves to {address}, "
                f"{describe(_unwrap(address))}; "
                "this hub does not call such addresses."
            )

    async def checked_address(self, url: httpx.URL) -> IPAddress:
        """The address a delivery to ``url`` goes to, checked: the host itself when it is an
        IP literal, else the first address of a resolution at most ``address_cache_seconds``
        old whose every address passed. Raises :class:`CallbackRefused`."""
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        now = asyncio.get_running_loop().time()
        cached = self._checked.get((host, port))
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self._refuse_unless_allowed(host, literal)
            # An IP literal's verdict holds as long as the settings do.
            self._remember(host, port, literal, now + _LITERAL_SECONDS)
            return literal
        address = (await self.resolve(url))[0]
        if self.settings.address_cache_seconds > 0:
            self._remember(host, port, address, now + self.settings.address_cache_seconds)
        return address

    def _remember(self, host: str, port: int, address: IPAddress, until: float) -> None:
        checked = self._checked
        if len(checked) >= _CHECKED_HOSTS:
            now = asyncio.get_running_loop().time()
            checked = self._checked = {k: v for k, v in checked.items() if v[1] > now}
            if len(checked) >= _CHECKED_HOSTS:
                checked.clear()
        checked[(host, port)] = (address, until)

    async def check(self, callback: str) -> httpx.URL:
        """Parse and resolve ``callback``; raise :class:`CallbackRefused` if it may not be used."""
        url = self.parse(callback)
        await self.resolve(url)
        return url

    async def pin(self, url: httpx.URL) -> PinnedRequest:
        """Resolve and check now, and aim the request at the first checked address."""
        address = (await self.resolve(url))[0]
        host_header = url.netloc.decode("ascii")
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        return PinnedRequest(url.copy_with(host=str(address)), {"Host": host_header}, extensions)
