"""The sandbox's gateways: local listening sockets that stand for a route's target.

A :class:`aiotestkit.NetworkSandbox` connects every routed client to a gateway, one
per target: a socket on ``127.0.0.1`` that accepts the client and then either hands
the connection to an aiohttp test server in this process (plain or over TLS, the
way that server's own sites do) or relays the bytes to another address (a TCP
``(host, port)`` or a Unix socket path), optionally ending TLS in front of it.

Whether a client speaks TLS is decided per connection when the route leaves it open
(``tls=None``): a TLS client's first byte is ``0x16`` (a handshake record), an HTTP
client's is a letter. The gateway peeks at it without consuming it.

Listening sockets outlive their gateways: a closed gateway hands its socket back to
a small process-wide pool, and the next gateway (of this sandbox or a later one)
takes it, so that a routed test does not bind and listen a new socket per route.
Connections made to an idle socket are reset when it is taken or handed back, as a
closed socket would reset them, and the sandbox refuses connections to an idle
port as to a port no one listens on (:func:`is_idle_port`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Dispatch", "Gateway", "Relay", "Service", "is_idle_port"]

SNIFF_TIMEOUT = 5.0
"""Seconds a gateway waits for a client's first byte to tell TLS from plain text."""

HANDSHAKE_TIMEOUT = 5.0
"""Seconds a gateway waits for a client's TLS handshake."""

_TLS_HANDSHAKE_RECORD = b"\x16"

_NOT_TLS = frozenset(
    {
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "WRONG_VERSION_NUMBER",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
    }
)
"""OpenSSL's reasons for a failed handshake whose client sent no TLS record at all."""

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
OpenTarget = Callable[[ProtocolFactory], Awaitable[tuple[asyncio.BaseTransport, object]]]


class _NothingYet:
    """What :func:`_peek` returns while the client has sent nothing."""


_NOTHING_YET = _NothingYet()


def _peek(conn: socket.socket) -> bool | _NothingYet | None:
    """Whether the client's first byte starts TLS; ``None`` if it left without sending one."""
    try:
        first = conn.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return _NOTHING_YET
    except OSError:
        return None
    if not first:
        return None
    return first == _TLS_HANDSHAKE_RECORD


_IDLE_LIMIT = 16
"""Idle listening sockets kept for later gateways; more are closed."""

_idle: list[socket.socket] = []
_idle_ports: set[int] = set()
_idle_lock = threading.Lock()
_RESET = struct.pack("ii", 1, 0)
"""``SO_LINGER`` on, 0 seconds: closing sends a reset, as a closed listener does."""


def is_idle_port(port: int) -> bool:
    """Whether ``port`` is a gateway's listening socket that no gateway uses now.

    It still listens (its connections wait in the backlog until they are reset), so a
    check of the process's listening ports would count it: the sandbox asks this first.
    """
    return port in _idle_ports


def _take_listener() -> socket.socket:
    """A listening, non-blocking TCP socket on ``127.0.0.1``: an idle one, else a new one."""
    with _idle_lock:
        sock = _idle.pop() if _idle else None
        if sock is not None:
            _idle_ports.discard(sock.getsockname()[1])
    if sock is not None:
        _reset_backlog(sock)
        return sock
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _give_back(sock: socket.socket) -> None:
    """Keep ``sock`` for a later gateway (its backlog reset), or close it if enough are kept."""
    _reset_backlog(sock)
    with _idle_lock:
        if len(_idle) < _IDLE_LIMIT:
            _idle.append(sock)
            _idle_ports.add(sock.getsockname()[1])
            return
    sock.close()


@atexit.register
def _close_idle() -> None:
    with _idle_lock:
        idle = list(_idle)
        _idle.clear()
        _idle_ports.clear()
    for sock in idle:
        sock.close()


def _reset_backlog(sock: socket.socket) -> None:
    """Reset the connections waiting in ``sock``'s backlog, as closing it would."""
    while True:
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        with conn, contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)


FirstBytes = Callable[[bytes], None]
"""Told of the first bytes a relayed client sends (to spot TLS sent to a plain target)."""


