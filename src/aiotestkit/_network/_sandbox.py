"""The network sandbox: unmodified asyncio clients reach only the test's servers.

:class:`NetworkSandbox` patches the running event loop's name resolution and
connection methods (``getaddrinfo``, ``create_connection``, ``sock_connect``), aiohttp's
aiodns resolver and the client side of :meth:`ssl.SSLContext.wrap_bio`, for as long as
it is open. A routed host name resolves to a fake loopback address of its own; a
connection to it, by name or by that address, reaches a gateway (see
:mod:`aiotestkit._gateway`) in front of the route's target. TLS clients of a routed
host get a certificate for that host from the test certificate authority, which
their context trusts for that connection only. Everything else is refused and
recorded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.resolver import AsyncResolver
from aiohttp.test_utils import BaseTestServer, RawTestServer, TestServer

from .._core import (
    CertificateAuthority,
    default_certificate_authority,
    process_listens_on,
    shared_sni_server_context,
)
from .._loop import is_attached, report_issue
from .._servers import CaseControlledWebSocketServer
from ..errors import NameResolutionDenied, NetworkAccessDenied, NetworkSandboxActive
from ._gateway import Dispatch, Gateway, Relay
from ._resolver import _check_port, normalize_host

__all__ = ["BlockedConnection", "NetworkSandbox", "UnverifiedTLSConnection"]

_MISSING = object()
_FAKE_NETWORK = ipaddress.ip_network("127.64.0.0/10")
"""Routed host names resolve to addresses in here: loopback, so nothing escapes."""

_fake_addresses: dict[str, str] = {}
"""Host name -> its fake address, for the whole process: a client that cached an
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
        return address


_active: NetworkSandbox | None = None

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class BlockedConnection:
    """A name resolution or connection that the sandbox refused.

    Attributes:
        host: the host name or address the client asked for.
        port: the port it asked for (0 if a lookup gave none).
        stage: ``"resolve"`` for a name lookup, ``"connect"`` for a connection.
        message: the message of the exception the client got.

    Example:
        >>> [(attempt.host, attempt.port, attempt.stage) for attempt in sandbox.blocked]
        [('api.example.com', 443, 'resolve')]
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
        >>> [(c.host, c.verify_mode.name, c.check_hostname) for c in sandbox.unverified]
        [('api.example.com', 'CERT_NONE', False)]
    """

    host: str
    verify_mode: ssl.VerifyMode
    check_hostname: bool


_TrustSettings = tuple[ssl.VerifyMode, bool, ssl.VerifyFlags, ssl.Options, Any, Any]
_client_contexts: weakref.WeakKeyDictionary[
    CertificateAuthority, dict[_TrustSettings, ssl.SSLContext]
] = weakref.WeakKeyDictionary()


def _trusting_context(authority: CertificateAuthority, like: ssl.SSLContext) -> ssl.SSLContext:
    """A client context that trusts ``authority``, with ``like``'s verification settings."""
    settings: _TrustSettings = (
        like.verify_mode,
        like.check_hostname,
        like.verify_flags,
        like.options,
        like.minimum_version,
        like.maximum_version,
    )
    cache = _client_contexts.setdefault(authority, {})
    context = cache.get(settings)
    if context is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = like.check_hostname
        context.verify_mode = like.verify_mode
        context.verify_flags = like.verify_flags
        context.options = like.options
        context.minimum_version = like.minimum_version
        context.maximum_version = like.maximum_version
        authority.configure_trust(context)
        cache[settings] = context
    return context


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_number(port: object) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii")
    if isinstance(port, str):
        return int(port) if port.isdigit() else socket.getservbyname(port, "tcp")
    if isinstance(port, int):
        return port
    raise TypeError(f"port must be an int, str or None, got {port!r}")


def _route_call(host: str, port: int | None) -> str:
    if port:
        return f"`await sandbox.route({host!r}, {port}, server)`"
    return f"`await sandbox.route({host!r}, 443, server)` (with the port the client uses)"


