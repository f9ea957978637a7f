"""Blocking clients in the network sandbox: the ``socket`` and ``ssl`` entry points.

Async code calls blocking clients in threads (``asyncio.to_thread(requests.get, ...)``)
all the time. While a :class:`aiotestkit.NetworkSandbox` is open,
:class:`BlockingSockets` makes the blocking entry points ask the same
:class:`~aiotestkit._network._routes.RouteTable` as the loop's methods do, from any
thread:

- :func:`socket.getaddrinfo` (and with it :func:`socket.create_connection`,
  ``urllib3``, ``http.client``), :func:`socket.gethostbyname` and
  :func:`socket.gethostbyname_ex`: a routed host name resolves to its fake
  address, any other name is refused with :class:`aiotestkit.NameResolutionDenied`;
- :meth:`socket.socket.connect` and :meth:`~socket.socket.connect_ex` on TCP sockets
  (IPv4 and IPv6, blocking or not, :class:`ssl.SSLSocket` too): a connection to a
  routed host or its fake address reaches the route's gateway, a loopback port of
  this process is reached as asked, anything else is refused
  (:class:`aiotestkit.NetworkAccessDenied`; ``connect_ex`` returns its errno,
  ``ECONNREFUSED``);
- :meth:`ssl.SSLContext.wrap_socket` on the client side: a TLS client of a routed host
  trusts the test certificate authority for that connection, with its own
  verification settings, ALPN protocols and certificate chain, whatever trust store
  (``certifi``'s bundle, the system's) its context loaded.

Refusals land in the sandbox's one record, thread-safely. The loop's own connections
were decided by the sandbox's async patches already: the sandbox marks them with
:func:`checked_already` so that they are not decided twice.
"""

from __future__ import annotations

import contextvars
import errno
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import NetworkAccessDenied
from ._routes import RouteTable

__all__ = ["BlockingSockets", "checked_already"]

Patch = Callable[[object, str, object], None]
"""Sets an attribute so that the sandbox restores it when it closes."""

_checked = contextvars.ContextVar("aiotestkit_sandbox_checked", default=False)
"""True while the sandbox connects a socket whose address it decided already."""


def checked_already(
    sock_connect: Callable[[socket.socket, Any], Awaitable[None]],
) -> Callable[[socket.socket, Any], Awaitable[None]]:
    """Wrap the loop's ``sock_connect``: its ``socket.connect`` call is decided already.

    The sandbox's async patches route or refuse a connection before they hand the
    socket to the loop's own ``sock_connect``, which then calls
    :meth:`socket.socket.connect`: that call must not be routed (or recorded) again.
    The mark is a context variable, so it holds for the task that connects only.

    Args:
        sock_connect: the loop's original ``sock_connect``.

    Returns:
        A coroutine function with the same arguments.
    """

    async def connect(sock: socket.socket, address: Any) -> None:
        token = _checked.set(True)
        try:
            await sock_connect(sock, address)
        finally:
            _checked.reset(token)

    return connect


