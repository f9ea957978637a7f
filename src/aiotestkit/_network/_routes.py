"""The network sandbox's route table: where each host and port go, and what was refused.

:class:`RouteTable` holds the decisions of a :class:`aiotestkit.NetworkSandbox`, apart
from the patching that makes clients ask it: which ``(host, port)`` is routed to
which gateway, the fake addresses routed host names resolve to (IPv4 in
``127.64.0.0/10``, IPv6 as the same addresses IPv4-mapped, loopback both), which
loopback ports belong to this process, which TLS client contexts to trust the test
authority with, and the record of every refused lookup and connection. Every
entry point that asks it (the loop's methods, blocking sockets in any thread, a
proxy) gets the same answers and lands in the same record; its methods may be
called from any thread.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import trustme

from .._core import process_listens_on
from ..errors import NameResolutionDenied, NetworkAccessDenied
from ._client_tls import ChainRecorder, trusting_context
from ._gateway import Gateway, is_idle_port
from ._resolver import _check_port, normalize_host

__all__ = [
    "BlockedConnection",
    "Route",
    "RouteTable",
    "UnverifiedTLSConnection",
    "fake_host",
    "is_loopback",
    "port_number",
    "route_call",
]

_FAKE_NETWORK = ipaddress.ip_network("127.64.0.0/10")
"""Routed host names resolve to addresses in here: loopback, so nothing escapes."""

_GATEWAY_HOSTS = frozenset({"127.0.0.1", "::ffff:7f00:1"})
"""A gateway's address as :func:`normalize_host` gives it, IPv4 and IPv4-mapped."""

_fake_addresses: dict[str, str] = {}
"""Host name -> its fake IPv4 address, for the whole process: a client that cached an
address (aiohttp's DNS cache, a long-lived session) never reaches another host
through it in a later sandbox."""
_fake_hosts: dict[str, str] = {}
_fake_lock = threading.Lock()


def _fake_address(host: str) -> str:
    with _fake_lock:
        address = _fake_addresses.get(host)
        if address is None:
            address = str(_FAKE_NETWORK[len(_fake_addresses) + 1])
            _fake_addresses[host] = address
            _fake_hosts[address] = host
            _fake_hosts[f"::ffff:{address}"] = host
            # normalize_host() gives IPv4-mapped addresses in ipaddress's form: ::ffff:7f40:1
            _fake_hosts[str(ipaddress.ip_address(f"::ffff:{address}"))] = host
        return address


def fake_host(address: str) -> str:
    """The host name whose fake address (IPv4 or IPv4-mapped IPv6) is ``address``.

    Any other ``address`` comes back unchanged.
    """
    return _fake_hosts.get(address, address)


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str) -> bool:
    """Whether ``host`` (normalized) is ``localhost`` or a loopback address, IPv4-mapped too.

    Cached: a routed test asks about the same few names (parsing a name that is not
    an address raises twice inside :mod:`ipaddress`).
    """
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@functools.lru_cache(maxsize=1024)
def _is_ip(host: str) -> bool:
    """Whether ``host`` (normalized) is an IP address; cached as :func:`is_loopback`."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def port_number(port: object) -> int:
    """The port of a lookup or address as an int: ``None`` is 0, service names are looked up."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if isinstance(port, str):
        return int(port) if port.isdigit() else socket.getservbyname(port, "tcp")
    if isinstance(port, int):
        return port
    raise TypeError(f"port must be an int, str or None, got {port!r}")


def route_call(host: str, port: int | None) -> str:
    """The ``route(...)`` call that would let a client reach ``host:port``."""
    if port:
        return f"`await sandbox.route({host!r}, {port}, server)`"
    return f"`await sandbox.route({host!r}, 443, server)` (with the port the client uses)"


