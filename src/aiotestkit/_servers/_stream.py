"""The case-controlled stream server: the test plays the server, byte by byte.

For clients of non-HTTP protocols (line protocols, SMTP, Redis, MQTT, JSON channels):
each connection waits in the server until the test takes it with
:meth:`CaseControlledStreamServer.receive_connection` and plays the server side with
``receive_*``/``send`` calls, over TCP, TLS or a Unix socket, with STARTTLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from typing import Any

from .._core import (
    CLOSE_TIMEOUT,
    DEFAULT_TIMEOUT,
    CertificateAuthority,
    abort_with_reset,
    check_timeout,
    default_certificate_authority,
    new_socket_path,
    remove_socket,
    select_transports,
    shared_sni_server_context,
    timeout_details,
    wait_all,
)
from ..errors import (
    ClientClosedConnection,
    ReceiveTimeout,
    SendTimeout,
    UnfinishedConnectionsWarning,
)
from ._base import CaseControlledConnectionServer, HeldConnection

__all__ = ["CaseControlledStreamServer", "StreamConnection"]

_CHUNK = 65536
_PREVIEW = 120


def _preview(data: bytes | bytearray) -> str:
    """Show ``data`` for a message: all of it when short, its start and end otherwise."""
    if len(data) <= 2 * _PREVIEW:
        return f"{bytes(data)!r} ({len(data)} bytes)"
    return f"{bytes(data[:_PREVIEW])!r}…{bytes(data[-_PREVIEW:])!r} ({len(data)} bytes)"


class StreamConnection(HeldConnection):
    r"""One client connection held by a :class:`CaseControlledStreamServer`; the test serves it.

    Every ``receive_*`` method waits at most ``timeout`` seconds and raises
    :class:`aiotestkit.ReceiveTimeout` with the bytes that did arrive; bytes that
    arrive beyond what a method returns stay buffered for the next call.

    Attributes:
        number: the connection's position on its server, from 1 (int).
        peername: the client's address, as :meth:`socket.socket.getpeername` gives it.

    Example:
        ```python
        connection = await server.receive_connection()
        assert await connection.receive_line() == b"PING\r\n"
        await connection.send(b"+PONG\r\n")
        await connection.close()
        ```
    """

    def __init__(
        self,
        server: CaseControlledStreamServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self.number = number
        self.peername: Any = writer.get_extra_info("peername")
        self._buffer = bytearray()
        self._returned = 0
        self._eof = False
        self._closed = False
        self._tls = server.transport == "tls"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.number} on {self._server!r}>"

    @property
    def finished(self) -> bool:
        """Whether the test closed or aborted the connection, or received the client's end."""
        return self._closed or (self._eof and not self._buffer)

    @property
    def tls(self) -> bool:
        """Whether the connection runs TLS (a ``"tls"`` server, or after :meth:`start_tls`)."""
        return self._tls

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return information about the connection, as its asyncio transport gives it.

        Args:
            name: what to get (str), as for :meth:`asyncio.BaseTransport.get_extra_info`:
                ``"peername"``, ``"sockname"``, ``"ssl_object"``, ``"peercert"`` (the
                client's certificate over TLS, when the server's context asked for
                one, e.g. :meth:`aiotestkit.CertificateAuthority.sni_server_context`
                with ``require_client_certificate=True``), ...
            default: what to return if the transport has no such information.

        Returns:
            The value, or ``default``.

        Example:
            ```python
            subject = connection.get_extra_info("peercert")["subject"]
            assert subject == ((("commonName", "worker-7"),),)
            ```
        """
        return self._writer.get_extra_info(name, default)

    @property
    def buffered(self) -> bytes:
        """Bytes that arrived from the client and no ``receive_*`` call returned yet."""
        return bytes(self._buffer)

    async def receive(self, max_bytes: int = _CHUNK, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Return what the client sent, at most ``max_bytes``, as soon as any arrived.

        Args:
            max_bytes: the most bytes to return (int, > 0).
            timeout: how long to wait for the first byte, in seconds (float, > 0).

        Returns:
            1 to ``max_bytes`` bytes, or ``b""`` once the client closed its side and
            every byte it sent was returned.

        Raises:
            aiotestkit.ReceiveTimeout: if nothing arrived within ``timeout`` seconds.
            RuntimeError: if the test closed the connection.
            ValueError: if ``max_bytes`` or ``timeout`` is not positive.

        Example:
            ```python
            data = await connection.receive(1024, timeout=1.0)
            ```
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes!r}")
        deadline = self._deadline(timeout)
        while not self._buffer and not self._eof:
            await self._fill(deadline, timeout, f"receive({max_bytes}): any data")
        return self._take(min(max_bytes, len(self._buffer)))

    async def receive_exactly(self, n: int, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Return exactly the next ``n`` bytes the client sends.

        Args:
            n: how many bytes (int, >= 0).
            timeout: how long to wait for all ``n`` bytes, in seconds (float, > 0).

        Returns:
            ``n`` bytes.

        Raises:
            aiotestkit.ReceiveTimeout: if fewer than ``n`` bytes arrived in time; the
                message shows those that did.
            aiotestkit.ClientClosedConnection: if the client closed before sending ``n``.
            RuntimeError: if the test closed the connection.
            ValueError: if ``n`` is negative or ``timeout`` not positive.

        Example:
            ```python
            header = await connection.receive_exactly(4)
            ```
        """
        if n < 0:
            raise ValueError(f"n must be a number of bytes >= 0, got {n!r}")
        deadline = self._deadline(timeout)
        what = f"receive_exactly({n}): {n} bytes"
        while len(self._buffer) < n:
            if self._eof:
                raise self._closed_error(what)
            await self._fill(deadline, timeout, what)
        return self._take(n)

    async def receive_until(self, separator: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        r"""Return the bytes up to and including the next ``separator``.

        Args:
            separator: the bytes that end the data (non-empty).
            timeout: how long to wait for the separator, in seconds (float, > 0).

        Returns:
            The data, ending with ``separator``.

        Raises:
            aiotestkit.ReceiveTimeout: if no ``separator`` arrived in time; the message
                shows the bytes that did.
            aiotestkit.ClientClosedConnection: if the client closed before sending it.
            RuntimeError: if the test closed the connection.
            ValueError: if ``separator`` is empty or ``timeout`` not positive.

        Example:
            ```python
            head = await connection.receive_until(b"\r\n\r\n")
            assert head == b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"
            ```
        """
        if not separator:
            raise ValueError("separator must not be empty")
        deadline = self._deadline(timeout)
        what = f"receive_until({separator!r}): data ending with {separator!r}"
        start = 0
        while (index := self._buffer.find(separator, start)) < 0:
            start = max(0, len(self._buffer) - len(separator) + 1)
            if self._eof:
                raise self._closed_error(what)
            await self._fill(deadline, timeout, what)
        return self._take(index + len(separator))

    async def receive_line(
        self, *, separator: bytes = b"\n", timeout: float = DEFAULT_TIMEOUT
    ) -> bytes:
        r"""Return the next line, with its line ending, as :meth:`asyncio.StreamReader.readline`.

        Args:
            separator: what ends a line; ``b"\n"`` also ends ``b"\r\n"`` lines.
            timeout: how long to wait for the whole line, in seconds (float, > 0).

        Returns:
            The line, ending with ``separator``.

        Raises:
            aiotestkit.ReceiveTimeout: if no whole line arrived in time.
            aiotestkit.ClientClosedConnection: if the client closed mid-line.
            RuntimeError: if the test closed the connection.

        Example:
            ```python
            assert await connection.receive_line() == b"EHLO client.example\r\n"
            ```
        """
        return await self.receive_until(separator, timeout=timeout)

    async def send(self, data: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        r"""Send ``data`` to the client and wait until the transport took it.

        Args:
            data: the bytes to send (bytes, bytearray or memoryview).
            timeout: how long the send buffer may stay full, in seconds (float, > 0).

        Raises:
            aiotestkit.SendTimeout: if the client did not read within ``timeout`` seconds.
            RuntimeError: if the test closed the connection.
            ConnectionError: if the client went away.

        Example:
            ```python
            await connection.send(b"250 OK\r\n")
            ```
        """
        timeout = check_timeout(timeout)
        self._check_open(f"send {_preview(bytes(data))}")
        self._writer.write(data)
        try:
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise SendTimeout(
                f"{self!r} could not send {_preview(bytes(data))} within {timeout:g} s: the "
                "client does not read. Read in the client before the server sends more."
            ) from None

    async def send_eof(self) -> None:
        """Close the sending side only (half-close): the client reads the end of stream.

        The test can still receive. Not possible on TLS connections.

        Raises:
            RuntimeError: if the test closed the connection, or it runs TLS.

        Example:
            ```python
            await connection.send_eof()
            ```
        """
        self._check_open("send the end of stream")
        if not self._writer.can_write_eof():
            raise RuntimeError(f"cannot half-close {self!r}: TLS connections cannot send EOF")
        self._writer.write_eof()
        await self._writer.drain()

    async def start_tls(
        self,
        ssl: ssl_module.SSLContext | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        r"""Upgrade the connection to TLS, as the server side of STARTTLS.

        Call it after the protocol's "go ahead" reply was sent (SMTP's ``220``): the
        client then starts the handshake. Without ``ssl`` the server presents a
        certificate from the test certificate authority for the name the client asks
        for (SNI), ``localhost``/``127.0.0.1``/``::1`` when it sends none.

        Args:
            ssl: the server :class:`ssl.SSLContext` to use instead.
            timeout: how long the handshake may take, in seconds (float, > 0).

        Raises:
            ssl.SSLError: if the handshake fails (the client rejected the certificate).
            RuntimeError: if the connection already runs TLS, the test closed it,
                the client sent bytes the test did not receive before the upgrade,
                or Python is older than 3.11.
            ReceiveTimeout: if the client did not complete the handshake in time.

        Example:
            ```python
            assert await connection.receive_line() == b"STARTTLS\r\n"
            await connection.send(b"220 Ready to start TLS\r\n")
            await connection.start_tls()
            ```
        """
        timeout = check_timeout(timeout)
        self._check_open("start TLS")
        if self._tls:
            raise RuntimeError(f"cannot start TLS on {self!r}: it runs TLS already")
        if self._buffer:
            raise RuntimeError(
                f"cannot start TLS on {self!r}: the client sent {_preview(self._buffer)} "
                "that the test did not receive; receive it first (a client must not send "
                "after STARTTLS before the handshake)"
            )
        start_tls = getattr(self._writer, "start_tls", None)
        if start_tls is None:  # Python 3.10
            raise RuntimeError("start_tls() needs Python 3.11 or later (StreamWriter.start_tls)")
        context = ssl or shared_sni_server_context(self._server.certificate_authority)
        try:
            await start_tls(context, ssl_handshake_timeout=timeout)
        except asyncio.TimeoutError:  # pragma: no cover - depends on the client
            raise ReceiveTimeout(
                f"{self!r}: the client did not complete the TLS handshake within {timeout:g} s"
                f"{timeout_details(timeout)}"
            ) from None
        self._tls = True

    async def close(self) -> None:
        """Close the connection cleanly: the client reads the end of stream (FIN).

        On TLS connections the server sends its TLS close first. Calling it again,
        or after :meth:`abort`, does nothing.

        Example:
            ```python
            await connection.close()
            ```
        """
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, ssl_module.SSLError, asyncio.TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_TIMEOUT)

    def abort(self) -> None:
        """Drop the connection at once: a TCP client sees a reset (RST).

        Unsent data is discarded. Over a Unix socket there is no reset: the client
        reads the end of stream, or a :class:`ConnectionResetError` if it was sending.

        Example:
            ```python
            connection.abort()
            ```
        """
        if self._closed:
            return
        self._closed = True
        abort_with_reset(self._writer.transport)

    # -- internals ---------------------------------------------------------------------

    def _deadline(self, timeout: float) -> float:
        check_timeout(timeout)
        self._check_open("receive")
        return asyncio.get_running_loop().time() + timeout

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise RuntimeError(f"cannot {action}: the test closed {self!r}")

    async def _fill(self, deadline: float, timeout: float, what: str) -> None:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise self._timeout_error(what, timeout)
        try:
            chunk = await asyncio.wait_for(self._reader.read(_CHUNK), remaining)
        except asyncio.TimeoutError:
            raise self._timeout_error(what, timeout) from None
        except ConnectionError:
            chunk = b""
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._returned += n
        return data

    def _history(self) -> str:
        return (
            f"received and not returned yet: {_preview(self._buffer)}; "
            f"returned by earlier receive calls: {self._returned} bytes"
        )

    def _timeout_error(self, what: str, timeout: float) -> ReceiveTimeout:
        return ReceiveTimeout(
            f"{self!r} waited {timeout:g} s for {what}; {self._history()}. "
            f"Did the client send it? Raise the timeout if it is slow.{timeout_details(timeout)}"
        )

    def _closed_error(self, what: str) -> ClientClosedConnection:
        return ClientClosedConnection(
            f"the client closed {self!r} while the test waited for {what}; {self._history()}"
        )

    def _describe_unfinished(self) -> str:
        """Describe the connection for the report of what the test left unfinished."""
        state = "never received by the test" if not self.received else "left open"
        # Bytes still in the StreamReader were never read by a receive call; show them
        # too (``_buffer`` is private but has been there since Python 3.4).
        pending = self._buffer + bytes(getattr(self._reader, "_buffer", b""))
        unread = f", unread {_preview(pending)}" if pending else ""
        return f"#{self.number} from {self.peername!r} ({state}{unread})"

    def _drop(self) -> None:
        self._closed = True
        self._writer.close()


class CaseControlledStreamServer(CaseControlledConnectionServer[StreamConnection]):
    r"""A stream server (TCP, TLS or Unix socket) whose every connection the test plays.

    Each client connection waits until the test takes it with
    :meth:`receive_connection`; the test then receives and sends bytes on the
    returned :class:`StreamConnection` in the order the protocol goes. The server
    starts no task of its own. Routable like aiohttp's test servers: it has ``host``
    and ``port`` (or ``path`` for a Unix socket) once started.

    Args:
        transport: ``"tcp"``, ``"tls"`` or ``"unix"``.
        host: the address TCP servers listen on (str).
        port: the TCP port (int); ``None`` picks a free one.
        path: the Unix socket path (str); ``None`` makes one in a short temporary
            directory. :meth:`close` removes the socket file.
        ssl: the server :class:`ssl.SSLContext` for ``"tls"``; by default the
            certificate comes from ``certificate_authority`` for the name the client
            asks for (SNI), so the server can stand in for any host.
        certificate_authority: for ``"tls"`` and :meth:`StreamConnection.start_tls`;
            :func:`aiotestkit.default_certificate_authority` by default.

    Raises:
        ValueError: if ``transport`` is unknown, or the arguments do not fit it
            (``path`` for TCP, ``ssl`` without ``"tls"``).

    Example:
        ```python
        async with CaseControlledStreamServer(transport="tls") as server:
            client = asyncio.create_task(redis_client.ping(server.host, server.port))
            connection = await server.receive_connection()
            assert await connection.receive_line() == b"PING\r\n"
            await connection.send(b"+PONG\r\n")
            await connection.close()
        ```
    """

    _leftover_name = "unfinished connection(s)"
    _close_effect = "Their clients read the end of stream"
    _leftover_fix = (
        "Receive each connection and end it with close() or abort(), or receive until "
        "the client's end of stream (receive() returns b'')."
    )
    _leftover_warning = UnfinishedConnectionsWarning

    def __init__(
        self,
        *,
        transport: str = "tcp",
        host: str = "127.0.0.1",
        port: int | None = None,
        path: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        certificate_authority: CertificateAuthority | None = None,
    ) -> None:
        (self.transport,) = select_transports([transport], source="CaseControlledStreamServer")
        if path is not None and self.transport != "unix":
            raise ValueError(f"path is for transport='unix', not {self.transport!r}")
        if ssl is not None and self.transport != "tls":
            raise ValueError(f"ssl is for transport='tls', not {self.transport!r}")
        self.certificate_authority = certificate_authority or default_certificate_authority()
        if self.transport == "tls" and ssl is None:
            ssl = shared_sni_server_context(self.certificate_authority)
        self.ssl = ssl
        self.host: str | None = None if self.transport == "unix" else host
        self.port: int | None = port
        self.path: str | None = path
        self._requested_port = port
        self._server: asyncio.AbstractServer | None = None
        self._closed = False
        self._init_handoff()

    @property
    def started(self) -> bool:
        """Whether :meth:`start_server` ran and :meth:`close` did not."""
        return self._server is not None and not self._closed

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self._closed

    @property
    def address(self) -> tuple[str, int] | str:
        """``(host, port)`` for TCP and TLS, the socket path for Unix sockets.

        Raises:
            RuntimeError: if the server is not started.
        """
        if self._server is None:
            raise RuntimeError(f"{self!r} has no address before start_server()")
        if self.transport == "unix":
            assert self.path is not None
            return self.path
        assert self.host is not None
        assert self.port is not None
        return (self.host, self.port)

    def describe_address(self) -> str:
        """Return the address as text: ``tcp://host:port``, ``tls://host:port`` or ``unix:path``.

        Returns:
            A str for messages, ``"not started"`` before :meth:`start_server`.

        Example:
            ```python
            assert server.describe_address() == "tls://127.0.0.1:40237"
            ```
        """
        if self._server is None:
            return f"{self.transport} (not started)"
        if self.transport == "unix":
            return f"unix:{self.path}"
        return f"{self.transport}://{self.host}:{self.port}"

    async def start_server(self) -> None:
        """Start listening; ``async with server:`` calls this for you.

        Raises:
            RuntimeError: if it is started already or closed.
            OSError: if the address is in use.

        Example:
            ```python
            await server.start_server()
            ```
        """
        if self._closed or self._server is not None:
            raise RuntimeError(f"cannot start {self!r}: it was started before")
        if self.transport == "unix":
            if self.path is None:
                self.path = new_socket_path()
            self._server = await asyncio.start_unix_server(self._accept, self.path)
        else:
            assert self.host is not None
            self._server = await asyncio.start_server(
                self._accept, self.host, self._requested_port or 0, ssl=self.ssl
            )
            self.port = int(self._server.sockets[0].getsockname()[1])
        self._started()

    def _live_address(self) -> str:
        return self.describe_address()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = StreamConnection(self, reader, writer, len(self._connections) + 1)
        if self._closed or self._closing:
            connection._drop()
            return
        self._hand_off(connection)

    async def _shutdown(self) -> None:
        """Stop listening, close every connection, remove the socket file."""
        self._closed = True
        try:
            for connection in self._connections:
                if not connection._closed:
                    connection._drop()
            if self._server is not None:
                self._server.close()
                await wait_all([c._writer.wait_closed for c in self._connections])
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT)
        finally:
            if self.transport == "unix" and self.path is not None and self._server is not None:
                remove_socket(self.path)
