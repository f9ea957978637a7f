"""An HTTP proxy inside the network sandbox, for clients configured with ``HTTPS_PROXY``.

:meth:`aiotestkit.NetworkSandbox.route_proxy` starts an :class:`HTTPProxy` at a host
and port of the sandbox. It is an aiohttp low-level server (aiohttp parses every
request line and header) that:

- answers ``CONNECT host:port`` for a routed host with ``200 Connection established``
  and then tunnels the client's bytes, unchanged, to the route's gateway: TLS stays
  end to end between the client and the route's target;
- forwards absolute-form plain-HTTP requests (``GET http://host/path HTTP/1.1``) to
  routed hosts with an aiohttp client inside the sandbox, and passes the answer back;
- answers ``403 Forbidden`` to any other host, and records that as a refusal of the
  sandbox (:attr:`aiotestkit.NetworkSandbox.blocked`);
- with ``auth``, answers ``407 Proxy Authentication Required`` until the client sends
  matching ``Proxy-Authorization: Basic`` credentials (the proxy's answer, not a refusal).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
from aiohttp import hdrs, web
from yarl import URL

from ..errors import NetworkAccessDenied
from ._routes import RouteTable

__all__ = ["HTTPProxy"]

OpenConnection = Callable[..., Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]]

_HOP_BY_HOP = frozenset(
    name.lower()
    for name in (
        hdrs.CONNECTION,
        hdrs.KEEP_ALIVE,
        hdrs.PROXY_AUTHENTICATE,
        hdrs.PROXY_AUTHORIZATION,
        "Proxy-Connection",
        hdrs.TE,
        hdrs.TRAILER,
        hdrs.TRANSFER_ENCODING,
        hdrs.UPGRADE,
    )
)
"""Headers that concern one connection only (RFC 9110, 7.6.1): never forwarded."""

_AUTO_HEADERS = (hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE)
"""Headers aiohttp's client would add: a forwarded request carries the client's only."""


class _Tunnel(asyncio.Protocol):
    """The target's side of a ``CONNECT`` tunnel; also takes the client's bytes.

    aiohttp hands the client's bytes after the ``CONNECT`` request to :meth:`feed_data`
    (the way it feeds a WebSocket reader); the target's go to the client's transport.
    """

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._target: asyncio.Transport | None = None
        self._client: asyncio.BaseTransport | None = None
        self._early = bytearray()  # target bytes that came before the 200 went out
        self._early_eof = False

    # -- the target's side ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._target = transport

    def data_received(self, data: bytes) -> None:
        client = self._client
        if client is None:
            self._early += data
        elif not client.is_closing():
            cast(asyncio.Transport, client).write(data)

    def eof_received(self) -> bool:
        client = cast(asyncio.Transport | None, self._client)
        if client is None:
            self._early_eof = True  # passed on in start(), after the early bytes
            return True
        if client.is_closing() or not client.can_write_eof():
            self.close()
            return False
        client.write_eof()
        return True  # keep the target's side open for the client's last bytes

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    # -- the client's side ----------------------------------------------------------------

    def start(self, client: asyncio.BaseTransport) -> None:
        """Relay to ``client`` from now on (after the ``200`` went out)."""
        self._client = client
        if self._early:
            self.data_received(bytes(self._early))
            self._early.clear()
        if self._early_eof:
            self.eof_received()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """Bytes from the client: to the target."""
        if self._target is not None and not self._target.is_closing():
            self._target.write(data)
        return False, b""

    def feed_eof(self) -> None:
        """The client closed (or sent EOF): close the target's side."""
        self.close()

    def close(self) -> None:
        """Close both sides; the ``CONNECT`` request's handler then returns."""
        for transport in (self._target, self._client):
            if transport is not None and not transport.is_closing():
                transport.close()
        if not self.closed.done():
            self.closed.set_result(None)


