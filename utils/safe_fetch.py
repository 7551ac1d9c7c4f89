"""Fetching a URL on a model's or a search result's behalf, safe from server-side request forgery.

Every URL Parley fetches for someone else (a search result, a page a tool asks for) goes through
``fetch``:

- only ``http`` and ``https``;
- the host is resolved here, and every address it resolves to is checked: loopback, private
  (RFC 1918), link-local (169.254.0.0/16, where cloud metadata lives, and fe80::/10), carrier-grade
  NAT (100.64.0.0/10), unique-local IPv6 (fc00::/7), unspecified, multicast and reserved addresses
  are refused, and an IPv6 address that embeds an IPv4 one is judged by that one;
- the connection goes to the address that was checked (the URL's host is kept for the ``Host``
  header and TLS's server name), so a second DNS answer cannot swap it (DNS rebinding);
- redirects are followed here, at most ``MAX_REDIRECTS``, each hop checked the same way;
- the body is read up to ``max_bytes`` (the rest is not read) and the whole fetch ends after
  ``timeout`` seconds.

``FetchPolicy`` holds the exceptions: ``PARLEY_FETCH_ALLOW`` lists hosts (``intranet.example``),
host and port pairs (``127.0.0.1:8080``) or networks in CIDR form (``10.1.0.0/16``) that may be
fetched although they are internal; the configured SearXNG is always allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

#: Largest body read by default, in bytes (2 MB); the rest of a larger page is not read.
MAX_BYTES = 2 * 1024 * 1024
#: Seconds one fetch may take by default, redirects and reading included.
TIMEOUT_SECONDS = 10.0
#: Redirects followed before giving up.
MAX_REDIRECTS = 5
#: Networks no fetch may reach unless allowed (see the module docstring).
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this" network, unspecified
        "10.0.0.0/8",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",  # RFC 1918
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",  # RFC 1918
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)
#: What is sent as the User-Agent.
USER_AGENT = "Parley/1.0 (+local chat app; fetches pages for its user's question)"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchRefused(Exception):
    """A URL was not fetched; ``str(error)`` is the reason, e.g. "a private address (10.0.0.5)"."""


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched besides the public internet.

    Attributes:
        hosts: host names or addresses allowed on any port (lower case).
        host_ports: ``(host, port)`` pairs allowed.
        networks: networks whose addresses are allowed.
    """

    hosts: frozenset[str] = frozenset()
    host_ports: frozenset[tuple[str, int]] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> FetchPolicy:
        """The policy of ``PARLEY_FETCH_ALLOW``'s entries and of allowed URLs.

        Args:
            entries: each a host, ``host:port``, a CIDR network, or a URL (its host and port).

        Raises:
            ValueError: an entry is none of these.
        """
        hosts, pairs, networks = set(), set(), []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if "://" in entry:
                parts = urlsplit(entry)
                if not parts.hostname:
                    raise ValueError(f"{raw!r} has no host")
                pairs.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
            elif "/" in entry:
                networks.append(ipaddress.ip_network(entry, strict=False))
            elif entry.count(":") == 1:
                host, port = entry.split(":")
                pairs.add((host, int(port)))
            else:
                hosts.add(entry.strip("[]"))
        return cls(frozenset(hosts), frozenset(pairs), tuple(networks))

    @classmethod
    def from_text(cls, text: str | None, *always: str | None) -> FetchPolicy:
        """The policy of a comma-separated ``PARLEY_FETCH_ALLOW`` plus the URLs ``always`` (e.g. the
        configured SearXNG); None entries are skipped.

        Raises:
            ValueError: an entry is not a host, ``host:port``, network or URL.
        """
        return cls.from_entries([*(text or "").split(","), *(a for a in always if a)])

    def allows(self, host: str, port: int, address: Address) -> bool:
        """True when ``host`` (as written in the URL) on ``port``, resolved to ``address``, is allowed."""
        names = {host.lower(), str(address)}
        if names & self.hosts or any((name, port) in self.host_ports for name in names):
            return True
        return any(address in network for network in self.networks if network.version == address.version)


def blocked_reason(address: Address) -> str | None:
    """Why ``address`` may not be fetched, or None when it is public.

    An IPv4-mapped or 6to4/NAT64-style IPv6 address is judged by the IPv4 address in it.
    """
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is not None:
            return blocked_reason(inner)
    for network in BLOCKED_NETWORKS:
        if network.version == address.version and address in network:
            return f"{_kind(address)} ({address})"
    return None