@dataclass(frozen=True)
class BlockedConnection:
    """A name resolution or connection that the sandbox refused.

    Attributes:
        host: the host name or address the client asked for.
        port: the port it asked for (0 if a lookup gave none).
        stage: ``"resolve"`` for a name lookup, ``"connect"`` for a connection.
        message: the message of the exception the client got.

    Example:
        ```python
        attempts = [(attempt.host, attempt.port, attempt.stage) for attempt in sandbox.blocked]
        assert attempts == [("api.example.com", 443, "resolve")]
        ```
    """

    host: str
    port: int
    stage: Literal["resolve", "connect"]
    message: str


@dataclass(frozen=True)
class UnverifiedTLSConnection:
    """A TLS connection to a routed host whose client did not verify the certificate.

    Attributes:
        host: the server name the client gave.
        verify_mode: the client context's :attr:`ssl.SSLContext.verify_mode`.
        check_hostname: the client context's :attr:`ssl.SSLContext.check_hostname`.

    Example:
        ```python
        seen = [(c.host, c.verify_mode.name, c.check_hostname) for c in sandbox.unverified]
        assert seen == [("api.example.com", "CERT_NONE", False)]
        ```
    """

    host: str
    verify_mode: ssl.VerifyMode
    check_hostname: bool


class Route:
    """One routed ``(host, port)``: the gateway its clients connect to.

    Attributes:
        host: the normalized host name (or address) clients use.
        port: the port clients use.
        gateway: the sandbox's gateway in front of the target.
    """

    __slots__ = ("gateway", "host", "port")

    def __init__(self, host: str, port: int, gateway: Gateway) -> None:
        self.host = host
        self.port = port
        self.gateway = gateway

    def __repr__(self) -> str:
        return f"<Route {self.host}:{self.port} via {self.gateway!r}>"

    @property
    def address(self) -> tuple[str, int]:
        """The ``(ip, port)`` on ``127.0.0.1`` that a client of this route connects to."""
        return self.gateway.address


RefusalListener = Callable[[BlockedConnection, bool], None]
"""Told of every refusal, with whether the test declared it expected."""


