"""The case-controlled WebSocket server: the test accepts each connection and plays the server.

It holds a :class:`aiotestkit.CaseControlledTestServer` (its :attr:`http` attribute)
and answers upgrades with aiohttp's :class:`aiohttp.web.WebSocketResponse`: upgrade
requests wait until the test takes them with
:meth:`CaseControlledWebSocketServer.receive_connection`; the test then accepts or
refuses the upgrade, and receives and sends messages in the order the protocol goes.
Other requests go to ``server.http.receive_request()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web
from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

from .._core import DEFAULT_TIMEOUT, check_timeout, get_within, timeout_details
from ..errors import (
    ClientClosedConnection,
    ReceiveTimeout,
    SendTimeout,
    UnexpectedMessage,
    UnfinishedConnectionsWarning,
)
from ._base import CaseControlledConnectionServer, HeldConnection
from ._http import CaseControlledTestServer

__all__ = ["CaseControlledWebSocketServer", "WebSocketConnection"]

_ENDS = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)
_PREVIEW = 200


def _describe_message(message: WSMessage) -> str:
    data = message.data
    text = repr(data)
    if len(text) > _PREVIEW:
        text = text[:_PREVIEW] + "…"
    return f"{message.type.name} {text}"


class WebSocketConnection(HeldConnection):
    """One WebSocket connection held by a :class:`CaseControlledWebSocketServer`.

    It starts as an upgrade request that waits for the test: :meth:`accept` completes
    the handshake, :meth:`refuse` answers with an HTTP status instead. Every
    ``receive_*``, ``send_*``, :meth:`ping` and :meth:`close` accepts the upgrade
    first if the test has not decided yet. Once accepted, the server reads the
    client's messages in the background (answering WebSocket pings and the close
    handshake as any server does) and keeps them until the test receives them.

    Attributes:
        request: the upgrade :class:`aiohttp.web.BaseRequest` (path, query, headers).
        number: the connection's position on its server, from 1 (int).

    Example:
        ```python
        connection = await server.receive_connection()
        assert connection.path == "/v2"
        assert await connection.receive_json() == {"method": "ping"}
        await connection.send_json({"method": "pong"})
        await connection.close()
        ```
    """

    def __init__(
        self, server: CaseControlledWebSocketServer, request: web.BaseRequest, number: int
    ) -> None:
        loop = asyncio.get_running_loop()
        self._server = server
        self.request = request
        self.number = number
        self._decision: asyncio.Future[web.StreamResponse] = loop.create_future()
        self._prepared: asyncio.Future[web.WebSocketResponse] = loop.create_future()
        self._ws: web.WebSocketResponse | None = None
        self._messages: asyncio.Queue[WSMessage] = asyncio.Queue()
        self._ended: WSMessage | None = None
        self._received_count = 0
        self._last_received: WSMessage | None = None
        self._closed_by_test = False
        self._close_code: int | None = None
        self._refused = False
        self._handler: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} #{self.number} {self.request.path_qs} on {self._server!r}>"

    @property
    def path(self) -> str:
        """The path of the upgrade request, e.g. ``"/v2"``."""
        return self.request.path

    @property
    def query(self) -> MultiDictProxy[str]:
        """The query parameters of the upgrade request."""
        return MultiDictProxy(self.request.url.query)

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The headers of the upgrade request (case-insensitive)."""
        return self.request.headers

    @property
    def protocol(self) -> str | None:
        """The subprotocol agreed in the handshake, ``None`` if none or not accepted yet."""
        return None if self._ws is None else self._ws.ws_protocol

    @property
    def close_code(self) -> int | None:
        """The close code once the connection closed, else ``None``.

        The code the test sent when the test closed it, the client's when it closed.
        """
        if self._close_code is not None:
            return self._close_code
        return None if self._ws is None else self._ws.close_code

    @property
    def finished(self) -> bool:
        """Whether the test refused or closed it, or the client closed and all was received."""
        if self._refused or self._closed_by_test:
            return True
        return self._ended is not None and self._messages.qsize() <= 1

    async def accept(
        self,
        *,
        protocols: Iterable[str] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Complete the WebSocket handshake: the client's connect call returns.

        Args:
            protocols: subprotocols the server supports; the first the client also
                offers is agreed (see :attr:`protocol`).
            headers: extra headers for the ``101 Switching Protocols`` response.
            timeout: how long the handshake may take, in seconds (float, > 0).

        Raises:
            RuntimeError: if the test accepted or refused the upgrade already.
            aiohttp.web.HTTPException: if the request is not a valid WebSocket upgrade.
            ReceiveTimeout: if the handshake did not complete in time.

        Example:
            ```python
            await connection.accept(protocols=["v2.kraken"])
            ```
        """
        timeout = check_timeout(timeout)
        self._check_undecided("accept")
        response = web.WebSocketResponse(protocols=tuple(protocols), timeout=DEFAULT_TIMEOUT)
        if headers:
            response.headers.update(headers)
        self._decision.set_result(response)
        try:
            await asyncio.wait_for(asyncio.shield(self._prepared), timeout)
        except asyncio.TimeoutError:  # pragma: no cover - the handshake is local
            raise ReceiveTimeout(
                f"{self!r}: the handshake did not complete in {timeout:g} s"
                f"{timeout_details(timeout)}"
            ) from None

    def refuse(
        self,
        status: int = 403,
        *,
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Refuse the upgrade: the client gets an HTTP response with ``status``.

        Args:
            status: the HTTP status code (int), e.g. 401, 403, 429, 503.
            text: the response body (str).
            headers: response headers.

        Raises:
            RuntimeError: if the test accepted or refused the upgrade already.
            ValueError: if ``status`` is 101 (that is accepting).

        Example:
            ```python
            connection.refuse(401, text="invalid token")
            ```
        """
        self._check_undecided("refuse")
        if status == 101:
            raise ValueError("status 101 accepts the upgrade; call accept() instead")
        self._refused = True
        self._decision.set_result(web.Response(status=status, text=text, headers=headers))

    async def receive(self, *, timeout: float = DEFAULT_TIMEOUT) -> WSMessage:
        """Return the next message from the client, whatever its type.

        Args:
            timeout: how long to wait, in seconds (float, > 0).

        Returns:
            The :class:`aiohttp.WSMessage`: ``TEXT`` or ``BINARY``; once the
            connection ended, its end (``CLOSE``, ``CLOSED`` or ``ERROR``), every time.

        Raises:
            aiotestkit.ReceiveTimeout: if no message arrived within ``timeout`` seconds.
            RuntimeError: if the test refused the upgrade.

        Example:
            ```python
            message = await connection.receive()
            assert (message.type, message.data) == (WSMsgType.TEXT, '{"method": "ping"}')
            ```
        """
        timeout = check_timeout(timeout)
        await self._ensure_accepted("receive")
        try:
            message = await get_within(self._messages, timeout)
        except asyncio.TimeoutError:
            raise ReceiveTimeout(
                f"{self!r} waited {timeout:g} s for a message from the client; "
                f"{self._history()}. Did the client send it? Raise the timeout if it is slow."
                f"{timeout_details(timeout)}"
            ) from None
        if message.type in _ENDS:
            self._messages.put_nowait(message)  # every later receive sees the end too
            return message
        self._received_count += 1
        self._last_received = message
        return message

    async def receive_str(self, *, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Return the next message, which must be text.

        Args:
            timeout: how long to wait, in seconds (float, > 0).

        Returns:
            The text (str).

        Raises:
            aiotestkit.ReceiveTimeout: if no message arrived in time.
            aiotestkit.UnexpectedMessage: if the message is not text.
            aiotestkit.ClientClosedConnection: if the connection ended instead.

        Example:
            ```python
            assert await connection.receive_str() == "hello"
            ```
        """
        return str(await self._receive_type(WSMsgType.TEXT, "a text message", timeout))

    async def receive_bytes(self, *, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        r"""Return the next message, which must be binary.

        Args:
            timeout: how long to wait, in seconds (float, > 0).

        Returns:
            The data (bytes).

        Raises:
            aiotestkit.ReceiveTimeout: if no message arrived in time.
            aiotestkit.UnexpectedMessage: if the message is not binary.
            aiotestkit.ClientClosedConnection: if the connection ended instead.

        Example:
            ```python
            assert await connection.receive_bytes() == b"\x00\x01"
            ```
        """
        data = await self._receive_type(WSMsgType.BINARY, "a binary message", timeout)
        return bytes(data)

    async def receive_json(
        self,
        *,
        loads: Callable[[str], Any] = json.loads,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        """Return the next message decoded from JSON; it must be text.

        Args:
            loads: the JSON decoder; :func:`json.loads` by default.
            timeout: how long to wait, in seconds (float, > 0).

        Returns:
            The decoded value.

        Raises:
            aiotestkit.ReceiveTimeout: if no message arrived in time.
            aiotestkit.UnexpectedMessage: if the message is not text or not JSON.
            aiotestkit.ClientClosedConnection: if the connection ended instead.

        Example:
            ```python
            assert await connection.receive_json() == {"method": "ping"}
            ```
        """
        text = await self.receive_str(timeout=timeout)
        try:
            return loads(text)
        except ValueError as error:
            raise UnexpectedMessage(
                f"{self!r}: the client sent text that is not JSON ({error}): {text[:_PREVIEW]!r}"
            ) from None

    async def send_str(self, data: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send a text message.

        Args:
            data: the text (str).
            timeout: how long the send may wait for the client to read, in seconds.

        Raises:
            aiotestkit.SendTimeout: if the client did not read in time.
            RuntimeError: if the test refused or closed the connection.
            ConnectionError: if the client went away.

        Example:
            ```python
            await connection.send_str("hello")
            ```
        """
        ws = await self._ensure_open("send")
        await self._send(ws.send_str(data), f"text {data[:_PREVIEW]!r}", timeout)

    async def send_bytes(self, data: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        r"""Send a binary message.

        Args:
            data: the bytes.
            timeout: how long the send may wait for the client to read, in seconds.

        Raises:
            aiotestkit.SendTimeout: if the client did not read in time.
            RuntimeError: if the test refused or closed the connection.
            ConnectionError: if the client went away.

        Example:
            ```python
            await connection.send_bytes(b"\x00\x01")
            ```
        """
        ws = await self._ensure_open("send")
        await self._send(ws.send_bytes(data), f"{len(data)} bytes", timeout)

    async def send_json(
        self,
        data: Any,
        *,
        dumps: Callable[[Any], str] = json.dumps,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Send ``data`` encoded as JSON in a text message.

        Args:
            data: anything ``dumps`` encodes.
            dumps: the JSON encoder; :func:`json.dumps` by default.
            timeout: how long the send may wait for the client to read, in seconds.

        Raises:
            aiotestkit.SendTimeout: if the client did not read in time.
            RuntimeError: if the test refused or closed the connection.
            TypeError: if ``data`` cannot be encoded.

        Example:
            ```python
            await connection.send_json({"method": "pong"})
            ```
        """
        await self.send_str(dumps(data), timeout=timeout)

    async def ping(self, payload: bytes = b"", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send a WebSocket ping frame; the client's pong is consumed by the server.

        Args:
            payload: up to 125 bytes the client echoes in its pong.
            timeout: how long the send may wait, in seconds (float, > 0).

        Raises:
            aiotestkit.SendTimeout: if the client did not read in time.
            RuntimeError: if the test refused or closed the connection.

        Example:
            ```python
            await connection.ping(b"are you there")
            ```
        """
        ws = await self._ensure_open("ping")
        await self._send(ws.ping(payload), f"a ping {payload!r}", timeout)

    async def close(
        self,
        code: int = WSCloseCode.OK,
        message: bytes | str = b"",
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Close the connection from the server side with ``code`` and ``message``.

        The client receives the close frame; messages it sent that the test did not
        receive are dropped. Calling it again, or after the client closed, does nothing.

        Args:
            code: the WebSocket close code (int), e.g. 1000 (normal), 1001 (going
                away), 1008 (policy), 1011 (server error), 4000-4999 (application).
            message: the close reason (bytes or str, up to 123 bytes).
            timeout: how long the close may take, in seconds (float, > 0).

        Raises:
            RuntimeError: if the test refused the upgrade.

        Example:
            ```python
            await connection.close(1001, "maintenance")
            ```
        """
        timeout = check_timeout(timeout)
        if self._closed_by_test:
            return
        ws = await self._ensure_accepted("close")
        if self._ended is not None:  # the client closed it already
            return
        self._closed_by_test = True
        self._close_code = code
        if isinstance(message, str):
            message = message.encode("utf-8")
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), timeout)
        except asyncio.TimeoutError:
            raise SendTimeout(f"{self!r} did not close within {timeout:g} s") from None
        if self._handler is not None:
            await asyncio.wait({self._handler}, timeout=timeout)

    # -- internals ---------------------------------------------------------------------

    def _check_undecided(self, action: str) -> None:
        if self._decision.done():
            done = "refused" if self._refused else "accepted"
            raise RuntimeError(f"cannot {action} {self!r}: the test {done} the upgrade already")

    async def _ensure_accepted(self, action: str) -> web.WebSocketResponse:
        if self._refused:
            raise RuntimeError(f"cannot {action} on {self!r}: the test refused the upgrade")
        if not self._decision.done():
            await self.accept()
        return await asyncio.shield(self._prepared)

    async def _ensure_open(self, action: str) -> web.WebSocketResponse:
        ws = await self._ensure_accepted(action)
        if self._closed_by_test:
            raise RuntimeError(f"cannot {action} on {self!r}: the test closed it")
        return ws

    async def _send(self, sending: Any, what: str, timeout: float) -> None:
        timeout = check_timeout(timeout)
        try:
            await asyncio.wait_for(sending, timeout)
        except asyncio.TimeoutError:
            raise SendTimeout(
                f"{self!r} could not send {what} within {timeout:g} s: the client does not read"
            ) from None

    async def _receive_type(self, kind: WSMsgType, what: str, timeout: float) -> Any:
        message = await self.receive(timeout=timeout)
        if message.type in _ENDS:
            raise ClientClosedConnection(
                f"{self!r} ended ({self._describe_end(message)}) while the test waited for "
                f"{what}; {self._history()}"
            )
        if message.type is not kind:
            raise UnexpectedMessage(
                f"{self!r}: the test waited for {what}, the client sent "
                f"{_describe_message(message)}"
            )
        return message.data

    def _describe_end(self, message: WSMessage) -> str:
        if message.type is WSMsgType.ERROR:
            return f"error {message.data!r}"
        by = "the test" if self._closed_by_test else "the client"
        return f"closed by {by} with code {self.close_code}"

    def _history(self) -> str:
        if self._last_received is None:
            return "no message received before"
        return (
            f"{self._received_count} message(s) received before, the last: "
            f"{_describe_message(self._last_received)}"
        )

    def _describe_unfinished(self) -> str:
        """Describe the connection for the report of what the test left unfinished."""
        if not self.received:
            state = "never received by the test"
        elif not self._decision.done():
            state = "upgrade neither accepted nor refused"
        else:
            state = "left open"
        unread = [m for m in self._messages._queue if m.type not in _ENDS]  # type: ignore[attr-defined]
        if unread:
            listed = ", ".join(_describe_message(m) for m in unread[:3])
            state += f", {len(unread)} unread message(s): {listed}"
        return f"#{self.number} {self.request.path_qs} ({state})"

    async def _serve(self) -> web.StreamResponse:
        """The request handler's part: wait for the test, then read until the end."""
        self._handler = asyncio.current_task()
        response = await self._decision
        if not isinstance(response, web.WebSocketResponse):
            return response
        try:
            await response.prepare(self.request)
        except BaseException as error:
            self._prepared.set_exception(error)
            raise
        self._ws = response
        self._prepared.set_result(response)
        while True:
            message = await response.receive()
            self._messages.put_nowait(message)
            if message.type in _ENDS:
                self._ended = message
                return response


class CaseControlledWebSocketServer(CaseControlledConnectionServer[WebSocketConnection]):
    """A WebSocket server that hands every connection to the test, which plays the server.

    It holds a :class:`aiotestkit.CaseControlledTestServer`, :attr:`http`, built with
    the same arguments: WebSocket upgrade requests go to :meth:`receive_connection`,
    plain HTTP requests to ``server.http.receive_request()``. ``scheme="https"``
    serves certificates from the test certificate authority for the host name the
    client asks for (SNI), so a routed client connects to ``wss://ws.kraken.com``
    over verified TLS.

    Args:
        **kwargs: the arguments of :class:`aiotestkit.CaseControlledTestServer`
            (``scheme``, ``host``, ``port``, ``ssl``, ``certificate_authority``,
            ``client_max_size``).

    Raises:
        TypeError, ValueError: as :class:`aiotestkit.CaseControlledTestServer` raises
            them.

    Example:
        ```python
        async with CaseControlledWebSocketServer() as server:
            task = asyncio.create_task(session.ws_connect(server.make_ws_url("/v2")))
            connection = await server.receive_connection()
            await connection.accept()
            client = await task
            await client.send_str("hello")
            assert await connection.receive_str() == "hello"
            await connection.close()
        ```
    """

    _item_name = "WebSocket connection"
    _leftover_name = "unfinished WebSocket connection(s)"
    _close_effect = (
        "The open ones got a close frame (1001, going away), the undecided ones saw "
        "the connection drop"
    )
    _leftover_fix = (
        "Receive each connection, then refuse() it, close() it, or receive until the "
        "client closed."
    )
    _leftover_warning = UnfinishedConnectionsWarning

    def __init__(self, **kwargs: Any) -> None:
        self.http = CaseControlledTestServer(**kwargs)
        """The HTTP server that takes the connections; plain requests wait in it."""
        self.http._upgrade_handler = self._handle_upgrade
        self.http._reports_unclosed = False  # this server reports it
        self._init_handoff()

    @property
    def started(self) -> bool:
        """Whether :meth:`start_server` ran and :meth:`close` did not."""
        return self.http.started

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` ran."""
        return self.http.closed

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``: the scheme of the upgrade requests."""
        return self.http.scheme

    @property
    def host(self) -> str:
        """The address the server listens on (str)."""
        return self.http.host

    @property
    def port(self) -> int | None:
        """The TCP port (int) once started, ``None`` before and after."""
        return self.http.port

    def make_url(self, path: str = "/") -> URL:
        """Return the ``http://`` (or ``https://``) URL of ``path`` on this server.

        Args:
            path: the path and query (str).

        Returns:
            The :class:`yarl.URL`.

        Example:
            ```python
            assert str(server.make_url("/health")) == "http://127.0.0.1:40237/health"
            ```
        """
        return self.http.make_url(path)

    def make_ws_url(self, path: str = "/") -> URL:
        """Return the ``ws://`` (or ``wss://``) URL of ``path`` on this server.

        Args:
            path: the path and query (str), e.g. ``"/v2?token=x"``.

        Returns:
            The :class:`yarl.URL`.

        Example:
            ```python
            assert str(server.make_ws_url("/v2")) == "ws://127.0.0.1:40237/v2"
            ```
        """
        url = self.make_url(path)
        return url.with_scheme("wss" if url.scheme == "https" else "ws")

    async def start_server(self, **kwargs: Any) -> None:
        """Start listening; ``async with server:`` calls this for you.

        Args:
            **kwargs: as for :meth:`aiotestkit.CaseControlledTestServer.start_server`.

        Example:
            ```python
            await server.start_server()
            ```
        """
        await self.http.start_server(**kwargs)
        self._started()

    def _live_address(self) -> str:
        return str(self.make_ws_url("/")).rstrip("/")

    def _receive_hint(self) -> str:
        return (
            f"{super()._receive_hint()} (pending HTTP requests: {self.http._describe_pending()})"
        )

    async def _handle_upgrade(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._closing:
            return web.Response(status=503, text="the test server is closing")
        connection = WebSocketConnection(self, request, len(self._connections) + 1)
        self._hand_off(connection)
        return await connection._serve()

    async def _shutdown(self) -> None:
        """Close every WebSocket connection, then the HTTP server; wait for the handlers.

        Accepted connections still open get a close frame with code 1001 (going
        away); upgrades not decided are dropped; upgrade requests that arrive while
        it closes are answered 503.
        """
        handlers = [
            c._handler
            for c in self._connections
            if c._handler is not None and not c._handler.done()
        ]
        for connection in self._connections:  # first, before any await lets more arrive
            if connection._handler is not None and not connection._decision.done():
                connection._handler.cancel()
        for connection in self._connections:
            if connection._ws is not None and not connection._ws.closed:
                closing = connection._ws.close(
                    code=WSCloseCode.GOING_AWAY, message=b"server closed"
                )
                with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                    await asyncio.wait_for(closing, DEFAULT_TIMEOUT)
        if handlers:
            await asyncio.wait(handlers, timeout=DEFAULT_TIMEOUT)
        await self.http.close()