class _Patches:
    """Attribute patches that restore exactly what was there, instance or class."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []

    def set(self, owner: object, name: str, value: object) -> None:
        self._undo.append((owner, name, vars(owner).get(name, _MISSING)))
        setattr(owner, name, value)

    def restore(self) -> None:
        while self._undo:
            owner, name, previous = self._undo.pop()
            if previous is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, previous)


class NetworkSandbox:
    """Route the running loop's connections to the test's servers; refuse all others.

    While it is open, unmodified client code of any asyncio library (aiohttp with
    its default or aiodns resolver, httpx on anyio, websockets,
    :func:`asyncio.open_connection`) reaches only the targets added with
    :meth:`route`, under their real host names, over verified TLS when the client
    speaks it. Every other name lookup or connection fails as a real network failure
    would (:class:`aiotestkit.NameResolutionDenied`, a :class:`socket.gaierror`, or
    :class:`aiotestkit.NetworkAccessDenied`, an :class:`OSError`) and is recorded in
    :attr:`blocked`. Loopback connections to ports a socket of this process listens
    on (the test's own servers) still work without a route.

    What it patches, all restored by :meth:`close` (also when the test fails or is
    cancelled): the running loop's ``getaddrinfo``, ``create_connection`` and
    ``sock_connect`` (instance attributes), :meth:`aiohttp.resolver.AsyncResolver.resolve`
    and :meth:`ssl.SSLContext.wrap_bio`. Patching costs the same whatever the number
    of routes. Only one sandbox can be open at a time.

    Refused attempts that the test did not declare with :meth:`expect_blocked` are
    reported when the sandbox closes, in the hygiene report of the test (check
    ``refused_connections``) when aiotestkit's hygiene checks run on the loop; call
    :meth:`assert_nothing_blocked` to check them yourself anywhere else.

    Args:
        certificate_authority: issues the certificates routed hosts present and is
            trusted by their clients; :func:`aiotestkit.default_certificate_authority`
            by default.
        allow_blocked: do not report refused attempts when closing (they are still
            recorded in :attr:`blocked`).

    Attributes:
        blocked: every refused lookup or connection, in order
            (:class:`BlockedConnection`).
        unverified: every TLS connection to a routed host whose client had
            certificate or host name verification off (:class:`UnverifiedTLSConnection`).

    Example:
        >>> async with NetworkSandbox() as sandbox, CaseControlledTestServer() as server:
        ...     await sandbox.route("api.kraken.com", 443, server)
        ...     client = SpotAsyncClient()  # builds its own aiohttp session
        ...     task = asyncio.create_task(client.request("GET", "/0/public/Time", auth=False))
        ...     request = await server.receive_request()
        ...     assert request.secure and request.host == "api.kraken.com"
    """

    def __init__(
        self,
        *,
        certificate_authority: CertificateAuthority | None = None,
        allow_blocked: bool = False,
    ) -> None:
        self.certificate_authority = certificate_authority or default_certificate_authority()
        self.allow_blocked = allow_blocked
        self.blocked: list[BlockedConnection] = []
        self.unverified: list[UnverifiedTLSConnection] = []
        self._expected_blocked: list[tuple[str, int | None]] = []
        self._routes: dict[tuple[str, int], Gateway] = {}
        self._routed_ports: dict[str, set[int]] = {}
        self._fake_addresses: dict[str, str] = {}  # routed host name -> fake address
        self._gateways: dict[tuple[object, bool | None], tuple[Gateway, object]] = {}
        self._owned_servers: list[BaseTestServer | CaseControlledWebSocketServer] = []
        self._started_for: dict[int, BaseTestServer] = {}  # id(app or handler) -> its server
        self._local_ports: set[int] = set()
        self._patches = _Patches()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._original_getaddrinfo: Callable[..., Awaitable[Any]]
        self._original_create_connection: Callable[..., Awaitable[Any]]
        self._original_sock_connect: Callable[..., Awaitable[None]]

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._loop else "not open"
        return f"<NetworkSandbox {state}, {len(self._routes)} route(s)>"

    # -- life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Start routing the running loop's connections. ``async with`` calls this.

        Raises:
            aiotestkit.NetworkSandboxActive: (a :class:`RuntimeError`) if another
                sandbox is open.
            RuntimeError: if this sandbox was opened before.

        Example:
            >>> sandbox = NetworkSandbox()
            >>> await sandbox.open()
        """
        global _active
        if self._loop is not None or self._closed:
            raise RuntimeError(f"{self!r} cannot be opened twice; create a new one")
        if _active is not None:
            raise NetworkSandboxActive(
                f"cannot open a network sandbox while {_active!r} is open: two sandboxes "
                "would mix their routes. Close the first one, or use its route() "
                "(the network_sandbox fixture yields the one open for the test)"
            )
        loop = asyncio.get_running_loop()
        self._original_getaddrinfo = loop.getaddrinfo
        self._original_create_connection = loop.create_connection
        self._original_sock_connect = loop.sock_connect
        _active = self
        self._loop = loop
        try:
            self._install(loop)
        except BaseException:
            self._patches.restore()
            _active = None
            raise

    def _install(self, loop: asyncio.AbstractEventLoop) -> None:
        sandbox = self
        original_wrap_bio = ssl.SSLContext.wrap_bio

        def wrap_bio(
            context: ssl.SSLContext,
            incoming: ssl.MemoryBIO,
            outgoing: ssl.MemoryBIO,
            server_side: bool = False,
            server_hostname: str | bytes | None = None,
            session: ssl.SSLSession | None = None,
        ) -> ssl.SSLObject:
            if not server_side and server_hostname is not None and session is None:
                context = sandbox._client_context(context, server_hostname)
            return original_wrap_bio(
                context, incoming, outgoing, server_side, server_hostname, session
            )

        async def resolve(
            resolver: AsyncResolver,
            host: str,
            port: int = 0,
            family: socket.AddressFamily = socket.AF_INET,
        ) -> list[ResolveResult]:
            infos = await sandbox._getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
            return [
                ResolveResult(
                    hostname=host,
                    host=info[4][0],
                    port=info[4][1],
                    family=info[0],
                    proto=info[2],
                    flags=socket.AI_NUMERICHOST,
                )
                for info in infos
            ]

        self._patches.set(loop, "getaddrinfo", self._getaddrinfo)
        self._patches.set(loop, "create_connection", self._create_connection)
        self._patches.set(loop, "sock_connect", self._sock_connect)
        self._patches.set(ssl.SSLContext, "wrap_bio", wrap_bio)
        self._patches.set(AsyncResolver, "resolve", resolve)

    async def close(self) -> None:
        """Restore what the sandbox patched, close its gateways and the servers it started.

        The patches are undone first, whatever happens after. Calling it again
        does nothing.

        Example:
            >>> await sandbox.close()
        """
        global _active
        if self._closed:
            return
        self._closed = True
        try:
            self._patches.restore()
        finally:
            if _active is self:
                _active = None
        gateways = [gateway for gateway, _ in self._gateways.values()]
        self._gateways.clear()
        for gateway in gateways:
            await gateway.close()
        for server in reversed(self._owned_servers):
            await server.close()
        if not self.allow_blocked and is_attached(self._loop):
            for attempt in self._unexpected_blocked():
                report_issue("refused_connections", attempt.message, loop=self._loop)

    async def __aenter__(self) -> NetworkSandbox:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self, action: str) -> asyncio.AbstractEventLoop:
        if self._closed or self._loop is None:
            state = "closed" if self._closed else "not open"
            raise RuntimeError(
                f"cannot {action}: {self!r} is {state}; use 'async with NetworkSandbox()' "
                "or the network_sandbox fixture"
            )
        return self._loop

    # -- routes ---------------------------------------------------------------------

    async def route(
        self,
        host: str | bytes,
        port: int,
        target: Any,
        *,
        tls: bool | None = None,
    ) -> Any:
        """Send connections for ``host:port`` to ``target`` from now on.

        Clients keep using ``host`` for everything they do: the ``Host`` header,
        TLS server name and certificate check. Over TLS they get a certificate for
        ``host`` issued by the sandbox's authority, which they trust for this
        connection, whatever their SSL context; their verification settings are
        kept. One target can serve many routes.

        Args:
            host: the host name (or IP address) clients use, str or bytes;
                compared case-insensitively, IDNA forms accepted.
            port: the TCP port clients use (int, 1-65535), e.g. 443 for ``https://``.
            target: where the connections go:

                - an aiohttp test server (:class:`aiotestkit.CaseControlledTestServer`,
                  :class:`aiohttp.test_utils.TestServer`, ...); started if it is
                  not, and then closed with the sandbox;
                - an :class:`aiohttp.web.Application` or a request handler
                  (``async def handler(request)``): the sandbox serves it and closes
                  that server when it closes;
                - a ``(host, port)`` pair or a Unix socket path (str or
                  :class:`os.PathLike`): bytes are relayed unchanged.
            tls: whether clients of this route speak TLS, which the sandbox then ends
                in front of a plain target. ``None`` (default) decides for each
                connection from the client's first byte for HTTP servers, and
                relays the bytes unchanged for addresses. ``True`` always ends TLS;
                ``False`` never does. A server that serves HTTPS itself gets the
                client's TLS as it is.

        Returns:
            The server that serves the route: ``target`` itself for servers and
            addresses, the started :class:`aiohttp.test_utils.BaseTestServer` for an
            application or a handler.

        Raises:
            TypeError: if ``host``, ``port``, ``tls`` or ``target`` has the wrong type.
            ValueError: if ``port`` is out of range, ``host`` is not a valid name,
                ``host:port`` is routed already, or ``tls=False`` with a server that
                serves HTTPS.
            RuntimeError: if the sandbox is not open.

        Example:
            >>> server = await sandbox.route("api.kraken.com", 443, kraken_app)
            >>> await sandbox.route("uploads.example.com", 443, ("127.0.0.1", 8443))
        """
        self._check_open("add a route")
        name = normalize_host(host)
        _check_port("port", port)
        if tls is not None and not isinstance(tls, bool):
            raise TypeError(f"tls must be True, False or None, got {tls!r}")
        if (name, port) in self._routes:
            raise ValueError(
                f"{name}:{port} is routed already, to {self._routes[name, port]!r}; "
                "each host and port takes one route"
            )
        gateway, server = await self._gateway_for(target, tls)
        self._routes[name, port] = gateway
        self._routed_ports.setdefault(name, set()).add(port)
        if not _is_ip(name):
            self._fake_addresses[name] = _fake_address(name)
        return server

    async def _gateway_for(self, target: Any, tls: bool | None) -> tuple[Gateway, object]:
        key: tuple[object, bool | None] = (_target_key(target), tls)
        known = self._gateways.get(key)
        if known is not None:
            return known
        if isinstance(target, CaseControlledWebSocketServer):
            # It holds the HTTP server that takes its connections: route that one.
            if not target.started:
                await target.start_server()
                self._owned_servers.append(target)
            gateway, _ = await self._gateway_for(target.http, tls)
            del self._gateways[_target_key(target.http), tls]  # one entry per gateway
            self._gateways[key] = (gateway, target)
            return gateway, target
        loop = asyncio.get_running_loop()
        server_context = shared_sni_server_context(self.certificate_authority)
        server: object = self._started_for.get(id(target), target)
        if isinstance(server, BaseTestServer):
            pass
        elif isinstance(target, web.Application):
            server = self._started_for[id(target)] = TestServer(target)
            pass
        elif isinstance(target, tuple):
            address = _check_address(target)
            gateway = Gateway(
                Relay(lambda factory: self._original_create_connection(factory, *address)),
                tls=bool(tls),
                server_context=server_context,
                description=f"{address[0]}:{address[1]}",
            )
            self._gateways[key] = (gateway, target)
            return gateway, target
        elif isinstance(target, (str, os.PathLike)):
            path = os.fspath(target)
            gateway = Gateway(
                Relay(lambda factory: loop.create_unix_connection(factory, path)),
                tls=bool(tls),
                server_context=server_context,
                description=f"unix:{path}",
            )
            self._gateways[key] = (gateway, target)
            return gateway, target
        elif callable(target):
            server = self._started_for[id(target)] = RawTestServer(target)
        else:
            raise TypeError(
                "target must be an aiohttp test server, an aiohttp.web.Application, a request "
                f"handler, a (host, port) pair or a Unix socket path, got {type(target).__name__}"
            )
        assert isinstance(server, BaseTestServer)
        if not server.started:
            await server.start_server()
            self._owned_servers.append(server)
        assert server.port is not None
        if server.scheme == "https":
            if tls is False:
                raise ValueError(
                    f"{server!r} serves HTTPS itself, so its clients must speak TLS: "
                    "route it with tls=None or tls=True, or route a plain-HTTP server"
                )
            host, port = server.host, server.port
            gateway = Gateway(
                Relay(lambda factory: self._original_create_connection(factory, host, port)),
                tls=False,
                server_context=server_context,
                description=repr(server),
            )
        else:
            gateway = Gateway(
                Dispatch(server.handler),
                tls=tls,
                server_context=server_context,
                description=repr(server),
            )
        self._gateways[key] = (gateway, server)
        return gateway, server

    # -- decisions ------------------------------------------------------------------

    def _refuse(
        self, host: str, port: int, why: str, stage: Literal["resolve", "connect"]
    ) -> NetworkAccessDenied:
        if stage == "resolve":
            message = (
                f"name resolution of {host} refused by the network sandbox: {why}; "
                f"route a test server for it with {_route_call(host, port)}"
            )
            error: NetworkAccessDenied = NameResolutionDenied(message, host=host, port=port)
        else:
            message = (
                f"connection to {host}:{port} refused by the network sandbox: {why}; "
                f"route a test server there with {_route_call(host, port)}"
            )
            error = NetworkAccessDenied(message, host=host, port=port)
        self.blocked.append(BlockedConnection(host, port, stage, message))
        return error

    def _destination(self, host: str | bytes, port: int) -> Gateway | None:
        """The gateway for ``host:port``, ``None`` to connect as asked; raises if refused."""
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            raise self._refuse(
                repr(host), port, "it is not a valid host name", "connect"
            ) from None
        name = _fake_hosts.get(name, name)
        gateway = self._routes.get((name, port))
        if gateway is not None:
            return gateway
        routed_ports = self._routed_ports.get(name)
        if routed_ports:
            ports = ", ".join(str(p) for p in sorted(routed_ports))
            raise self._refuse(name, port, f"{name} is routed on port(s) {ports} only", "connect")
        if _is_loopback(name):
            if port in self._local_ports or process_listens_on(port):
                self._local_ports.add(port)
                return None
            raise self._refuse(
                name,
                port,
                "no socket of this test process listens on that loopback port",
                "connect",
            )
        raise self._refuse(name, port, "no test server is routed there", "connect")

    def _client_context(
        self, context: ssl.SSLContext, server_hostname: str | bytes
    ) -> ssl.SSLContext:
        try:
            name = normalize_host(server_hostname)
        except (TypeError, ValueError):
            return context
        if name not in self._routed_ports:
            return context
        if context.verify_mode == ssl.CERT_NONE or not context.check_hostname:
            self.unverified.append(
                UnverifiedTLSConnection(name, context.verify_mode, context.check_hostname)
            )
        return _trusting_context(self.certificate_authority, context)

    # -- the loop's patched methods -------------------------------------------------

    async def _getaddrinfo(
        self,
        host: str | bytes | None,
        port: str | bytes | int | None,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        original = self._original_getaddrinfo
        if host is None:
            return list(
                await original(host, port, family=family, type=type, proto=proto, flags=flags)
            )
        number = _port_number(port)
        try:
            name = normalize_host(host)
        except (TypeError, ValueError):
            raise self._refuse(
                repr(host), number, "it is not a valid host name", "resolve"
            ) from None
        fake = self._fake_addresses.get(name)
        if fake is not None:
            return [
                (
                    socket.AF_INET,
                    type or socket.SOCK_STREAM,
                    proto or socket.IPPROTO_TCP,
                    "",
                    (fake, number),
                )
            ]
        if _is_ip(name) or name == "localhost":
            return list(
                await original(host, port, family=family, type=type, proto=proto, flags=flags)
            )
        raise self._refuse(name, number, "no test server is routed for it", "resolve")

    async def _create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        ssl: Any = None,
        server_hostname: str | None = None,
        sock: socket.socket | None = None,
        family: int = 0,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        original = self._original_create_connection
        if sock is None and host is not None and port is not None:
            gateway = self._destination(host, port)
            if gateway is not None:
                if ssl and server_hostname is None:
                    server_hostname = host
                host, port = gateway.address
                family = socket.AF_INET
        result: tuple[asyncio.BaseTransport, asyncio.BaseProtocol] = await original(
            protocol_factory,
            host,
            port,
            ssl=ssl,
            server_hostname=server_hostname,
            sock=sock,
            family=family,
            **kwargs,
        )
        return result

    async def _sock_connect(self, sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            gateway = self._destination(address[0], _port_number(address[1]))
            if gateway is not None:
                host, port = gateway.address
                address = (
                    (host, port) if sock.family == socket.AF_INET else (f"::ffff:{host}", port)
                )
        await self._original_sock_connect(sock, address)

    # -- checks ---------------------------------------------------------------------

    def expect_blocked(self, host: str | bytes, port: int | None = None) -> None:
        """Declare that refused attempts to ``host`` (on ``port``, or any) are expected.

        :meth:`assert_nothing_blocked` then ignores them.

        Args:
            host: the host name or address (str or bytes).
            port: the port (int); ``None`` for any port and for name lookups.

        Raises:
            TypeError, ValueError: if ``host`` or ``port`` is not valid.

        Example:
            >>> sandbox.expect_blocked("telemetry.example.com")
        """
        if port is not None:
            _check_port("port", port)
        self._expected_blocked.append((normalize_host(host), port))

    def _is_expected(self, attempt: BlockedConnection) -> bool:
        try:
            host = normalize_host(attempt.host)
        except (TypeError, ValueError):
            host = attempt.host
        return any(
            host == expected and port in (None, attempt.port)
            for expected, port in self._expected_blocked
        )

    def _unexpected_blocked(self) -> list[BlockedConnection]:
        return [attempt for attempt in self.blocked if not self._is_expected(attempt)]

    def assert_nothing_blocked(self) -> None:
        """Check that the sandbox refused nothing the test did not expect.

        Client libraries often swallow connection errors (retry, fall back, log), so
        a refused connection may not fail the test by itself; this check does. The
        ``network_sandbox`` fixture calls it when the test ends.

        Raises:
            AssertionError: if there were refused attempts not declared with
                :meth:`expect_blocked`; the message lists each of them.

        Example:
            >>> sandbox.assert_nothing_blocked()
        """
        unexpected = self._unexpected_blocked()
        if unexpected:
            listed = "\n".join(f"  - {attempt.message}" for attempt in unexpected)
            raise AssertionError(
                f"the network sandbox refused {len(unexpected)} attempt(s) to reach the "
                f"network:\n{listed}\nRoute each host the code needs, or declare the refusals "
                "expected with sandbox.expect_blocked(host, port) or the marker "
                "@pytest.mark.network_sandbox(allow_blocked=True)."
            )

    def assert_tls_verified(self) -> None:
        """Check that every TLS client of a routed host verified the server's certificate.

        Raises:
            AssertionError: if a client connected with ``verify_mode`` ``CERT_NONE``
                or ``check_hostname`` off; the message names each host and setting.

        Example:
            >>> await client.fetch("https://api.example.com/")
            >>> sandbox.assert_tls_verified()
        """
        if self.unverified:
            listed = "\n".join(
                f"  - {c.host}: verify_mode={c.verify_mode.name}, "
                f"check_hostname={c.check_hostname}"
                for c in self.unverified
            )
            raise AssertionError(
                f"{len(self.unverified)} TLS connection(s) did not verify the server's "
                f"certificate:\n{listed}\nA client that skips verification accepts any "
                "server; keep verify_mode=CERT_REQUIRED and check_hostname=True."
            )


def _target_key(target: object) -> object:
    if isinstance(target, tuple):
        return ("tcp", *target)
    if isinstance(target, (str, os.PathLike)):
        return ("unix", os.fspath(target))
    return id(target)


def _check_address(target: tuple[Any, ...]) -> tuple[str, int]:
    if len(target) != 2 or not isinstance(target[0], str):
        raise TypeError(f"an address target must be a (host, port) pair, got {target!r}")
    return target[0], _check_port("target port", target[1])
