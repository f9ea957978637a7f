"""Run the same test over TCP, TLS and Unix sockets: one object per transport.

:class:`TransportContext` knows one address of one kind (a TCP port, a TCP port with
TLS from the test certificate authority, or a Unix socket path in a short temporary
directory), starts servers on it with a handler from the test, connects clients to it,
and closes everything it made when it closes: listening sockets, client and server
connections, handler tasks and socket files. A handler that raised fails the test when
the context closes, with the handler's traceback.

The ``transport`` pytest fixture is a :class:`TransportContext` parametrized over
:data:`TRANSPORT_NAMES`; unittest users open one with ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl as ssl_module
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import trustme

from .._core import (
    CLOSE_TIMEOUT,
    TRANSPORT_NAMES,
    check_timeout,
    default_certificate_authority,
    new_socket_path,
    remove_socket,
    select_transports,
    shared_client_context,
    shared_server_context,
    wait_all,
)
from ..errors import HandlerError

__all__ = [
    "TRANSPORT_NAMES",
    "TransportContext",
    "select_transports",
]

ClientConnectedCallback = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None] | None
]

_PROTOCOL_CALLBACKS = (
    "connection_made",
    "data_received",
    "eof_received",
    "connection_lost",
    "get_buffer",
    "buffer_updated",
)


def _unused_tcp_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _callable_name(function: object) -> str:
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{name}()"


@dataclass
class _Failure:
    where: str
    error: BaseException

    def describe(self) -> str:
        formatted = "".join(traceback.format_exception(self.error)).rstrip()
        return f"{self.where} raised {self.error!r}:\n{formatted}"


class TransportContext:
    r"""One transport (TCP, TLS or Unix socket) with servers and clients the test starts.

    The address is fixed when first used: a free TCP port on ``host`` for ``"tcp"``
    and ``"tls"``, a new socket path in a short temporary directory for ``"unix"``.
    ``"tls"`` serves a certificate for ``localhost``, ``127.0.0.1`` and ``::1`` from
    the test certificate authority and connects with a client context that trusts it
    (verification on); both contexts are built once per authority and shared by every
    context, so pass your own ``ssl=`` instead of modifying them. Everything the
    context starts is closed by :meth:`close`, which ``async with`` and the
    ``transport`` fixture call for you.

    Args:
        name: ``"tcp"``, ``"tls"`` or ``"unix"``.
        host: the address TCP servers listen on and clients connect to (str).
        certificate_authority: the authority for ``"tls"``;
            :func:`aiotestkit.default_certificate_authority` by default.
        handler_timeout: seconds (float, > 0) :meth:`close` and :meth:`close_server`
            wait for running connection handlers before they cancel them and report
            them as hanging.

    Raises:
        ValueError: if ``name`` is not a known transport, or ``handler_timeout`` is
            not positive.

    Example:
        ```python
        async def handle(reader, writer):
            writer.write(await reader.readline())
            await writer.drain()
        async with TransportContext("unix") as transport:
            reader, writer = await transport.start_server_and_connect(handle)
            writer.write(b"ohai\n")
            assert await reader.readline() == b"ohai\n"
        ```
    """

    def __init__(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        certificate_authority: trustme.CA | None = None,
        handler_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        (self.name,) = select_transports([name], source="TransportContext")
        self.host = host
        self.handler_timeout = check_timeout(handler_timeout)
        self.server_ssl: ssl_module.SSLContext | None = None
        """The server context for ``"tls"`` (``None`` otherwise); shared, do not modify."""
        self.client_ssl: ssl_module.SSLContext | None = None
        """The client context for ``"tls"``, trusting the test CA; shared, do not modify."""
        if self.name == "tls":
            authority = certificate_authority or default_certificate_authority()
            self.server_ssl = shared_server_context(authority)
            self.client_ssl = shared_client_context(authority)
        self._port: int | None = None
        self._socket_path: str | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._server_connections: list[asyncio.BaseTransport] = []
        self._client_connections: list[asyncio.BaseTransport] = []
        # StreamWriter warns "unclosed" when collected before its transport closes:
        # hold every writer until the transports are closed.
        self._writers: list[asyncio.StreamWriter] = []
        # What to await for each connection until its protocol saw connection_lost.
        self._lost: dict[int, Callable[[], Awaitable[Any]]] = {}
        self._closed_by_context: set[int] = set()
        self._failures: list[_Failure] = []
        self._closed = False
        # Incremented by close_server(): a connection of a server started in an older
        # generation that completes later is closed at once.
        self._generation = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.describe_address()}>"

    @property
    def address(self) -> tuple[str, int] | str:
        """Where servers listen: ``(host, port)`` for TCP and TLS, a path for ``"unix"``.

        Fixed on first use (a free port is picked, a short directory created), so code
        that starts its own server can listen on it before the test connects.

        Example:
            ```python
            assert transport.address == ("127.0.0.1", 40237)
            ```
        """
        if self.name == "unix":
            if self._socket_path is None:
                self._socket_path = new_socket_path()
            return self._socket_path
        if self._port is None:
            self._port = _unused_tcp_port(self.host)
        return (self.host, self._port)

    def describe_address(self) -> str:
        """Return the address as text: ``host:port``, ``tls://host:port`` or ``unix:path``.

        Returns:
            A str for messages; it does not fix the address if it is not fixed yet.

        Example:
            ```python
            context = TransportContext("tls", host="127.0.0.1")
            assert context.describe_address() == "tls://127.0.0.1:(port not chosen yet)"
            ```
        """
        if self.name == "unix":
            where = "(path not chosen yet)" if self._socket_path is None else self._socket_path
            return f"unix:{where}"
        port = "(port not chosen yet)" if self._port is None else str(self._port)
        return f"{self.name}://{self.host}:{port}"

    async def start_server(
        self, client_connected_cb: ClientConnectedCallback, **kwargs: Any
    ) -> asyncio.AbstractServer:
        """Start a stream server on :attr:`address` that calls ``client_connected_cb``.

        ``client_connected_cb(reader, writer)`` is called for each connection, as with
        :func:`asyncio.start_server`; a coroutine runs as a task that :meth:`close`
        waits for. If it raises, the connection is closed and :meth:`close` raises
        :class:`aiotestkit.HandlerError` with its traceback.

        Args:
            client_connected_cb: a function or coroutine function of
                ``(asyncio.StreamReader, asyncio.StreamWriter)``.
            **kwargs: passed to :func:`asyncio.start_server` or
                :func:`asyncio.start_unix_server` (``limit``, ``backlog``…);
                ``ssl`` defaults to :attr:`server_ssl`.

        Returns:
            The started :class:`asyncio.Server`.

        Raises:
            RuntimeError: if the context is closed.
            OSError: if the address is in use (a server is already listening).

        Example:
            ```python
            server = await transport.start_server(handle_client)
            ```
        """
        self._check_open("start a server")
        handle = self._track_handler(client_connected_cb)
        if self.name == "unix":
            kwargs.setdefault("ssl", None)
            server = await asyncio.start_unix_server(handle, str(self.address), **kwargs)
        else:
            kwargs.setdefault("ssl", self.server_ssl)
            server = await asyncio.start_server(handle, self.host, self._port or 0, **kwargs)
        return self._add_server(server)

    async def connect(self, **kwargs: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream connection to :attr:`address`, closed by :meth:`close`.

        Args:
            **kwargs: passed to :func:`asyncio.open_connection` or
                :func:`asyncio.open_unix_connection` (``limit``…); ``ssl`` defaults to
                :attr:`client_ssl`.

        Returns:
            The ``(asyncio.StreamReader, asyncio.StreamWriter)`` pair.

        Raises:
            RuntimeError: if the context is closed.
            ConnectionRefusedError: if no server listens on the address.
            ssl.SSLCertVerificationError: for ``"tls"``, if the server's certificate
                is not trusted by the client context.

        Example:
            ```python
            reader, writer = await transport.connect()
            ```
        """
        self._check_open("connect")
        if self.name == "unix":
            reader, writer = await asyncio.open_unix_connection(str(self.address), **kwargs)
        else:
            kwargs.setdefault("ssl", self.client_ssl)
            host, port = self._tcp_address()
            reader, writer = await asyncio.open_connection(host, port, **kwargs)
        self._client_connections.append(writer.transport)
        self._writers.append(writer)
        self._lost[id(writer.transport)] = writer.wait_closed
        return reader, writer

    async def start_server_and_connect(
        self,
        client_connected_cb: ClientConnectedCallback,
        server_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start a server with ``client_connected_cb`` and connect a client to it.

        A shortcut for :meth:`start_server` followed by :meth:`connect`.

        Args:
            client_connected_cb: the server's connection handler.
            server_kwargs: keyword arguments for :meth:`start_server`.
            client_kwargs: keyword arguments for :meth:`connect`.

        Returns:
            The client's ``(asyncio.StreamReader, asyncio.StreamWriter)`` pair.

        Raises:
            RuntimeError: if the context is closed.

        Example:
            ```python
            reader, writer = await transport.start_server_and_connect(handle_client)
            ```
        """
        await self.start_server(client_connected_cb, **(server_kwargs or {}))
        return await self.connect(**(client_kwargs or {}))

    async def create_server(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], **kwargs: Any
    ) -> asyncio.AbstractServer:
        """Start a protocol-based server on :attr:`address`.

        Exceptions raised by the protocols' callbacks (``connection_made``,
        ``data_received``, ``eof_received``, ``connection_lost``, and the
        buffered-protocol ones) are collected and raised by :meth:`close` as
        :class:`aiotestkit.HandlerError`; their connections are closed by it too.

        Args:
            protocol_factory: returns a new :class:`asyncio.BaseProtocol` per connection.
            **kwargs: passed to :meth:`asyncio.loop.create_server` or
                :meth:`asyncio.loop.create_unix_server`; ``ssl`` defaults to
                :attr:`server_ssl`.

        Returns:
            The started :class:`asyncio.Server`.

        Raises:
            RuntimeError: if the context is closed.

        Example:
            ```python
            server = await transport.create_server(EchoProtocol)
            ```
        """
        self._check_open("start a server")
        loop = asyncio.get_running_loop()

        generation = self._generation

        def factory() -> asyncio.BaseProtocol:
            return self._track_protocol(protocol_factory(), generation)

        if self.name == "unix":
            server = await loop.create_unix_server(factory, str(self.address), **kwargs)
        else:
            kwargs.setdefault("ssl", self.server_ssl)
            server = await loop.create_server(factory, self.host, self._port or 0, **kwargs)
        return self._add_server(server)

    async def create_connection(
        self, protocol_factory: Callable[[], asyncio.BaseProtocol], **kwargs: Any
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        """Connect a protocol-based client to :attr:`address`, closed by :meth:`close`.

        Args:
            protocol_factory: returns the client's :class:`asyncio.BaseProtocol`.
            **kwargs: passed to :meth:`asyncio.loop.create_connection` or
                :meth:`asyncio.loop.create_unix_connection`; ``ssl`` defaults to
                :attr:`client_ssl`.

        Returns:
            The ``(transport, protocol)`` pair.

        Raises:
            RuntimeError: if the context is closed.
            ConnectionRefusedError: if no server listens on the address.

        Example:
            ```python
            transport_, protocol = await transport.create_connection(ClientProtocol)
            ```
        """
        self._check_open("connect")
        loop = asyncio.get_running_loop()
        lost = loop.create_future()

        def factory() -> asyncio.BaseProtocol:
            protocol = protocol_factory()
            _on_connection_lost(protocol, lost)
            return protocol

        connection: asyncio.BaseTransport
        protocol: asyncio.BaseProtocol
        if self.name == "unix":
            connection, protocol = await loop.create_unix_connection(
                factory, str(self.address), **kwargs
            )
        else:
            kwargs.setdefault("ssl", self.client_ssl)
            host, port = self._tcp_address()
            connection, protocol = await loop.create_connection(factory, host, port, **kwargs)
        self._client_connections.append(connection)
        self._lost[id(connection)] = lambda: lost
        return connection, protocol

    async def close_server(self) -> None:
        """Stop the servers and close their connections, as a server that goes away.

        The listening sockets close, every server-side connection closes (its client
        reads the end of stream, also while it is blocked in a read and also if the
        server had not started its handler yet: a connection whose accept or TLS
        handshake finishes after this call is closed at once, without calling the
        handler), and running handlers get up to
        :attr:`handler_timeout` seconds to return before they are cancelled and
        reported. Client connections stay open: the test sees what its client does.
        Exceptions a handler raises because its connection was closed here
        (:class:`ConnectionError`, :class:`EOFError`) are not reported.

        Example:
            ```python
            await transport.close_server()
            assert await reader.read() == b""
            ```
        """
        servers, self._servers = self._servers, []
        self._generation += 1
        await _stop_servers(servers)
        self._close_connections(self._server_connections)
        await self._wait_for_handlers()
        await self._wait_closed(servers)

    async def close(self) -> None:
        """Close every client, server and handler this context made; raise handler errors.

        In order: the clients made by :meth:`connect` and :meth:`create_connection`
        close; the servers stop listening; handlers get :attr:`handler_timeout`
        seconds to return (then they are cancelled and reported); the remaining
        server-side connections close; the Unix socket directory is removed.
        Calling it again does nothing.

        Raises:
            aiotestkit.HandlerError: if a connection handler or server protocol
                raised, or did not return in time. Its message has each traceback.

        Example:
            ```python
            await transport.close()
            ```
        """
        if self._closed:
            return
        self._closed = True
        try:
            clients, self._client_connections = self._client_connections, []
            self._close_connections(clients, mark=False)
            await self._wait_connections_closed(clients)
            servers, self._servers = self._servers, []
            await _stop_servers(servers)
            await self._wait_for_handlers()
            self._close_connections(self._server_connections)
            await self._wait_connections_closed(self._server_connections)
            await self._wait_closed(servers)
            self._writers.clear()
        finally:
            if self._socket_path is not None:
                remove_socket(self._socket_path)
        self._raise_failures()

    async def __aenter__(self) -> TransportContext:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(f"cannot {action}: {self!r} is closed")

    def _tcp_address(self) -> tuple[str, int]:
        address = self.address
        assert isinstance(address, tuple)
        return address

    def _add_server(self, server: asyncio.AbstractServer) -> asyncio.AbstractServer:
        self._servers.append(server)
        if self.name != "unix" and self._port is None:
            sockets: Sequence[socket.socket] = getattr(server, "sockets", ())
            self._port = int(sockets[0].getsockname()[1])
        return server

    def _track_handler(self, callback: ClientConnectedCallback) -> ClientConnectedCallback:
        where = f"connection handler {_callable_name(callback)}"
        generation = self._generation

        def handle(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> Awaitable[None] | None:
            # asyncio calls this in the protocol's connection_made, before the handler's
            # task first runs: the connection is the context's from this moment, so
            # close_server() closes it even if the handler has not started yet.
            connection = writer.transport
            self._server_connections.append(connection)
            self._writers.append(writer)
            self._lost[id(connection)] = writer.wait_closed
            if self._stopped_since(generation):
                # Accepted (or its TLS handshake finished) after close_server() or
                # close() stopped this server: closed at once, as by a server gone away.
                self._closed_by_context.add(id(connection))
                connection.close()
                return None
            return self._run_handler(where, callback, reader, writer)

        return handle

    async def _run_handler(
        self,
        where: str,
        callback: ClientConnectedCallback,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            result = callback(reader, writer)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            if task not in self._cancelled:
                raise
            # Cancelled by this context (it hung, and is reported): end normally, so
            # asyncio's done-callback does not log the cancellation as an error.
        except (ConnectionError, EOFError) as error:
            if id(writer.transport) not in self._closed_by_context:
                self._failures.append(_Failure(where, error))
            writer.close()
        except Exception as error:
            self._failures.append(_Failure(where, error))
            writer.close()

    def _stopped_since(self, generation: int) -> bool:
        """Whether the servers started in ``generation`` were stopped since."""
        return self._closed or self._generation != generation

    def _track_protocol(
        self, protocol: asyncio.BaseProtocol, generation: int
    ) -> asyncio.BaseProtocol:
        where = type(protocol).__qualname__
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        connection: list[asyncio.BaseTransport] = []
        for name in _PROTOCOL_CALLBACKS:
            method = getattr(protocol, name, None)
            if method is None:
                continue
            wrapped = self._wrap_protocol_callback(
                f"{where}.{name}()", name, method, lost, connection, generation
            )
            with contextlib.suppress(AttributeError):  # protocols with __slots__
                setattr(protocol, name, wrapped)
        _on_connection_lost(protocol, lost)
        return protocol

    def _wrap_protocol_callback(
        self,
        where: str,
        name: str,
        method: Callable[..., Any],
        lost: asyncio.Future[None],
        connection: list[asyncio.BaseTransport],
        generation: int,
    ) -> Callable[..., Any]:
        def callback(*args: Any) -> Any:
            if name == "connection_made":
                connection.append(args[0])
                self._server_connections.append(args[0])
                self._lost[id(args[0])] = lambda: lost
            try:
                result = method(*args)
                if name == "connection_made" and self._stopped_since(generation):
                    # Made after close_server() or close() stopped this server (the
                    # protocol still sees connection_made before connection_lost).
                    self._closed_by_context.add(id(args[0]))
                    args[0].close()
                return result
            except Exception as error:
                self._failures.append(_Failure(f"server protocol {where}", error))
                if name == "get_buffer" or not connection:
                    raise  # asyncio handles it (and the loop's handler logs it)
                # Recorded for close(): drop the connection as asyncio would, without
                # sending the same failure to the loop's exception handler too.
                transport = connection[0]
                if isinstance(transport, asyncio.WriteTransport):
                    transport.abort()
                else:  # pragma: no cover - stream servers only make write transports
                    transport.close()
                return None

        return callback

    def _close_connections(
        self, connections: Sequence[asyncio.BaseTransport], *, mark: bool = True
    ) -> None:
        for connection in connections:
            if mark:
                self._closed_by_context.add(id(connection))
            if not connection.is_closing():
                connection.close()

    async def _wait_connections_closed(self, connections: Sequence[asyncio.BaseTransport]) -> None:
        waiters = [self._lost[id(c)] for c in connections if id(c) in self._lost]
        await wait_all(waiters)
        # A protocol whose connection_lost could not be watched (__slots__): poll.
        await _wait_until_closed([c for c in connections if id(c) not in self._lost])

    async def _wait_for_handlers(self) -> None:
        running = {task for task in self._handlers if not task.done()}
        if running:
            _, hanging = await asyncio.wait(running, timeout=self.handler_timeout)
            for task in hanging:
                self._cancelled.add(task)
                task.cancel()
                self._failures.append(
                    _Failure(
                        f"connection handler task {task.get_name()}",
                        TimeoutError(
                            f"still running {self.handler_timeout:g} s after the server "
                            "stopped and its clients closed; it was cancelled. Make the "
                            "handler return when its client closes (reader.read() returns "
                            "b''), and close clients the test opened itself"
                        ),
                    )
                )
            if hanging:
                await asyncio.wait(hanging)
        self._handlers = {task for task in self._handlers if not task.done()}

    async def _wait_closed(self, servers: Sequence[asyncio.AbstractServer]) -> None:
        for server in servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), CLOSE_TIMEOUT)

    def _raise_failures(self) -> None:
        failures, self._failures = self._failures, []
        if not failures:
            return
        listed = "\n\n".join(
            f"[{number}] {failure.describe()}" for number, failure in enumerate(failures, 1)
        )
        raise HandlerError(
            f"{len(failures)} server handler failure(s) on {self!r}; a failure in a "
            f"handler task is not seen by the test, so it is reported here:\n\n{listed}"
        ) from failures[0].error


async def _stop_servers(servers: Sequence[asyncio.AbstractServer]) -> None:
    """Close the servers, keeping the connections they accepted already.

    asyncio accepts a connection in one loop iteration and makes its transport in a
    task that runs in the next. :meth:`asyncio.Server.close` in between makes that
    transport fail (its server's ``_attach()`` asserts that the server still listens)
    and leaves the accepted socket open and unseen, its client waiting for ever: a
    Unix socket client is usually accepted but not yet served when ``connect``
    returns. So first stop accepting, then let those tasks make their transports (the
    handler's ``connection_made`` closes them at once), then close the servers.
    """
    loop = asyncio.get_running_loop()
    for server in servers:
        for sock in getattr(server, "sockets", ()):
            # Loops without readers (proactor) accept through their own futures.
            with contextlib.suppress(NotImplementedError):
                loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)
    for server in servers:
        server.close()


def _on_connection_lost(protocol: asyncio.BaseProtocol, lost: asyncio.Future[None]) -> None:
    """Resolve ``lost`` once ``protocol.connection_lost`` ran (wrapping it)."""
    original = protocol.connection_lost

    def connection_lost(exc: Exception | None) -> None:
        try:
            original(exc)
        finally:
            if not lost.done():
                lost.set_result(None)

    with contextlib.suppress(AttributeError):  # protocols with __slots__
        protocol.connection_lost = connection_lost  # type: ignore[method-assign]


async def _wait_until_closed(connections: Sequence[asyncio.BaseTransport]) -> None:
    """Wait (at most :data:`CLOSE_TIMEOUT` seconds) until every transport let go of its socket."""
    # A transport has no "closed" event for outsiders; its socket is gone once its
    # protocol saw connection_lost, so poll for that, briefly.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_TIMEOUT
    polls = 0
    while loop.time() < deadline and any(_is_open(c) for c in connections):
        # connection_lost runs a loop iteration or two after close(): yield first,
        # sleep only if it takes longer (a TLS close waits for the peer's reply).
        await asyncio.sleep(0 if polls < 20 else 0.001)
        polls += 1


def _is_open(connection: asyncio.BaseTransport) -> bool:
    """Whether a transport still has its socket (its protocol did not see the loss yet)."""
    if not connection.is_closing():
        return True
    try:
        sock = connection.get_extra_info("socket")
        return sock is not None and bool(sock.fileno() != -1)
    except (AttributeError, OSError):  # a closed TLS transport dropped its protocol
        return False
