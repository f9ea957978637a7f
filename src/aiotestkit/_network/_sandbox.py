"""The network sandbox: unmodified asyncio clients reach only the test's servers.

:class:`NetworkSandbox` patches the running event loop's name resolution and
connection methods (``getaddrinfo``, ``create_connection``, ``sock_connect``), aiohttp's
aiodns resolver and the client side of :meth:`ssl.SSLContext.wrap_bio`, and the
blocking ``socket``/``ssl`` entry points for threads (see :mod:`._blocking`), for as
long as it is open, and asks its :class:`~aiotestkit._network._routes.RouteTable` what
to do with each lookup and connection. A routed host name resolves to a fake loopback
address of its own; a connection to it, by name or by that address, reaches a
gateway (see :mod:`aiotestkit._network._gateway`) in front of the route's target.
TLS clients of a routed host get a certificate for that host from the test
certificate authority, which their context trusts for that connection only.
Everything else is refused and recorded.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from types import TracebackType
from typing import Any

import trustme
from aiohttp import web
from aiohttp.abc import ResolveResult
from aiohttp.resolver import AsyncResolver
from aiohttp.test_utils import BaseTestServer, RawTestServer, TestServer

from .._core import (
    default_certificate_authority,
    patch_methods,
    record_hint,
    record_refusal,
    reset_refusals,
)
from .._loop import is_attached, report_issue
from .._servers import CaseControlledStreamServer, CaseControlledWebSocketServer
from ..errors import NetworkSandboxActive
from ._blocking import BlockingSockets, checked_already
from ._client_tls import sni_server_context_with_alpn
from ._gateway import Dispatch, Gateway, Relay
from ._proxy import HTTPProxy
from ._resolver import _check_port, normalize_host
from ._routes import (
    BlockedConnection,
    RouteTable,
    UnverifiedTLSConnection,
    fake_host,
    is_loopback,
    port_number,
)

__all__ = ["BlockedConnection", "NetworkSandbox", "UnverifiedTLSConnection"]

_MISSING = object()

_active: NetworkSandbox | None = None

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_HTTP_ALPN = ("http/1.1",)
"""What the sandbox offers a TLS client in front of an aiohttp server: HTTP/1.1 only."""
_TLS_RECORD = b"\x16"


class _Patches:
    """Patches, undone in reverse order.

    Attributes of classes and modules are restored exactly (their own or inherited);
    the methods of one loop are replaced for it alone (:func:`patch_methods`).
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def set(self, owner: object, name: str, value: object) -> None:
        previous = vars(owner).get(name, _MISSING)
        setattr(owner, name, value)
        if previous is _MISSING:
            self._undo.append(partial(delattr, owner, name))
        else:
            self._undo.append(partial(setattr, owner, name, previous))

    def set_methods(self, instance: object, replacements: dict[str, object]) -> None:
        self._undo.append(patch_methods(instance, replacements))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


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
    ``sock_connect`` (for that loop alone), :meth:`aiohttp.resolver.AsyncResolver.resolve`
    and :meth:`ssl.SSLContext.wrap_bio`; for blocking clients in any thread,
    :func:`socket.getaddrinfo`, :func:`socket.gethostbyname` (and ``_ex``),
    :meth:`socket.socket.connect` and ``connect_ex``, and
    :meth:`ssl.SSLContext.wrap_socket`, which follow the same routes and land in the
    same record. Patching costs the same whatever the number of routes. Only one
    sandbox can be open at a time.

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

    While the test waits in a test server's ``receive_*()`` on the same loop, a
    refusal it did not declare expected ends that wait at once with
    :class:`aiotestkit.BlockedWhileWaiting`; every ``ReceiveTimeout`` lists the
    refusals so far.

    Attributes:
        blocked: every refused lookup or connection, in order
            (:class:`BlockedConnection`).
        unverified: every TLS connection to a routed host whose client had
            certificate or host name verification off (:class:`UnverifiedTLSConnection`).
        hints: what the sandbox noticed about clients speaking the wrong language
            on a route (TLS to a plain target, plain text where ``tls=True``), as
            messages; reported with the refusals.
        routes: the :class:`RouteTable` that holds the routes and makes every
            decision (internal; shared with the blocking-socket patches).

    Example:
        ```python
        async with NetworkSandbox() as sandbox, CaseControlledTestServer() as server:
            await sandbox.route("api.kraken.com", 443, server)
            client = SpotAsyncClient()  # builds its own aiohttp session
            task = asyncio.create_task(client.request("GET", "/0/public/Time", auth=False))
            request = await server.receive_request()
            assert request.secure and request.host == "api.kraken.com"
        ```
    """

    def __init__(
        self,
        *,
        certificate_authority: trustme.CA | None = None,
        allow_blocked: bool = False,
    ) -> None:
        self.certificate_authority = certificate_authority or default_certificate_authority()
        self.allow_blocked = allow_blocked
        self.routes = RouteTable(self.certificate_authority, on_refusal=self._on_refusal)
        self._gateways: dict[tuple[object, bool | None], tuple[Gateway, object]] = {}
        self._owned_servers: list[Any] = []
        self._proxies: list[HTTPProxy] = []
        self.hints: list[str] = []
        self._started_for: dict[int, BaseTestServer] = {}  # id(app or handler) -> its server
        self._patches = _Patches()
        self._pending_routes: dict[tuple[str, int], tuple[Any, bool | None]] = {}
        self._route_lock: asyncio.Lock | None = None  # made by the first route_nowait()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._original_getaddrinfo: Callable[..., Awaitable[Any]]
        self._original_create_connection: Callable[..., Awaitable[Any]]
        self._original_sock_connect: Callable[..., Awaitable[None]]

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._loop else "not open"
        return f"<NetworkSandbox {state}, {len(self.routes)} route(s)>"

    @property
    def blocked(self) -> list[BlockedConnection]:
        """Every refused lookup or connection, in order (:class:`BlockedConnection`)."""
        return self.routes.blocked

    @property
    def unverified(self) -> list[UnverifiedTLSConnection]:
        """Every TLS client of a routed host that had verification off."""
        return self.routes.unverified

    @staticmethod
    def current() -> NetworkSandbox | None:
        """The sandbox open now, if any (one at most is open at a time).

        For components that serve clients through whatever sandbox the test opened,
        such as the drop-in facades of ``aiotestkit.compat``.

        Returns:
            The open :class:`NetworkSandbox`, or ``None``.

        Example:
            ```python
            sandbox = NetworkSandbox.current()
            assert sandbox is None or not sandbox.blocked
            ```
        """
        return _active

    # -- life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Start routing the running loop's connections. ``async with`` calls this.

        Raises:
            aiotestkit.NetworkSandboxActive: (a :class:`RuntimeError`) if another
                sandbox is open.
            RuntimeError: if this sandbox was opened before.

        Example:
            ```python
            sandbox = NetworkSandbox()
            await sandbox.open()
            ```
        """
        self.open_nowait(asyncio.get_running_loop())

    def open_nowait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start routing the connections of ``loop``, which need not be running.

        What :meth:`open` does, for a synchronous fixture that holds the test's
        loop: the sandbox patches ``loop`` (and the process-wide functions) now.

        Args:
            loop: the event loop whose clients the sandbox routes (the test's).

        Raises:
            aiotestkit.NetworkSandboxActive: (a :class:`RuntimeError`) if another
                sandbox is open.
            RuntimeError: if this sandbox was opened before.

        Example:
            ```python
            sandbox = NetworkSandbox()
            sandbox.open_nowait(loop)
            ```
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
        self._original_getaddrinfo = loop.getaddrinfo
        self._original_create_connection = loop.create_connection
        self._original_sock_connect = checked_already(loop.sock_connect)
        _active = self
        self._loop = loop
        reset_refusals(loop)
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
            ssl_object = original_wrap_bio(
                context, incoming, outgoing, server_side, server_hostname, session
            )
            if not server_side:
                trusting = sandbox.routes.client_context(context, server_hostname)
                if trusting is not None:
                    ssl_object.context = trusting
            return ssl_object

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

        self._patches.set_methods(
            loop,
            {
                "getaddrinfo": self._getaddrinfo,
                "create_connection": self._create_connection,
                "sock_connect": self._sock_connect,
            },
        )
        self._patches.set(ssl.SSLContext, "wrap_bio", wrap_bio)
        self._patches.set(
            ssl.SSLContext,
            "load_cert_chain",
            self.routes.chains.wrap(ssl.SSLContext.load_cert_chain),
        )
        self._patches.set(AsyncResolver, "resolve", resolve)
        BlockingSockets(self.routes).install(self._patches.set)

    async def close(self) -> None:
        """Restore what the sandbox patched, close its gateways and the servers it started.

        The patches are undone first, whatever happens after. Calling it again
        does nothing.

        Example:
            ```python
            await sandbox.close()
            ```
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
            if self._loop is not None:
                reset_refusals(self._loop)
        for proxy in self._proxies:
            await proxy.close()
        never_reached = [target for target, _ in self._pending_routes.values()]
        self._pending_routes.clear()
        gateways = [gateway for gateway, _ in self._gateways.values()]
        self._gateways.clear()
        for gateway in gateways:
            await gateway.close()
        for server in reversed(self._owned_servers):
            await server.close()
        for target in never_reached:
            if isinstance(target, (BaseTestServer, CaseControlledWebSocketServer)):
                # Never started: its close() still reports what it was told to expect.
                await target.close()
        if not self.allow_blocked and is_attached(self._loop):
            for message in dict.fromkeys(
                [*self.hints, *(attempt.message for attempt in self.routes.unexpected())]
            ):
                report_issue("refused_connections", message, loop=self._loop)

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

    def _on_refusal(self, attempt: BlockedConnection, expected: bool) -> None:
        if self._loop is not None and not self._closed:
            record_refusal(self._loop, attempt.message, expected=expected or self.allow_blocked)

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
                  :class:`aiotestkit.CaseControlledWebSocketServer`,
                  :class:`aiohttp.test_utils.TestServer`, ...); started if it is
                  not, and then closed with the sandbox;
                - a :class:`aiotestkit.CaseControlledStreamServer` (``tcp``, ``tls``
                  or ``unix``), started likewise; bytes are relayed to it;
                - an :class:`aiohttp.web.Application` or a request handler
                  (``async def handler(request)``): the sandbox serves it and closes
                  that server when it closes;
                - a ``(host, port)`` pair on loopback (``127.0.0.0/8``, ``::1``,
                  ``localhost``) or a Unix socket path (str or
                  :class:`os.PathLike`): bytes are relayed unchanged.

                Once a server target has closed, its clients are refused at once
                (``ECONNREFUSED``), as by a host that is down.
            tls: whether clients of this route speak TLS, which the sandbox then ends
                in front of a plain target. ``None`` (default) decides for each
                connection from the client's first byte for HTTP servers, and
                relays the bytes unchanged for addresses and stream servers.
                ``True`` always ends TLS (implicit-TLS protocols such as SMTPS in
                front of a plain stream server); ``False`` never does. A server that
                serves TLS itself gets the client's TLS as it is.

        Returns:
            The server that serves the route: ``target`` itself for servers and
            addresses, the started :class:`aiohttp.test_utils.BaseTestServer` for an
            application or a handler.

        Raises:
            TypeError: if ``host``, ``port``, ``tls`` or ``target`` has the wrong type.
            ValueError: if ``port`` is out of range, ``host`` is not a valid name,
                ``host:port`` is routed already, an address target is not on
                loopback (the message names it), or ``tls=False`` with a server
                that serves TLS.
            RuntimeError: if the sandbox is not open.

        Example:
            ```python
            server = await sandbox.route("api.kraken.com", 443, kraken_app)
            await sandbox.route("uploads.example.com", 443, ("127.0.0.1", 8443))
            await sandbox.route("smtp.example.com", 465, stream_server, tls=True)
            ```
        """
        self._check_open("add a route")
        _check_port("port", port)
        if tls is not None and not isinstance(tls, bool):
            raise TypeError(f"tls must be True, False or None, got {tls!r}")
        route = self.routes.get(host, port)
        if route is not None:
            raise ValueError(
                f"{route.host}:{port} is routed already, to {route.gateway!r}; "
                "each host and port takes one route"
            )
        if (normalize_host(host), port) in self._pending_routes:
            raise ValueError(
                f"{normalize_host(host)}:{port} is routed already, with route_nowait(); "
                "each host and port takes one route"
            )
        gateway, server = await self._gateway_for(target, tls)
        self.routes.add(host, port, gateway)
        return server

    def route_nowait(
        self,
        host: str | bytes,
        port: int,
        target: Any,
        *,
        tls: bool | None = None,
    ) -> None:
        """Route ``host:port`` to ``target`` from the first client lookup or connection on.

        The synchronous form of :meth:`route`, for code that cannot await (a mock
        declared in a synchronous call): the route is checked now and completed, as
        :meth:`route` does it (starting a server target), when an asyncio client
        first resolves ``host`` or connects to ``host:port``. A server target is
        closed with the sandbox, also when no client came. Blocking clients in
        threads see the route only once an asyncio client completed it.

        Args:
            host: as for :meth:`route`.
            port: as for :meth:`route`.
            target: as for :meth:`route`.
            tls: as for :meth:`route`.

        Raises:
            TypeError: if ``host``, ``port`` or ``tls`` has the wrong type.
            ValueError: if ``port`` is out of range, ``host`` is not a valid name, or
                ``host:port`` is routed already.
            RuntimeError: if the sandbox is not open.

        Example:
            ```python
            sandbox.route_nowait("api.example.com", 443, server)
            ```
        """
        self._check_open("add a route")
        name = normalize_host(host)
        _check_port("port", port)
        if tls is not None and not isinstance(tls, bool):
            raise TypeError(f"tls must be True, False or None, got {tls!r}")
        if self.routes.get(name, port) is not None or (name, port) in self._pending_routes:
            raise ValueError(
                f"{name}:{port} is routed already; each host and port takes one route"
            )
        self._pending_routes[name, port] = (target, tls)

    async def _complete_routes(self, host: str | bytes) -> None:
        """Complete the routes :meth:`route_nowait` added for ``host``, before using them."""
        if not self._pending_routes:
            return
        try:
            name = fake_host(normalize_host(host))
        except (TypeError, ValueError):
            return
        if self._route_lock is None:
            self._route_lock = asyncio.Lock()
        async with self._route_lock:  # a concurrent lookup waits until the route is up
            for key in [key for key in self._pending_routes if key[0] == name]:
                target, tls = self._pending_routes.pop(key)
                await self.route(name, key[1], target, tls=tls)

    async def route_proxy(
        self, host: str | bytes, port: int, *, auth: tuple[str, str] | None = None
    ) -> HTTPProxy:
        """Start an HTTP proxy at ``host:port`` that reaches the sandbox's routed hosts.

        Clients configured with a proxy (``HTTPS_PROXY``/``HTTP_PROXY`` in the
        environment with httpx or ``aiohttp.ClientSession(trust_env=True)``, or
        ``proxy=`` arguments) reach it by that host name. It accepts ``CONNECT`` to
        routed hosts and tunnels the client's bytes to the route's target unchanged,
        so TLS stays end to end between client and target (the client verifies the
        target's certificate, as without a proxy). It forwards absolute-form
        plain-HTTP requests (``GET http://host/path``) to routed hosts. Any other
        host gets ``403 Forbidden`` and is recorded in :attr:`blocked` as a
        ``"connect"`` refusal of ``(host, port)``, with the usual message. The proxy
        is closed, tunnels and all, when the sandbox closes.

        Args:
            host: the proxy's host name (str or bytes), e.g. ``"proxy.corp.example"``.
            port: its TCP port (int, 1-65535), e.g. 3128 or 8080.
            auth: ``(user, password)`` (str, str): the proxy then answers ``407 Proxy
                Authentication Required`` (with ``Proxy-Authenticate: Basic``) to every
                request without matching ``Proxy-Authorization: Basic`` credentials.
                A 407 is the proxy's answer, not a refusal of the sandbox. ``None``
                (default): no authentication.

        Returns:
            The :class:`aiotestkit.HTTPProxy`, whose ``tunnels`` and ``forwarded``
            list what it did.

        Raises:
            TypeError: if ``auth`` is not a pair of str, or ``host``/``port`` has the
                wrong type.
            ValueError: if ``host:port`` is routed already or not valid.
            RuntimeError: if the sandbox is not open.

        Example:
            ```python
            await network_sandbox.route("api.example.com", 443, server)
            proxy = await network_sandbox.route_proxy("proxy.corp", 3128, auth=("u", "p"))
            monkeypatch.setenv("HTTPS_PROXY", "http://u:p@proxy.corp:3128")
            async with httpx.AsyncClient() as client:  # trusts the environment
                task = asyncio.create_task(client.get("https://api.example.com/"))
                request = await server.receive_request()
            assert proxy.tunnels == [('api.example.com', 443)]
            ```
        """
        self._check_open("start a proxy")
        proxy = HTTPProxy(
            self.routes,
            self._original_create_connection,
            host=host.decode("ascii") if isinstance(host, bytes) else host,
            port=port,
            auth=auth,
        )
        await self.route(host, port, proxy.handle)
        self._proxies.append(proxy)
        return proxy

    async def _gateway_for(self, target: Any, tls: bool | None) -> tuple[Gateway, object]:
        key: tuple[object, bool | None] = (_target_key(target), tls)
        known = self._gateways.get(key)
        if known is not None:
            return known
        if isinstance(target, CaseControlledWebSocketServer):
            # It holds the HTTP server that takes its connections: route that one.
            await self._start(target)
            gateway, _ = await self._gateway_for(target.http, tls)
            del self._gateways[_target_key(target.http), tls]  # one entry per gateway
            self._gateways[key] = (gateway, target)
            return gateway, target
        server: object = self._started_for.get(id(target), target)
        if isinstance(target, web.Application) and not isinstance(server, BaseTestServer):
            server = self._started_for[id(target)] = TestServer(target)
        elif isinstance(target, (tuple, str, os.PathLike)):
            gateway = self._relay(
                _check_address(target) if isinstance(target, tuple) else os.fspath(target),
                tls=bool(tls),
                description=_describe_target(target),
            )
            self._gateways[key] = (gateway, target)
            return gateway, target
        elif isinstance(server, CaseControlledStreamServer):
            gateway = await self._stream_gateway(server, tls)
            self._gateways[key] = (gateway, server)
            return gateway, server
        elif callable(target) and not isinstance(server, BaseTestServer):
            server = self._started_for[id(target)] = RawTestServer(target)
        elif not isinstance(server, BaseTestServer):
            raise TypeError(
                "target must be an aiotestkit server (CaseControlledTestServer, "
                "CaseControlledStreamServer, CaseControlledWebSocketServer), an aiohttp test "
                "server, an aiohttp.web.Application, a request handler, a (host, port) pair "
                f"on loopback or a Unix socket path, got {type(target).__name__}"
            )
        assert isinstance(server, BaseTestServer)
        await self._start(server)
        assert server.port is not None
        if server.scheme == "https":
            gateway = self._tls_passthrough(server, tls, (server.host, server.port))
        else:
            gateway = Gateway(
                Dispatch(server.handler),
                tls=tls,
                server_context=self._server_context(alpn=_HTTP_ALPN),
                description=repr(server),
                target_closed=lambda: server.closed,
                on_plain_client=self._plain_client_hint(repr(server)),
            )
        self._gateways[key] = (gateway, server)
        return gateway, server

    async def _start(self, server: Any) -> None:
        """Start ``server`` if it is not, and close it with the sandbox then."""
        if not server.started:
            await server.start_server()
            self._owned_servers.append(server)

    def _server_context(self, *, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        return sni_server_context_with_alpn(self.certificate_authority, alpn)

    def _relay(
        self,
        address: tuple[str, int] | str,
        *,
        tls: bool,
        description: str,
        target_closed: Callable[[], bool] = lambda: False,
        speaks_tls: bool | None = None,
    ) -> Gateway:
        """A gateway that relays to ``address`` (loopback TCP, or a Unix socket path)."""
        if isinstance(address, tuple):
            host, port = _loopback_address(*address)

            def open_target(factory: Callable[[], asyncio.BaseProtocol]) -> Awaitable[Any]:
                return self._original_create_connection(factory, host, port)

        else:
            path = address
            loop = self._check_open("add a route")

            def open_target(factory: Callable[[], asyncio.BaseProtocol]) -> Awaitable[Any]:
                return loop.create_unix_connection(factory, path)

        return Gateway(
            Relay(open_target, on_first_bytes=self._mismatch_check(description, tls, speaks_tls)),
            tls=tls,
            server_context=self._server_context(),
            description=description,
            target_closed=target_closed,
            on_plain_client=self._plain_client_hint(description),
        )

    def _plain_client_hint(self, description: str) -> Callable[[], None]:
        return lambda: self._record_hint(
            f"a client sent plain text to a route to {description} with tls=True, which "
            "expects a TLS handshake: the client speaks plain text here; route with "
            "tls=False (or None)"
        )

    def _tls_passthrough(
        self, server: Any, tls: bool | None, address: tuple[str, int] | str
    ) -> Gateway:
        if tls is False:
            raise ValueError(
                f"{server!r} serves TLS itself, so its clients must speak TLS: "
                "route it with tls=None or tls=True, or route a plain server"
            )
        return self._relay(
            address,
            tls=False,
            description=repr(server),
            target_closed=lambda: bool(server.closed),
            speaks_tls=True,
        )

    async def _stream_gateway(
        self, server: CaseControlledStreamServer, tls: bool | None
    ) -> Gateway:
        await self._start(server)
        if server.transport == "tls":
            return self._tls_passthrough(server, tls, server.address)
        return self._relay(
            server.address,
            tls=bool(tls),
            description=repr(server),
            target_closed=lambda: server.closed,
            speaks_tls=bool(tls),
        )

    def _mismatch_check(
        self, description: str, tls: bool, speaks_tls: bool | None
    ) -> Callable[[bytes], None] | None:
        """What a relay calls with a client's first bytes, to spot TLS on a plain route."""
        if speaks_tls is None:
            return None  # an address: whatever it speaks is fine
        ends_tls = tls

        def check(first: bytes) -> None:
            client_tls = first[:1] == _TLS_RECORD
            if client_tls and not speaks_tls:
                hint = (
                    f"a client sent a TLS ClientHello to {description}, which expects plain "
                    "bytes: the client speaks TLS here; route with tls=True"
                )
            elif not client_tls and speaks_tls and not ends_tls:
                hint = (
                    f"a client sent plain bytes {first[:16]!r} to {description}, which serves "
                    "TLS: the client speaks plain text here; route a plain server, or have "
                    "the client use TLS"
                )
            else:
                return
            self._record_hint(hint)

        return check

    def _record_hint(self, hint: str) -> None:
        if self._loop is None or self._closed:
            return
        if hint not in self.hints:
            self.hints.append(hint)
        record_hint(self._loop, hint)

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
        if self._pending_routes:  # no coroutine to run in the common case
            await self._complete_routes(host)
        infos = self.routes.resolve(host, port, family=family, type=type, proto=proto)
        if infos is None:
            return list(
                await original(host, port, family=family, type=type, proto=proto, flags=flags)
            )
        return infos

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
            if self._pending_routes:
                await self._complete_routes(host)
            route = self.routes.destination(host, port)
            if route is not None:
                if ssl and server_hostname is None:
                    server_hostname = host
                host, port = route.address
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
        family = sock.family  # a property that converts to the enum: read it once
        if family == socket.AF_INET or family == socket.AF_INET6:
            if self._pending_routes:
                await self._complete_routes(address[0])
            route = self.routes.destination(address[0], port_number(address[1]))
            if route is not None:
                host, port = route.address
                address = (host, port) if family == socket.AF_INET else (f"::ffff:{host}", port)
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
            ```python
            sandbox.expect_blocked("telemetry.example.com")
            ```
        """
        self.routes.expect(host, port)

    def assert_nothing_blocked(self) -> None:
        """Check that the sandbox refused nothing the test did not expect.

        Client libraries often swallow connection errors (retry, fall back, log), so
        a refused connection may not fail the test by itself; this check does. The
        ``network_sandbox`` fixture calls it when the test ends.

        Raises:
            AssertionError: if there were refused attempts not declared with
                :meth:`expect_blocked`; the message lists each of them.

        Example:
            ```python
            sandbox.assert_nothing_blocked()
            ```
        """
        unexpected = self.routes.unexpected()
        if unexpected:
            listed = "\n".join(f"  - {attempt.message}" for attempt in unexpected)
            raise AssertionError(
                f"the network sandbox refused {len(unexpected)} attempt(s) to reach the "
                f"network:\n{listed}\nRoute each host the code needs, or declare the refusals "
                "expected with sandbox.expect_blocked(host, port), or let them pass with "
                "allow_blocked=True (the sandbox's argument, fixture marker or class attribute)."
            )

    def assert_tls_verified(self) -> None:
        """Check that every TLS client of a routed host verified the server's certificate.

        Raises:
            AssertionError: if a client connected with ``verify_mode`` ``CERT_NONE``
                or ``check_hostname`` off; the message names each host and setting.

        Example:
            ```python
            await client.fetch("https://api.example.com/")
            sandbox.assert_tls_verified()
            ```
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


def _describe_target(target: object) -> str:
    if isinstance(target, tuple):
        host, port = target[0], target[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    assert isinstance(target, (str, os.PathLike))
    return f"unix:{os.fspath(target)}"


def _loopback_address(host: str, port: int) -> tuple[str, int]:
    """``host:port`` to connect to on loopback; raises if it is elsewhere."""
    name = normalize_host(host)
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1" if name == "0.0.0.0" else "::1"
    if name == "localhost":
        name = "127.0.0.1"
    if not is_loopback(name):
        raise ValueError(
            f"relay target ({host!r}, {port}) is not on this machine's loopback: the "
            "network sandbox relays only to loopback addresses (127.0.0.0/8, ::1), Unix "
            "sockets and servers of this process, so that no test reaches the real "
            "network. Start a local server (e.g. CaseControlledStreamServer) and route to it"
        )
    return name, port


def _check_address(target: tuple[Any, ...]) -> tuple[str, int]:
    if len(target) != 2 or not isinstance(target[0], str):
        raise TypeError(f"an address target must be a (host, port) pair, got {target!r}")
    return _loopback_address(target[0], _check_port("target port", target[1]))