def _kind(address: Address) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return "a carrier-grade NAT address"
    return "a private address"


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for there."""

    url: str
    scheme: str
    host: str
    port: int
    address: Address

    def connect_url(self) -> str:
        """The URL with the checked address in place of the host name."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        path = parts.path or "/"
        return f"{self.scheme}://{ip}:{self.port}{path}" + (f"?{parts.query}" if parts.query else "")

    def host_header(self) -> str:
        """The ``Host`` header: the URL's host, with its port when not the scheme's default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def resolve(host: str, port: int) -> list[Address]:
    """The addresses ``host`` resolves to (an address is itself), by the system's resolver.

    Raises:
        FetchRefused: the name does not resolve.
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchRefused(f"the host name {host!r} does not resolve") from exc
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def check_url(url: str, policy: FetchPolicy) -> Target:
    """Check ``url`` as the module docstring says and return where to connect.

    Raises:
        FetchRefused: not http(s), no host, a name that does not resolve, or an address (any of
            those the name resolves to) that is internal and not allowed; the text says which.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused("not a valid URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"only http and https are fetched, not {scheme or 'a URL without a scheme'}")
    host = (parts.hostname or "").lower()
    if not host:
        raise FetchRefused("the URL has no host")
    port = port or (443 if scheme == "https" else 80)
    addresses = resolve(host, port)
    if not addresses:
        raise FetchRefused(f"the host name {host!r} does not resolve")
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None and not policy.allows(host, port, address):
            return _refuse(host, address, reason)
    return Target(url, scheme, host, port, addresses[0])


def _refuse(host: str, address: Address, reason: str) -> Target:
    named = "" if host == str(address) else f"{host} is "
    raise FetchRefused(f"{named}{reason}, which Parley does not fetch (PARLEY_FETCH_ALLOW can allow it)")


@dataclass(frozen=True)
class Fetched:
    """A page that was fetched.

    Attributes:
        url: the URL asked for.
        final_url: the URL the body came from, after redirects.
        status: its HTTP status.
        content_type: its media type, lower case, without parameters (e.g. ``text/html``), or "".
        charset: the charset its ``Content-Type`` names, or None.
        body: the body, at most ``max_bytes``.
        truncated: True when the body was longer and only its start was read.
    """

    url: str
    final_url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    truncated: bool


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every fetch shares (certificates verified): making one costs ~30 ms, a
    client on it well under 1 ms."""
    return httpx.create_ssl_context()


def hop_client() -> httpx.Client:
    """A client for one hop: no redirects followed by itself, no proxy from the environment. One per
    hop, so a TLS connection verified for one host name is never reused for another at the same
    address."""
    return httpx.Client(follow_redirects=False, trust_env=False, verify=tls_context())


def fetch(
    url: str,
    policy: FetchPolicy,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
    client: httpx.Client | None = None,
) -> Fetched:
    """GET ``url`` safely (see the module docstring).

    Args:
        url: what to fetch.
        policy: the internal hosts allowed.
        max_bytes: most bytes of body read.
        timeout: seconds the whole fetch may take.
        client: an httpx client that does not follow redirects (for every hop); None makes one per hop.

    Returns:
        the Fetched page (any status: the caller judges it).

    Raises:
        FetchRefused: a hop was refused, there were too many redirects, the time ran out, or the
            server could not be reached; the text says which.
    """
    deadline = time.monotonic() + timeout
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = check_url(current, policy)
        hop = client or hop_client()
        try:
            response = _get(hop, target, deadline)
            try:
                location = response.headers.get("location")
                if response.is_redirect and location:
                    current = urljoin(current, location)
                    continue
                return _read(url, current, response, max_bytes, deadline)
            finally:
                response.close()
        finally:
            if client is None:
                hop.close()
    raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")


def _get(client: httpx.Client, target: Target, deadline: float) -> httpx.Response:
    """Send the GET to the checked address and return the streaming response.

    Raises:
        FetchRefused: the time ran out or the server could not be reached.
    """
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused("it took longer than the time allowed")
    request = client.build_request(
        "GET",
        target.connect_url(),
        headers={
            "Host": target.host_header(),
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",  # a compressed body could unpack far past max_bytes at once
        },
        timeout=httpx.Timeout(left),
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )
    try:
        return client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise FetchRefused("it took longer than the time allowed") from exc
    except httpx.HTTPError as exc:
        raise FetchRefused(f"it could not be reached ({type(exc).__name__})") from exc


def _read(url: str, final_url: str, response: httpx.Response, max_bytes: int, deadline: float) -> Fetched:
    """Read at most ``max_bytes`` of ``response`` before ``deadline``.

    Raises:
        FetchRefused: the time ran out or the connection broke.
    """
    chunks, size, truncated = [], 0, False
    try:
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise FetchRefused("it took longer than the time allowed")
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:  # one byte past the limit says there is more
                truncated = True
                break
    except httpx.TimeoutException as exc:
        raise FetchRefused("it took longer than the time allowed") from exc
    except httpx.HTTPError as exc:
        raise FetchRefused(f"the connection broke ({type(exc).__name__})") from exc
    media = response.headers.get("content-type", "")
    content_type = media.split(";")[0].strip().lower()
    return Fetched(
        url=url,
        final_url=final_url,
        status=response.status_code,
        content_type=content_type,
        charset=response.charset_encoding,
        body=b"".join(chunks)[:max_bytes],
        truncated=truncated,
    )