class _Pipe(asyncio.Protocol):
    """One side of a relay: writes what it receives to its peer's transport."""

    def __init__(self, registry: set[_Pipe], on_first_bytes: FirstBytes | None = None) -> None:
        self._registry = registry
        self._on_first_bytes = on_first_bytes
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self._buffer = bytearray()
        self._closed = False

    def link(self, peer: _Pipe) -> None:
        self.peer = peer
        peer.peer = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._registry.add(self)
        if self.peer is not None and self.peer._buffer and not self._closed:
            transport.write(bytes(self.peer._buffer))
            self.peer._buffer.clear()
        if self.peer is not None and self.peer._closed:
            transport.close()  # the other side left before this one was connected

    def data_received(self, data: bytes) -> None:
        if self._on_first_bytes is not None:
            on_first_bytes, self._on_first_bytes = self._on_first_bytes, None
            on_first_bytes(data)
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self._buffer += data

    def eof_received(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._registry.discard(self)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class Service(Protocol):
    """What a gateway does with each accepted connection."""

    async def serve(self, conn: socket.socket, context: ssl.SSLContext | None) -> None:
        """Serve ``conn``, ending TLS with ``context`` first unless it is ``None``."""

    def serve_nowait(self, conn: socket.socket) -> bool:
        """Serve plain ``conn`` at once, without a task; ``False`` if :meth:`serve` must."""

    def close(self) -> None:
        """Drop the connections the service still holds."""


class Dispatch:
    """Hands each connection to a protocol of this process, e.g. an aiohttp server's.

    Args:
        factory: a protocol factory, e.g. an aiohttp test server's
            :attr:`~aiohttp.test_utils.BaseTestServer.handler`. The connections
            belong to that server, which closes them when it closes.
    """

    def __init__(self, factory: ProtocolFactory) -> None:
        self._factory = factory

    async def serve(self, conn: socket.socket, context: ssl.SSLContext | None) -> None:
        """Hand ``conn`` to a new protocol from the factory."""
        await asyncio.get_running_loop().connect_accepted_socket(
            self._factory,
            conn,
            ssl=context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if context else None,
        )

    def serve_nowait(self, conn: socket.socket) -> bool:
        """Hand plain ``conn`` to a new protocol now, as a listening asyncio server does.

        What :meth:`serve` does without TLS, without its task and its loop
        iteration: the loop's transport factory (the one asyncio's own servers use
        for each accepted connection) makes the transport, which calls the
        protocol's ``connection_made`` soon. ``False`` on a loop without that
        factory (uvloop): then :meth:`serve` does it.
        """
        make_transport = getattr(asyncio.get_running_loop(), "_make_socket_transport", None)
        if make_transport is None:
            return False
        make_transport(conn, self._factory())
        return True

    def close(self) -> None:
        """Do nothing: the connections belong to the server."""


class Relay:
    """Relays the bytes of each connection to a target address, and back.

    Args:
        open_target: opens a connection to the target with the given protocol
            factory (``loop.create_connection`` or ``create_unix_connection``).
        on_first_bytes: called with the first bytes of each client (after TLS
            is ended, if the gateway ends it).
    """

    def __init__(
        self, open_target: OpenTarget, *, on_first_bytes: FirstBytes | None = None
    ) -> None:
        self._open_target = open_target
        self._on_first_bytes = on_first_bytes
        self._pipes: set[_Pipe] = set()

    async def serve(self, conn: socket.socket, context: ssl.SSLContext | None) -> None:
        """Accept the client (ending its TLS first), connect to the target, then relay.

        The target sees no connection from a client whose TLS handshake failed;
        what the client sends meanwhile is buffered.
        """
        loop = asyncio.get_running_loop()
        client_side = _Pipe(self._pipes, self._on_first_bytes)
        target_side = _Pipe(self._pipes)
        client_side.link(target_side)
        await loop.connect_accepted_socket(
            lambda: client_side,
            conn,
            ssl=context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if context else None,
        )
        try:
            await self._open_target(lambda: target_side)
        except BaseException:
            # The client sees the connection drop, as the target is not there.
            if client_side.transport is not None:
                client_side.transport.close()
            raise

    def serve_nowait(self, conn: socket.socket) -> bool:
        """Never: connecting to the target takes a task (:meth:`serve`)."""
        return False

    def close(self) -> None:
        """Close both sides of every relayed connection."""
        for pipe in list(self._pipes):
            if pipe.transport is not None:
                pipe.transport.close()


class Gateway:
    """A listening socket on ``127.0.0.1`` that serves one target of a sandbox.

    Args:
        service: serves each accepted connection, given the server-side TLS context
            to end TLS with (``None``: leave the bytes as they are).
        tls: ``True`` ends TLS for every client, ``False`` for none, ``None`` for
            the clients whose first byte starts a TLS handshake.
        server_context: the server-side context for ending TLS.
        description: what the gateway stands for, for ``repr`` and messages.
        target_closed: tells whether the target has closed (a test server that
            closed); the sandbox then refuses its clients as a host that is down.
        on_plain_client: called when a client of a route that ends TLS sent
            plain text instead of a TLS handshake.
    """

    def __init__(
        self,
        service: Service,
        *,
        tls: bool | None,
        server_context: ssl.SSLContext,
        description: str,
        target_closed: Callable[[], bool] = lambda: False,
        on_plain_client: Callable[[], None] | None = None,
    ) -> None:
        self._service = service
        self._target_closed = target_closed
        self._on_plain_client = on_plain_client
        self.tls = tls
        self._server_context = server_context
        self._description = description
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sniffing: dict[socket.socket, tuple[int, asyncio.TimerHandle]] = {}
        self._socket = _take_listener()
        try:
            self.address: tuple[str, int] = self._socket.getsockname()[:2]
            self._loop.add_reader(self._socket.fileno(), self._accept)
            self._listening = True
        except BaseException:
            self._socket.close()
            raise

    def __repr__(self) -> str:
        return f"<Gateway {self.address[0]}:{self.address[1]} to {self._description}>"

    def target_closed(self) -> str | None:
        """The target's description if it has closed, else ``None``."""
        return self._description if self._target_closed() else None

    def _accept(self) -> None:
        try:
            conn, _ = self._socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setblocking(False)
        # Pass each write on at once, as asyncio's own TCP transports do: with Nagle's
        # algorithm a relayed reply would wait for the client's delayed ACK (~40 ms).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            self._sniff(conn)
        else:
            self._serve(conn, self.tls)

    def _sniff(self, conn: socket.socket) -> None:
        """Peek at the client's first byte, then serve it with TLS or without.

        No task and no future: a reader callback and a timer, both dropped as soon
        as the byte is there (often already at accept).
        """
        first = _peek(conn)
        if not isinstance(first, _NothingYet):
            self._sniffed(conn, first)
            return
        fd = conn.fileno()

        def done(tls: bool | None) -> None:
            del self._sniffing[conn]
            timer.cancel()
            self._loop.remove_reader(fd)
            self._sniffed(conn, tls)

        def readable() -> None:
            first = _peek(conn)
            if not isinstance(first, _NothingYet):
                done(first)

        self._loop.add_reader(fd, readable)
        # A client that waits for the server to speak first: plain.
        timer = self._loop.call_later(SNIFF_TIMEOUT, done, False)
        self._sniffing[conn] = (fd, timer)

    def _sniffed(self, conn: socket.socket, tls: bool | None) -> None:
        if tls is None:
            conn.close()  # closed (or reset) before it sent a byte
        else:
            self._serve(conn, tls)

    def _serve(self, conn: socket.socket, tls: bool) -> None:
        if not tls:
            if self._target_closed():
                conn.close()  # as _handle() drops it
                return
            try:
                if self._service.serve_nowait(conn):
                    return
            except OSError:
                conn.close()  # as _handle() does: the client sees the failure itself
                return
        task = self._loop.create_task(self._handle(conn, tls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, conn: socket.socket, tls: bool) -> None:
        if self._target_closed():
            # Connected while the target was up, served after it closed: drop it, as a
            # server going down drops the connections it had not served yet.
            conn.close()
            return
        try:
            await self._service.serve(conn, self._server_context if tls else None)
        except ssl.SSLError as error:
            if error.reason in _NOT_TLS and self._on_plain_client is not None:
                self._on_plain_client()
            conn.close()
        except (OSError, asyncio.TimeoutError):
            # The client sees the failure itself (a closed connection, a failed
            # handshake); it is its to report.
            conn.close()

    async def close(self) -> None:
        """Stop accepting, cancel the connections being set up, close relayed ones."""
        if self._listening:
            self._listening = False
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.remove_reader(self._socket.fileno())
            _give_back(self._socket)
        for conn, (fd, timer) in list(self._sniffing.items()):
            timer.cancel()
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.remove_reader(fd)
            conn.close()
        self._sniffing.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._service.close()
