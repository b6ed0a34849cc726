"""The server-side request forgery guard: which URLs TokenForge may call or publish.

:func:`resolve_public` refuses a URL whose host is, or resolves to, an address that is not
on the public internet, and returns the addresses it checked, so the caller connects to
one of *those* and not to whatever a second lookup answers (DNS rebinding). Refused:

* loopback (127/8, ::1), unspecified (0.0.0.0, ::), private (RFC 1918, fc00::/7 ULA),
  link-local (169.254/16 with the cloud metadata address 169.254.169.254, fe80::/10),
  shared CGNAT space (100.64/10), multicast, broadcast, documentation, benchmarking and
  other reserved ranges: everything :mod:`ipaddress` does not call global, and multicast;
* IPv6 forms that carry such an IPv4 address: IPv4-mapped (``::ffff:127.0.0.1``),
  IPv4-compatible (``::127.0.0.1``), 6to4 (``2002::/16``), Teredo and NAT64
  (``64:ff9b::/96``);
* names that mean this machine or the cloud's metadata service whatever DNS says:
  ``localhost``, ``*.localhost``, ``metadata.google.internal``, ``metadata``,
  ``instance-data``;
* URLs with userinfo (``user:pass@host``): a credential must never sit in a URL that is
  stored, shown or logged; schemes other than http and https.

Every address a name resolves to (``getaddrinfo``, IPv4 and IPv6) must pass, so a name
with one public and one private address is refused. Numeric IPv4 spellings the resolver
accepts (``127.1``, ``2130706433``, ``0x7f.0.0.1``) are read as the address they mean.

``allowed_networks`` (``Settings.outbound_allowed_networks``, CIDRs) lets a deployment
reach receivers on its own network (tests: ``127.0.0.1/32``); an address inside one of
them passes whatever its kind.

A refusal is :class:`UnsafeUrl`, a :class:`~tokenforge.errors.ValidationFailed` naming
``field`` (422 in the API) with code ``unsafe_url``, whose message says which address and why; a name that does
not resolve raises :class:`UnresolvableHost` (a ``TransientError``: DNS may answer later).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from tokenforge.errors import ErrorCode, TransientError, ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``: how names are resolved (tests replace :data:`resolver`).
Resolver = Callable[[str, int], Awaitable[list[str]]]

#: Names refused whatever they resolve to (compared lower-case, without a trailing dot).
BLOCKED_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata", "instance-data"})
BLOCKED_SUFFIXES = (".localhost",)
#: How long one lookup may take by default.
RESOLVE_TIMEOUT_S = 2.0

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_METADATA = ipaddress.ip_address("169.254.169.254")
#: What the resolver reads as an IPv4 address although it is not dotted-quad (inet_aton).
_NUMERIC_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")


class UnsafeUrl(ValidationFailed):
    """A URL TokenForge will not call or publish (see the module docstring)."""

    code = ErrorCode.UNSAFE_URL


class UnresolvableHost(TransientError):
    """The URL's host name has no address now (DNS down, or no such name)."""

    def __init__(self, field: str, host: str) -> None:
        super().__init__(f"{field}: host {host} does not resolve", code=ErrorCode.TRANSIENT)
        self.field = field
        self.host = host


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect and what to name in ``Host`` and TLS SNI."""

    url: str
    scheme: str
    host: str
    port: int
    #: The path with its query (at least ``/``).
    target: str
    #: Every address the host resolved to, each one checked.
    addresses: tuple[str, ...]

    def url_for(self, address: str) -> str:
        """The URL with ``address`` in place of the host name."""
        literal = f"[{address}]" if ":" in address else address
        return f"{self.scheme}://{literal}:{self.port}{self.target}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """``outbound_allowed_networks`` as networks; raises ``ValueError`` for a bad CIDR."""
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not public (``None``: it is)."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip == _METADATA:
        return "cloud metadata"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return "shared address space (CGNAT)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "private (unique local)"
    if ip.is_private and not ip.is_reserved:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def refusal(ip: IPAddress, allowed: Iterable[Network] = ()) -> str | None:
    """Why connecting to ``ip`` is refused, or ``None`` when it is allowed."""
    allowed = tuple(allowed)
    inner = _embedded_v4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if any(ip in n for n in allowed) or (inner is not None and any(inner in n for n in allowed)):
        return None
    if inner is not None:
        why = _kind(inner)
        if why is not None:
            return f"{why}, inside an IPv6 address"
    return _kind(ip)


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one (any spelling the resolver accepts)."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (TCP, IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


#: The resolver :func:`resolve_public` uses when none is given.
resolver: Resolver = system_resolver


def split_url(url: str, *, field: str) -> tuple[SplitResult, str, int]:
    """The URL's parts, its lower-case host (no brackets, no trailing dot) and its port;
    refuses other schemes, userinfo, a missing host and a bad port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed(field, "is not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValidationFailed(field, "must be an http or https URL")
    if "@" in parts.netloc:
        raise UnsafeUrl(field, "must not contain a user name or password (user:pass@)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ValidationFailed(field, "must name a host")
    return parts, host, port if port is not None else (443 if scheme == "https" else 80)


def _check_name(host: str, *, field: str) -> None:
    if host in BLOCKED_NAMES or host.endswith(BLOCKED_SUFFIXES):
        raise UnsafeUrl(field, f"host {host} is not on the public internet")


async def resolve_public(
    url: str,
    *,
    field: str,
    allowed_networks: Iterable[Network | str] = (),
    timeout_s: float = RESOLVE_TIMEOUT_S,
    resolve: Resolver | None = None,
) -> Target:
    """Check ``url`` and resolve its host; every address must be public or allowed.

    Raises :class:`ValidationFailed` (naming ``field``; :class:`UnsafeUrl` for an address
    or name that is not public, or userinfo) for a refused URL,
    :class:`UnresolvableHost` when the name has no address within ``timeout_s``."""
    parts, host, port = split_url(url, field=field)
    allowed = tuple(ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n for n in allowed_networks)
    literal = literal_address(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        _check_name(host, field=field)
        try:
            async with asyncio.timeout(timeout_s):
                addresses = await (resolve or resolver)(host, port)
        except (OSError, TimeoutError, UnicodeError):
            raise UnresolvableHost(field, host) from None
        if not addresses:
            raise UnresolvableHost(field, host)
    for address in addresses:
        ip = literal_address(address)
        why = "not an IP address" if ip is None else refusal(ip, allowed)
        if why is not None:
            shown = host if literal is not None else f"{host} resolves to {address}, which"
            raise UnsafeUrl(field, f"{shown} is {why}: not on the public internet")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Target(url, parts.scheme.lower(), host, port, target, tuple(addresses))


class _LinkHosts:
    """Addresses (or None: no answer) of the link hosts looked up in the last ``ttl_s``,
    so launches naming the same hosts (``x.com``, ``t.me``) do not each wait for DNS in
    the request. Only launch links use it: a webhook delivery resolves every time."""

    def __init__(self, ttl_s: float = 60.0, max_hosts: int = 10_000) -> None:
        self.ttl_s, self.max_hosts = ttl_s, max_hosts
        self._hosts: dict[str, tuple[list[str] | None, float]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        now = time.monotonic()
        known = self._hosts.get(host)
        if known is None or now - known[1] > self.ttl_s:
            try:
                async with asyncio.timeout(LINK_RESOLVE_TIMEOUT_S):
                    addresses: list[str] | None = await resolver(host, port)
            except (OSError, TimeoutError, UnicodeError):
                addresses = None
            if len(self._hosts) >= self.max_hosts:
                self._hosts.clear()
            known = self._hosts[host] = (addresses, now)
        if not known[0]:
            raise OSError(f"{host} does not resolve")
        return known[0]

    def clear(self) -> None:
        self._hosts.clear()


#: How long a launch waits for a link host's addresses.
LINK_RESOLVE_TIMEOUT_S = 1.0
LINK_HOSTS = _LinkHosts()


async def check_link(url: str | None, *, field: str, allowed_networks: Iterable[Network | str] = ()) -> None:
    """Check a link a launch publishes (``image_url``, ``website``, ...): refuse userinfo,
    IP literals that are not public and names that resolve to addresses that are not.

    A name that does not resolve (no DNS here, or a typo) is accepted: TokenForge does not
    fetch these links when it accepts them, and whatever fetches one later must check it
    again at that moment (:func:`resolve_public`), so refusing it now would only refuse
    launches whenever DNS is down. Host lookups are remembered for a minute
    (:data:`LINK_HOSTS`)."""
    if not url:
        return
    try:
        await resolve_public(url, field=field, allowed_networks=allowed_networks, resolve=LINK_HOSTS.resolve)
    except UnresolvableHost:
        return


async def check_links(links: Mapping[str, str | None], *, allowed_networks: Iterable[Network | str] = ()) -> None:
    """:func:`check_link` for each ``field -> URL`` of ``links``, looked up concurrently;
    the first refused field (in ``links`` order) is raised."""
    allowed = tuple(allowed_networks)
    given = [(f, u) for f, u in links.items() if u]
    results = await asyncio.gather(
        *(check_link(u, field=f, allowed_networks=allowed) for f, u in given), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