class BlockingSockets:
    """The sandbox's blocking entry points, all asking one route table.

    Args:
        routes: the open sandbox's route table; its methods are thread-safe.

    Example:
        ```python
        BlockingSockets(sandbox.routes).install(patches.set)
        await asyncio.to_thread(requests.get, "https://api.example.com/")
        ```
    """

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes

    def install(self, patch: Patch) -> None:
        """Replace the blocking entry points through ``patch``, which records what to restore.

        Args:
            patch: ``patch(owner, name, value)`` sets ``owner.name`` and remembers
                the previous value for the sandbox's ``close()``.
        """
        routes = self._routes
        original_getaddrinfo = socket.getaddrinfo
        original_gethostbyname = socket.gethostbyname
        original_gethostbyname_ex = socket.gethostbyname_ex
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex
        original_wrap_socket = ssl.SSLContext.wrap_socket

        def getaddrinfo(
            host: bytes | str | None,
            port: bytes | str | int | None,
            family: int = 0,
            type: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> list[tuple[Any, ...]]:
            # A numeric-host lookup never asks a name server: let it fail or pass as it would.
            if host is not None and not flags & socket.AI_NUMERICHOST:
                infos = routes.resolve(host, port, family=family, type=type, proto=proto)
                if infos is not None:
                    return infos
            return original_getaddrinfo(host, port, family, type, proto, flags)

        def gethostbyname(hostname: str) -> str:
            infos = routes.resolve(hostname, None, family=socket.AF_INET)
            if infos is None:
                return original_gethostbyname(hostname)
            return str(infos[0][4][0])

        def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
            infos = routes.resolve(hostname, None, family=socket.AF_INET)
            if infos is None:
                return original_gethostbyname_ex(hostname)
            return hostname, [], [str(info[4][0]) for info in infos]

        def connect(sock: socket.socket, address: Any) -> None:
            original_connect(sock, self._address(sock, address))

        def connect_ex(sock: socket.socket, address: Any) -> int:
            try:
                address = self._address(sock, address)
            except NetworkAccessDenied:
                return errno.ECONNREFUSED  # what connect() raises as NetworkAccessDenied
            return original_connect_ex(sock, address)

        def wrap_socket(
            context: ssl.SSLContext,
            sock: socket.socket,
            server_side: bool = False,
            do_handshake_on_connect: bool = True,
            suppress_ragged_eofs: bool = True,
            server_hostname: str | bytes | None = None,
            session: ssl.SSLSession | None = None,
        ) -> ssl.SSLSocket:
            trusting = None if server_side else routes.client_context(context, server_hostname)
            if trusting is None:
                return original_wrap_socket(
                    context,
                    sock,
                    server_side,
                    do_handshake_on_connect,
                    suppress_ragged_eofs,
                    server_hostname,
                    session,
                )
            if not _connected(sock):
                # connect() will wrap with the context given here: the test authority's
                # (with the client's certificate chain; its ALPN list is not kept).
                return original_wrap_socket(
                    trusting,
                    sock,
                    server_side,
                    do_handshake_on_connect,
                    suppress_ragged_eofs,
                    server_hostname,
                    session,
                )
            # As wrap_bio: wrap with the client's own context (its ALPN protocols, server
            # name and verification settings), swap in the trusting one, then shake hands.
            wrapped = original_wrap_socket(
                context, sock, server_side, False, suppress_ragged_eofs, server_hostname, session
            )
            wrapped.context = trusting
            if do_handshake_on_connect:
                try:
                    if wrapped.gettimeout() == 0.0:
                        raise ValueError(
                            "do_handshake_on_connect should not be specified for "
                            "non-blocking sockets"
                        )
                    wrapped.do_handshake()
                except (OSError, ValueError):
                    wrapped.close()
                    raise
            return wrapped

        patch(socket, "getaddrinfo", getaddrinfo)
        patch(socket, "gethostbyname", gethostbyname)
        patch(socket, "gethostbyname_ex", gethostbyname_ex)
        patch(socket.socket, "connect", connect)
        patch(socket.socket, "connect_ex", connect_ex)
        patch(ssl.SSLContext, "wrap_socket", wrap_socket)

    def _address(self, sock: socket.socket, address: Any) -> Any:
        """Where a TCP ``sock`` connects for ``address``; raises if the sandbox refuses it."""
        if (
            _checked.get()  # first: the loop's own connections, the common case, stop here
            or sock.family not in (socket.AF_INET, socket.AF_INET6)
            or sock.type != socket.SOCK_STREAM
            or not isinstance(address, tuple)
            or len(address) < 2
            or not isinstance(address[1], int)
        ):
            return address  # not TCP, decided by the sandbox already, or bad: as it is
        route = self._routes.destination(address[0], address[1])
        if route is None:
            return address
        host, port = route.address
        return (host, port) if sock.family == socket.AF_INET else (f"::ffff:{host}", port, 0, 0)


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True