class RouteTable:
    """The routes of one sandbox and the record of what it refused. Thread-safe.

    Args:
        certificate_authority: the authority routed hosts' certificates come from.
        on_refusal: called with each refusal as it is recorded, and whether the
            test declared it expected; from the thread that was refused.

    Attributes:
        blocked: every refused lookup or connection, in order.
        unverified: every TLS client of a routed host that did not verify.
    """

    def __init__(
        self,
        certificate_authority: trustme.CA,
        *,
        on_refusal: RefusalListener | None = None,
    ) -> None:
        self.certificate_authority = certificate_authority
        self.blocked: list[BlockedConnection] = []
        self.unverified: list[UnverifiedTLSConnection] = []
        self.chains = ChainRecorder()
        """Records the certificate chains clients load while the sandbox is open."""
        self._on_refusal = on_refusal
        self._routes: dict[tuple[str, int], Route] = {}
        self._ports: dict[str, set[int]] = {}
        self._fake: dict[str, str] = {}  # routed host name -> its fake IPv4 address
        self._expected: list[tuple[str, int | None]] = []
        self._local_ports: set[int] = set()
        self._gateway_ports: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._routes)

    # -- routes ---------------------------------------------------------------------

    def add(self, host: str | bytes, port: int, gateway: Gateway) -> Route:
        """Route ``host:port`` to ``gateway``.

        Raises:
            TypeError, ValueError: if ``host`` or ``port`` is not valid, or
                ``host:port`` is routed already.
        """
        name = normalize_host(host)
        _check_port("port", port)
        with self._lock:
            known = self._routes.get((name, port))
            if known is not None:
                raise ValueError(
                    f"{name}:{port} is routed already, to {known.gateway!r}; "
                    "each host and port takes one route"
                )
            route = self._routes[name, port] = Route(name, port, gateway)
            self._gateway_ports.add(gateway.address[1])
            self._ports.setdefault(name, set()).add(port)
            if not _is_ip(name):
                self._fake[name] = _fake_address(name)
        return route

    def get(self, host: str | bytes, port: int) -> Route | None:
        """The route of ``host:port`` (a name, an address or a fake address), if any."""
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            return None
        return self._routes.get((fake_host(name), port))

    def routes(self) -> list[Route]:
        """Every route, in the order they were added."""
        return list(self._routes.values())

    def is_routed(self, host: str | bytes) -> bool:
        """Whether ``host`` (a name or a fake address) is routed on some port."""
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            return False
        return fake_host(name) in self._ports

    def fake_address(self, host: str | bytes) -> str | None:
        """The fake IPv4 address that routed host name ``host`` resolves to, else ``None``."""
        try:
            return self._fake.get(normalize_host(host))
        except (TypeError, ValueError):
            return None

    # -- decisions ------------------------------------------------------------------

    def resolve(
        self,
        host: str | bytes,
        port: object,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
    ) -> list[tuple[Any, ...]] | None:
        """Answer a lookup as ``getaddrinfo`` does, or ``None`` to resolve it for real.

        A routed host name gets its fake address: IPv4 for ``AF_INET`` and for
        ``AF_UNSPEC`` (one address, as a host with only an ``A`` record resolves; a
        dual-stack client then connects at once, without a happy-eyeballs race
        between two addresses of the same endpoint), the same address IPv4-mapped
        for ``AF_INET6``. IP addresses and ``localhost`` are left to the real
        resolver (``None``).

        Raises:
            aiotestkit.NameResolutionDenied: for any other name, after recording it.
        """
        number = port_number(port)
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            raise self.refuse(
                repr(host), number, "it is not a valid host name", "resolve"
            ) from None
        fake = self._fake.get(name)
        if fake is None:
            if _is_ip(name) or name == "localhost":
                return None
            raise self.refuse(name, number, "no test server is routed for it", "resolve")
        kind = type or socket.SOCK_STREAM
        protocol = proto or socket.IPPROTO_TCP
        infos: list[tuple[Any, ...]] = []
        if family in (socket.AF_INET, socket.AF_UNSPEC):
            infos.append((socket.AF_INET, kind, protocol, "", (fake, number)))
        elif family == socket.AF_INET6:
            infos.append((socket.AF_INET6, kind, protocol, "", (f"::ffff:{fake}", number, 0, 0)))
        if not infos:
            raise self.refuse(
                name,
                number,
                f"it is routed for TCP over IPv4 and IPv6, not family {family}",
                "resolve",
            )
        return infos

    def destination(self, host: str | bytes, port: int) -> Route | None:
        """The route a connection to ``host:port`` takes; ``None`` to connect as asked.

        ``None`` means one of this table's gateways, or a loopback port that a socket
        of this process listens on (the test's own servers; an idle gateway socket
        does not count).

        Raises:
            aiotestkit.NetworkAccessDenied: for anything else, after recording it:
                a host that is not routed (on that port), a route whose target
                has closed, a loopback port no socket of this process listens on.
        """
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            raise self.refuse(repr(host), port, "it is not a valid host name", "connect") from None
        name = fake_host(name)
        route = self._routes.get((name, port))
        if route is not None:
            closed = route.gateway.target_closed()
            if closed:
                raise self.refuse(
                    name,
                    port,
                    f"the route's target {closed} has closed, so the host is down; keep "
                    "the server open while its clients need it, or route another one with",
                    "connect",
                    fix=False,
                )
            return route
        routed_ports = self._ports.get(name)
        if routed_ports:
            ports = ", ".join(str(p) for p in sorted(routed_ports))
            raise self.refuse(name, port, f"{name} is routed on port(s) {ports} only", "connect")
        if port in self._gateway_ports and name in _GATEWAY_HOSTS:
            return None  # a connection already sent to a gateway (by create_connection)
        if is_loopback(name):
            if port in self._local_ports or (not is_idle_port(port) and process_listens_on(port)):
                self._local_ports.add(port)
                return None
            raise self.refuse(
                name,
                port,
                "no socket of this test process listens on that loopback port",
                "connect",
            )
        raise self.refuse(name, port, "no test server is routed there", "connect")

    def refuse(
        self,
        host: str,
        port: int,
        why: str,
        stage: Literal["resolve", "connect"],
        *,
        fix: bool = True,
    ) -> NetworkAccessDenied:
        """Record a refusal and return the error for the client (the caller raises it).

        Args:
            host: the host (or address) asked for.
            port: the port asked for (0 for a lookup without one).
            why: why it is refused, a clause.
            stage: ``"resolve"`` or ``"connect"``.
            fix: end the message with "route a test server there with ...";
                ``False`` when ``why`` ends in a sentence of its own that the
                ``route(...)`` call completes.

        Returns:
            A :class:`aiotestkit.NameResolutionDenied` for a lookup, else a
            :class:`aiotestkit.NetworkAccessDenied`.
        """
        where = "for it" if stage == "resolve" else "there"
        call = route_call(host, port)
        tail = f"; route a test server {where} with {call}" if fix else f" {call}"
        if stage == "resolve":
            message = f"name resolution of {host} refused by the network sandbox: {why}{tail}"
            error: NetworkAccessDenied = NameResolutionDenied(message, host=host, port=port)
        else:
            message = f"connection to {host}:{port} refused by the network sandbox: {why}{tail}"
            error = NetworkAccessDenied(message, host=host, port=port)
        attempt = BlockedConnection(host, port, stage, message)
        with self._lock:
            self.blocked.append(attempt)
            expected = self._is_expected(attempt)
        if self._on_refusal is not None:
            self._on_refusal(attempt, expected)
        return error

    def client_context(
        self, context: ssl.SSLContext, server_hostname: str | bytes | None
    ) -> ssl.SSLContext | None:
        """The context to swap into a TLS client's connection to ``server_hostname``.

        ``None`` if the host is not routed (the client's own context applies).
        Otherwise a context that trusts the test authority and presents the
        certificate chain ``context`` loaded (if :attr:`chains` saw it); a client
        that does not verify is recorded in :attr:`unverified`. Wrap the
        connection with the client's own ``context``, then swap this one in
        before the handshake (``ssl_object.context = ...``): the client's ALPN
        protocols, server name and verification settings stay as they are.
        """
        if server_hostname is None:
            return None
        try:
            name = normalize_host(server_hostname)
        except (TypeError, ValueError):
            return None
        if name not in self._ports:
            return None
        if context.verify_mode == ssl.CERT_NONE or not context.check_hostname:
            with self._lock:
                self.unverified.append(
                    UnverifiedTLSConnection(name, context.verify_mode, context.check_hostname)
                )
        return trusting_context(self.certificate_authority, self.chains.chain_of(context))

    # -- expectations ---------------------------------------------------------------

    def expect(self, host: str | bytes, port: int | None = None) -> None:
        """Declare refused attempts to ``host`` (on ``port``, or any) expected.

        Raises:
            TypeError, ValueError: if ``host`` or ``port`` is not valid.
        """
        if port is not None:
            _check_port("port", port)
        with self._lock:
            self._expected.append((normalize_host(host), port))

    def _is_expected(self, attempt: BlockedConnection) -> bool:
        try:
            host = normalize_host(attempt.host)
        except (TypeError, ValueError):
            host = attempt.host
        return any(
            host == expected and port in (None, attempt.port) for expected, port in self._expected
        )

    def unexpected(self) -> list[BlockedConnection]:
        """The refusals not declared with :meth:`expect`, in order."""
        with self._lock:
            return [attempt for attempt in self.blocked if not self._is_expected(attempt)]