class HTTPProxy:
    """An HTTP proxy at a routed host and port: tunnels and forwards to routed hosts only.

    Made by :meth:`aiotestkit.NetworkSandbox.route_proxy`, which also closes it; clients
    reach it by its host name like any routed host (``HTTPS_PROXY=http://host:port``).

    Attributes:
        host: the proxy's host name, as given to ``route_proxy``.
        port: its port (int).
        url: ``http://host:port``, without credentials (str).
        tunnels: the ``(host, port)`` of every ``CONNECT`` tunnel opened, in order.
        forwarded: the ``(method, url)`` of every plain-HTTP request forwarded, in order.

    Example:
        ```python
        proxy = await network_sandbox.route_proxy("proxy.corp", 3128)
        async with httpx.AsyncClient(proxy=proxy.url) as client:
            await client.get("https://api.example.com/")
        assert proxy.tunnels == [('api.example.com', 443)]
        ```
    """

    def __init__(
        self,
        routes: RouteTable,
        open_connection: OpenConnection,
        *,
        host: str,
        port: int,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self._routes = routes
        self._open_connection = open_connection
        self._auth = _check_auth(auth)
        self.host = host
        self.port = port
        self.url = str(URL.build(scheme="http", host=host, port=port))
        self.tunnels: list[tuple[str, int]] = []
        self.forwarded: list[tuple[str, str]] = []
        self._open_tunnels: set[_Tunnel] = set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        auth = ", with auth" if self._auth else ""
        return f"<HTTPProxy {self.host}:{self.port}{auth}, {len(self.tunnels)} tunnel(s)>"

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request to the proxy: the request handler of its aiohttp server.

        :meth:`aiotestkit.NetworkSandbox.route_proxy` serves it at the proxy's host
        and port; there is no need to call it yourself.

        Args:
            request: a request to the proxy (:class:`aiohttp.web.BaseRequest`).

        Returns:
            The proxy's answer: the tunnel's ``200`` (returned when the tunnel
            closes), the forwarded response, or a ``400``, ``403``, ``407`` or ``502``
            whose text says why.

        Example:
            ```python
            await sandbox.route("proxy.corp", 3128, proxy.handle)  # what route_proxy does
            ```
        """
        if self._closed:
            return self._error(503, "the network sandbox is closing")
        refusal = self._check_authorization(request)
        if refusal is not None:
            return refusal
        if request.method == hdrs.METH_CONNECT:
            return await self._tunnel(request)
        return await self._forward(request)

    async def close(self) -> None:
        """Close every tunnel and the connections of forwarded requests.

        Calling it again does nothing.

        Example:
            ```python
            await proxy.close()
            ```
        """
        self._closed = True
        for tunnel in list(self._open_tunnels):
            tunnel.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- requests ---------------------------------------------------------------------

    def _check_authorization(self, request: web.BaseRequest) -> web.Response | None:
        if self._auth is None:
            return None
        header = request.headers.get(hdrs.PROXY_AUTHORIZATION)
        if header is None:
            problem = "the request has no Proxy-Authorization header"
        else:
            try:
                given = aiohttp.BasicAuth.decode(header)
            except ValueError:
                problem = f"its Proxy-Authorization header is not Basic credentials: {header!r}"
            else:
                user, password = self._auth
                if _same(given.login, user) and _same(given.password, password):
                    return None
                problem = f"the credentials of user {given.login!r} do not match"
        return self._error(
            407,
            f"{problem}. Give the client the user and password of route_proxy(auth=...), "
            f"e.g. in its proxy URL: http://user:password@{self.host}:{self.port}",
            headers={hdrs.PROXY_AUTHENTICATE: 'Basic realm="aiotestkit"'},
        )

    async def _tunnel(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            target = URL.build(authority=request.raw_path, encoded=True)
        except ValueError:
            target = URL()
        if not target.host or target.explicit_port is None:
            return self._error(
                400, f"CONNECT needs a host:port target (authority form), got {request.raw_path!r}"
            )
        host, port = target.host, target.explicit_port
        try:
            route = self._routes.destination(host, port)
        except NetworkAccessDenied as error:
            return self._error(403, str(error))
        address = route.address if route is not None else (host, port)
        tunnel = _Tunnel()
        try:
            await self._open_connection(lambda: tunnel, *address)
        except OSError as error:
            return self._error(502, f"cannot reach the route's target for {host}:{port}: {error}")
        self._open_tunnels.add(tunnel)
        try:
            response = web.StreamResponse(status=200, reason="Connection established")
            await response.prepare(request)
            assert request.transport is not None
            tunnel.start(request.transport)
            # aiohttp feeds what the client sends from now on (and any bytes that came
            # right after the request head) to the tunnel, as it does a WebSocket reader.
            cast(Any, request.protocol).set_parser(tunnel)
            self.tunnels.append((host, port))
            await tunnel.closed
            return response
        finally:
            tunnel.close()
            self._open_tunnels.discard(tunnel)

    async def _forward(self, request: web.BaseRequest) -> web.StreamResponse:
        url = URL(request.raw_path)
        if not url.absolute or url.scheme != "http" or not url.host:
            return self._error(
                400,
                f"a proxy takes absolute http:// URLs (or CONNECT for https), got "
                f"{request.method} {request.raw_path!r}",
            )
        assert url.port is not None
        try:
            self._routes.destination(url.host, url.port)
        except NetworkAccessDenied as error:
            return self._error(403, str(error))
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _HOP_BY_HOP
        ]
        body = await request.read()
        async with self._session.request(
            request.method,
            url,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            skip_auto_headers=_AUTO_HEADERS,
        ) as upstream:
            payload = await upstream.read()
            self.forwarded.append((request.method, str(url)))
            return web.Response(
                status=upstream.status,
                reason=upstream.reason,
                headers=[
                    (name, value)
                    for name, value in upstream.headers.items()
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length"
                ],
                body=payload,
            )

    def _error(
        self, status: int, message: str, *, headers: dict[str, str] | None = None
    ) -> web.Response:
        return web.Response(
            status=status,
            text=f"aiotestkit proxy {self.host}:{self.port}: {message}\n",
            headers=headers,
        )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _check_auth(auth: object) -> tuple[str, str] | None:
    if auth is None:
        return None
    if (
        not isinstance(auth, tuple)
        or len(auth) != 2
        or not isinstance(auth[0], str)
        or not isinstance(auth[1], str)
    ):
        raise TypeError(f"auth must be a (user, password) pair of str, got {auth!r}")
    if ":" in auth[0]:
        raise ValueError(f"a Basic auth user cannot contain ':' (RFC 7617), got {auth[0]!r}")
    return auth[0], auth[1]
