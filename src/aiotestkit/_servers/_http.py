"""The case-controlled HTTP test server: the test case answers each request itself."""

from __future__ import annotations

import asyncio
import enum
import json
import re
import ssl as ssl_module
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import hdrs, web
from aiohttp.test_utils import RawTestServer

from .._core import (
    CLOSE_TIMEOUT,
    DEFAULT_TIMEOUT,
    CertificateAuthority,
    check_timeout,
    default_certificate_authority,
    shared_sni_server_context,
    timeout_details,
)
from ..errors import (
    ClientClosedConnection,
    ReceiveTimeout,
    RequestNotPending,
    UnexpectedRequestsWarning,
    UnusedExpectationsWarning,
)
from ._base import CaseControlledServerBase
from ._expectations import (
    UNSET,
    Criteria,
    Expectation,
    differences,
    drop_connection,
    format_unexpected,
    format_unused,
)
from ._response_stream import ResponseStream

__all__ = ["CaseControlledTestServer"]

_CLIENT_CLOSED = "its client closed the connection before the answer"

DEFAULT_CLIENT_MAX_SIZE = 1024**2
"""aiohttp's limit on a request body, in bytes (1 MiB)."""


def _describe(request: web.BaseRequest) -> str:
    return f"{request.method} {request.path_qs}"


def _is_upgrade(request: web.BaseRequest) -> bool:
    connection = request.headers.get(hdrs.CONNECTION, "").lower()
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
    return "upgrade" in connection and upgrade == "websocket"


class ExchangeState(enum.Enum):
    """Where one HTTP exchange stands.

    ``PENDING``: the request waits for the test. ``ANSWERED``: the test gave the whole
    response. ``STREAMING``: the status line and headers are sent and the test writes
    the body step by step. ``FINISHED``: the handler is done (the response was sent,
    the client left, or the connection was dropped).
    """

    PENDING = "pending"
    ANSWERED = "answered"
    STREAMING = "streaming"
    FINISHED = "finished"


@dataclass
class _Exchange:
    """One request held by the server, the future its handler waits on, and its state.

    The seam for streamed responses: a stream moves the exchange from ``PENDING`` to
    ``STREAMING`` (the request is then no longer answerable with ``send_response``),
    and resolves :attr:`response` with the prepared response once the body is
    finished or aborted. The check at close counts ``PENDING`` and ``STREAMING``
    exchanges whose client is still connected as unanswered.
    """

    request: web.BaseRequest
    response: asyncio.Future[web.StreamResponse]
    handler: asyncio.Task[Any] | None = field(default=None)
    state: ExchangeState = ExchangeState.PENDING
    stream: ResponseStream | None = None

    @property
    def client_connected(self) -> bool:
        """Whether the client still holds its connection (it has not closed or reset it)."""
        transport = self.request.transport
        return transport is not None and not transport.is_closing()

    @property
    def unanswered(self) -> bool:
        """Whether a connected client still waits for (the rest of) its answer."""
        waiting = self.state in (ExchangeState.PENDING, ExchangeState.STREAMING)
        return waiting and self.client_connected


@dataclass
class _Record:
    """One request in the server's log: its body once read, and who answered it."""

    request: web.BaseRequest
    body: bytes | None = None
    expectation: Expectation | None = None
    received: bool = False
    refused: bool = False


class CaseControlledTestServer(CaseControlledServerBase[web.BaseRequest], RawTestServer):
    """An HTTP server that hands every request to the test case, which answers it.

    Built on :class:`aiohttp.test_utils.RawTestServer`: a real server on a real socket.
    Each request waits in the server until the test takes it with
    :meth:`receive_request` and answers it with :meth:`send_response` or
    :meth:`send_json`, so the test reads in the order things happen and controls when
    the client gets its answer.

    A request whose ``Content-Length`` is above ``client_max_size`` is answered
    ``413 Request Entity Too Large`` by the server at once, without reading its body,
    and the connection is closed; :meth:`receive_request` still returns it (it is no
    longer pending). A chunked body is checked as it is read:
    ``await request.read()`` raises :class:`aiohttp.web.HTTPRequestEntityTooLarge`,
    a response the test can pass to :meth:`send_response`.

    Requests the test does not care about can be declared instead with
    :meth:`expect`: a request that matches an expectation is answered by it, any
    other goes to the test through :meth:`receive_request` as before, so one test can
    declare the token refresh and the pages of a listing and case-control the one
    request it is about. Once the server has an expectation it reads each request's
    body before matching (a chunked body over ``client_max_size`` is then answered
    413 by the server). :attr:`requests` logs every request.

    Args:
        scheme: ``"http"``, ``"https"`` or ``""`` (``"https"`` when ``ssl`` is given,
            else ``"http"``). ``"https"`` without ``ssl`` serves certificates from
            ``certificate_authority`` for whatever host name the client asks for (SNI).
        host: the address to listen on (str); ``"127.0.0.1"`` by default.
        port: the TCP port (int); ``None`` picks a free one.
        ssl: a server :class:`ssl.SSLContext` to serve HTTPS with.
        certificate_authority: the authority for ``scheme="https"`` without ``ssl``;
            :func:`aiotestkit.default_certificate_authority` by default.
        client_max_size: the largest request body accepted, in bytes (int, > 0);
            aiohttp's 1 MiB by default.
        unmatched: what happens to a request no expectation matches: ``"receive"``
            (default) hands it to the test through :meth:`receive_request`;
            ``"abort"`` closes its connection at once (the client sees the server
            disconnect), for servers that are wholly declarative. Either way the
            request is reported at the end (hygiene check ``unexpected_requests``)
            unless the test received it.
        **kwargs: passed to :class:`aiohttp.test_utils.RawTestServer`.

    Raises:
        ValueError: if ``scheme`` is not one of the above, ``"http"`` with ``ssl``,
            ``client_max_size`` is not positive, or ``unmatched`` is unknown.
        TypeError: if ``ssl`` is not an :class:`ssl.SSLContext`, or ``client_max_size``
            not an int.

    Example:
        ```python
        async def test_price():
            async with CaseControlledTestServer() as server:
                task = asyncio.create_task(session.get(server.make_url("/price")))
                request = await server.receive_request()
                assert request.path == "/price"
                server.send_json(request, {"price": "3602.2"})
                response = await task
        ```
    """

    _item_name = "request"
    _leftover_name = "unanswered request(s)"
    _close_effect = "Their clients saw the connection drop"
    _leftover_fix = (
        "Answer each request with send_response() or send_json(), and finish() or abort() "
        "each response stream, before the server closes."
    )

    def __init__(
        self,
        *,
        scheme: str = "",
        host: str = "127.0.0.1",
        port: int | None = None,
        ssl: ssl_module.SSLContext | None = None,
        certificate_authority: CertificateAuthority | None = None,
        client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
        unmatched: Literal["receive", "abort"] = "receive",
        **kwargs: Any,
    ) -> None:
        if scheme not in ("", "http", "https"):
            raise ValueError(f"scheme must be 'http' or 'https', got {scheme!r}")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext, got {type(ssl).__name__}")
        if scheme == "http" and ssl is not None:
            raise ValueError("scheme='http' cannot serve with an SSL context; use 'https'")
        if isinstance(client_max_size, bool) or not isinstance(client_max_size, int):
            raise TypeError(
                f"client_max_size must be a number of bytes (int), got {client_max_size!r}"
            )
        if client_max_size <= 0:
            raise ValueError(
                f"client_max_size must be a positive number of bytes, got {client_max_size!r}"
            )
        if unmatched not in ("receive", "abort"):
            raise ValueError(f"unmatched must be 'receive' or 'abort', got {unmatched!r}")
        if scheme == "https" and ssl is None:
            authority = certificate_authority or default_certificate_authority()
            ssl = shared_sni_server_context(authority)
        RawTestServer.__init__(
            self, self._handle_request, scheme=scheme, host=host, port=port, **kwargs
        )
        self._init_handoff()
        self.client_max_size = client_max_size
        self._server_ssl = ssl
        self._exchanges: dict[int, _Exchange] = {}
        self._finished: dict[int, tuple[weakref.ref[web.BaseRequest], str]] = {}
        self._upgrade_handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]] | None
        self._upgrade_handler = None
        self.unmatched = unmatched
        self._expectations: list[Expectation] = []
        self._log: dict[int, _Record] = {}
        self._responding: set[asyncio.Task[Any]] = set()

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        """Start listening. ``async with server:`` calls this for you.

        Args:
            loop: deprecated by aiohttp; leave it out.
            **kwargs: passed to :class:`aiohttp.web.Server`; ``ssl`` overrides the
                context given to the constructor.

        Example:
            ```python
            server = CaseControlledTestServer()
            await server.start_server()
            try:
                ...
            finally:
                await server.close()
            ```
        """
        kwargs.setdefault("ssl", self._server_ssl)
        await RawTestServer.start_server(self, loop=loop, **kwargs)
        self._started()

    async def _make_runner(self, debug: bool = True, **kwargs: Any) -> web.ServerRunner:
        server = web.Server(
            self._handle_request,
            request_factory=self._make_request,
            loop=self._loop,
            debug=debug,
            **kwargs,
        )
        # The handlers of unanswered requests are cancelled before the runner shuts
        # down; what is left is aiohttp finishing its connections (lingering over an
        # unread body): that must not hold close() for aiohttp's 60 s.
        return web.ServerRunner(server, debug=debug, shutdown_timeout=CLOSE_TIMEOUT)

    def _make_request(
        self,
        message: Any,
        payload: Any,
        protocol: Any,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message,
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=self.client_max_size,
        )

    def _live_address(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def _unfinished(self) -> list[web.BaseRequest]:
        unexpected = {id(record.request) for record in self._unexpected()}
        return [
            e.request
            for e in self._exchanges.values()
            if e.unanswered and id(e.request) not in unexpected
        ]

    def _on_received(self, item: web.BaseRequest) -> None:
        record = self._log.get(id(item))
        if record is not None:
            record.received = True

    def _unexpected(self) -> list[_Record]:
        """Requests no expectation answered and the test never received, if it has any."""
        if not self._expectations:
            return []
        return [
            record
            for record in self._log.values()
            if record.expectation is None and not record.received and not record.refused
        ]

    def _other_leftovers(self, *, closing: bool) -> list[tuple[str, Warning]]:
        found: list[tuple[str, Warning]] = []
        if not self._expectations:
            return found  # nothing declared: nothing unused, nothing unexpected
        name = f"<{type(self).__name__} {self._address or 'never started'}>"
        unused = [e for e in self._expectations if not e._satisfied]
        if unused:
            report = format_unused(name, unused, closing=closing)
            found.append(("unused_expectations", UnusedExpectationsWarning(report)))
        unexpected = self._unexpected()
        if unexpected:
            report = format_unexpected(
                name,
                [(record.request, record.body) for record in unexpected],
                self._expectations,
                closing=closing,
            )
            found.append(("unexpected_requests", UnexpectedRequestsWarning(report)))
        return found

    def _describe(self, item: web.BaseRequest) -> str:
        exchange = self._exchanges.get(id(item))
        if exchange is not None and exchange.stream is not None:
            return f"{_describe(item)} ({exchange.stream._describe_unfinished()})"
        return _describe(item)

    def _receive_hint(self) -> str:
        answered = sum(record.expectation is not None for record in self._log.values())
        by_expectations = f"; {answered} answered by expectations" if answered else ""
        return (
            "did the client send one to this server's address? "
            f"(pending: {self._describe_pending()}{by_expectations})"
        )

    def expect(
        self,
        method: str,
        path: str | re.Pattern[str],
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = UNSET,
        data: bytes | str | None = None,
        times: int | None = 1,
        optional: bool = False,
    ) -> Expectation:
        """Declare a request the server answers itself, without the test.

        Complete the returned expectation with its answer: ``.respond(...)``,
        ``.respond_with(handler)``, ``.respond_events(events)`` or ``.drop()``. A
        request matches when every given part matches; expectations are tried in the
        order they were declared, and the first that matches and has uses left
        answers. A request that none answers is handed to the test through
        :meth:`receive_request` (or aborted, with ``unmatched="abort"``).

        When the server closes, or the test ends with it open, an expectation used
        fewer than ``times`` times fails the test (hygiene check
        ``unused_expectations``) unless it is ``optional``; so does a request that
        matched none and that the test never received (``unexpected_requests``),
        reported with the expectations it came closest to and what differed.

        Args:
            method: the HTTP method (str), compared case-insensitively.
            path: the path (str, starting with ``/``, without the query), compared
                exactly, or a compiled regular expression the whole path must match.
            query: parameters the query must have (a subset): each value a str (or
                number), or a list of them for a repeated parameter.
            headers: headers the request must have (a subset; names case-insensitive,
                values exact).
            json: the body, compared after parsing as JSON (``None`` is ``null``).
            data: the body, exactly (bytes, or str encoded as UTF-8).
            times: how many requests it answers (int, >= 1), ``None`` for any number.
            optional: whether answering fewer than ``times`` requests is fine.

        Returns:
            The :class:`aiotestkit.Expectation`, to complete with its answer.

        Raises:
            TypeError: if an argument has the wrong type (``json`` not encodable).
            ValueError: if ``path`` does not start with ``/`` or holds a query, both
                ``json`` and ``data`` are given, or ``times`` is below 1.
            RuntimeError: if the server is closed.

        Example:
            ```python
            server.expect("POST", "/oauth/token").respond(json={"access_token": "t"})
            pages = server.expect("GET", "/items", times=None).respond(json=[])
            ```
        """
        if self.closed or self._closing:
            raise RuntimeError(f"cannot add an expectation: {self!r} is closed")
        criteria = Criteria.build(method, path, query=query, headers=headers, json=json, data=data)
        expectation = Expectation(criteria, times=times, optional=optional)
        self._expectations.append(expectation)
        return expectation

    @property
    def expectations(self) -> list[Expectation]:
        """The expectations declared with :meth:`expect`, in order.

        Example:
            ```python
            assert all(e.called for e in server.expectations)
            ```
        """
        return list(self._expectations)

    @property
    def requests(self) -> list[web.BaseRequest]:
        """Every request that reached the server, in order, whoever answered it.

        The requests answered by an expectation, and all requests once the server has
        an expectation, have their body read: ``await request.read()`` (or
        ``.json()``, ``.text()``) returns it at once, also after the exchange ended.

        Example:
            ```python
            [f"{r.method} {r.path}" for r in server.requests]
            # ['POST /oauth/token', 'GET /items', 'GET /items']
            ```
        """
        return [record.request for record in self._log.values()]

    def body_of(self, request: web.BaseRequest) -> bytes | None:
        """The body of ``request`` as the server read it, without waiting.

        Args:
            request: one of :attr:`requests`.

        Returns:
            The body (bytes), or ``None`` if the server did not read it: it had no
            expectation when the request came, and handed it to the test unread (then
            ``await request.read()`` reads it).

        Raises:
            aiotestkit.RequestNotPending: if ``request`` never reached this server.

        Example:
            ```python
            [server.body_of(r) for r in server.requests]
            # [b'grant_type=client_credentials', b'']
            ```
        """
        record = self._log.get(id(request))
        if record is None or record.request is not request:
            raise RequestNotPending(f"{_describe(request)} never reached {self!r}")
        return record.body

    def _match(self, request: web.BaseRequest, body: bytes | None) -> Expectation | None:
        for expectation in self._expectations:
            if not expectation._answered or expectation._used_up:
                continue
            if not differences(expectation.criteria, request, body):
                return expectation
        return None

    async def _answer_declared(self, record: _Record) -> web.StreamResponse | None:
        """Answer the request of ``record`` from the expectations; ``None`` if none matched."""
        request = record.request
        try:
            record.body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            record.refused = True
            self._finish(request, "the server answered it 413: its body is above client_max_size")
            raise
        expectation = self._match(request, record.body)
        if expectation is None:
            return None
        record.expectation = expectation
        handler = expectation._accept(request, record.body)
        task = asyncio.current_task()
        assert task is not None
        self._responding.add(task)
        self._finish(request, f"{expectation!r} answered it")
        try:
            return await handler(request)
        finally:
            self._responding.discard(task)

    @property
    def pending_requests(self) -> list[web.BaseRequest]:
        """The requests the server holds whose client waits for an answer, oldest first.

        It includes requests that :meth:`receive_request` has not returned yet, and
        leaves out those whose client closed its connection.

        Example:
            ```python
            assert server.pending_requests == []
            ```
        """
        return [e.request for e in self._exchanges.values() if e.unanswered]

    async def _handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._upgrade_handler is not None and _is_upgrade(request):
            return await self._upgrade_handler(request)
        record = _Record(request)
        self._log[id(request)] = record
        key = id(request)
        if request.content_length is not None and request.content_length > self.client_max_size:
            record.refused = True
            self._finish(
                request,
                f"the server answered it 413: its body of {request.content_length} bytes "
                f"is above client_max_size={self.client_max_size}",
            )
            self._hand_off(request)
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.client_max_size, actual_size=request.content_length
            )
        if self._expectations or self.unmatched == "abort":
            declared = await self._answer_declared(record)
            if declared is not None:
                return declared
            if self.unmatched == "abort":
                self._finish(request, "no expectation matched it and the server aborted it")
                return await drop_connection(request)
        exchange = _Exchange(
            request=request,
            response=asyncio.get_running_loop().create_future(),
            handler=asyncio.current_task(),
        )
        self._exchanges[key] = exchange
        self._hand_off(request)
        try:
            response = await exchange.response
        finally:
            exchange.state = ExchangeState.FINISHED
            del self._exchanges[key]
            if key not in self._finished:
                self._finish(request, _CLIENT_CLOSED)
        if isinstance(response, web.HTTPException):
            raise response  # aiohttp sends it; returning one is deprecated
        return response

    def _finish(self, request: web.BaseRequest, reason: str) -> None:
        key = id(request)

        def forget(_: object) -> None:
            self._finished.pop(key, None)

        self._finished[key] = (weakref.ref(request, forget), reason)

    async def receive_request(self, *, timeout: float = DEFAULT_TIMEOUT) -> web.BaseRequest:
        """Wait for the next request that reaches the server, and return it.

        The request stays pending, its client waiting, until the test answers it with
        :meth:`send_response` or :meth:`send_json`. Its body can be read as usual
        (``await request.json()``).

        Args:
            timeout: how long to wait, in seconds (float, > 0; keyword-only).

        Returns:
            The :class:`aiohttp.web.BaseRequest`, in the order requests arrived.

        Raises:
            aiotestkit.ReceiveTimeout: (a :class:`TimeoutError`) if no request arrived
                within ``timeout`` seconds.
            RuntimeError: if the server is not started or already closed.
            TypeError, ValueError: if ``timeout`` is not a positive number.

        Example:
            ```python
            request = await server.receive_request(timeout=1.0)
            assert (request.method, request.path_qs) == ("GET", "/0/public/Ticker?pair=XXBTZUSD")
            ```
        """
        return await self._receive(timeout)

    def receive_request_nowait(self) -> web.BaseRequest:
        """Return the next request that reached the server, without waiting.

        Returns:
            The oldest request not returned by a ``receive_request*`` call yet.

        Raises:
            aiotestkit.ReceiveTimeout: if no request is waiting.

        Example:
            ```python
            request = server.receive_request_nowait()
            ```
        """
        return self._receive_nowait()

    def send_response(self, request: web.BaseRequest, *args: Any, **kwargs: Any) -> None:
        """Answer ``request``: its handler returns the response to the client.

        Either pass the arguments of :class:`aiohttp.web.Response` (``status``,
        ``text``, ``body``, ``headers``, ``content_type``, …) or a ready
        :class:`aiohttp.web.StreamResponse` as the only positional argument.

        Args:
            request: a request returned by :meth:`receive_request` of this server.
            *args: positional arguments of :class:`aiohttp.web.Response`, or one
                :class:`aiohttp.web.StreamResponse`.
            **kwargs: keyword arguments of :class:`aiohttp.web.Response`.

        Raises:
            aiotestkit.RequestNotPending: (a :class:`RuntimeError`) if ``request`` was
                answered already, its client went away, or this server never held it.
            TypeError, ValueError: as :class:`aiohttp.web.Response` raises them for bad
                arguments, or for a response object mixed with other arguments.

        Example:
            ```python
            server.send_response(request, status=404, text="no such pair")
            ```
        """
        exchange = self._exchange_for(request)
        response: web.StreamResponse
        if args and isinstance(args[0], web.StreamResponse):
            if len(args) > 1 or kwargs:
                raise TypeError(
                    "send_response() takes either a ready response object alone, or the "
                    "arguments of aiohttp.web.Response, not both"
                )
            response = args[0]
        else:
            response = web.Response(*args, **kwargs)
        self._answer(exchange, response)

    def send_json(
        self,
        request: web.BaseRequest,
        data: Any,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        dumps: Callable[[Any], str] = json.dumps,
    ) -> None:
        """Answer ``request`` with ``data`` encoded as JSON, content type ``application/json``.

        Args:
            request: a request returned by :meth:`receive_request` of this server.
            data: anything ``dumps`` can encode.
            status: the HTTP status code (int).
            headers: extra response headers.
            dumps: the JSON encoder; :func:`json.dumps` by default.

        Raises:
            aiotestkit.RequestNotPending: as for :meth:`send_response`.
            TypeError: if ``data`` cannot be encoded.

        Example:
            ```python
            server.send_json(request, {"error": [], "result": {}})
            ```
        """
        exchange = self._exchange_for(request)
        response = web.json_response(data, status=status, headers=headers, dumps=dumps)
        self._answer(exchange, response)

    async def start_stream(
        self,
        request: web.BaseRequest,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = "text/event-stream",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ResponseStream:
        """Start answering ``request`` with a body the test writes step by step.

        The status line and headers are sent at once; the returned
        :class:`aiotestkit.ResponseStream` then writes the body (bytes, or server-sent
        events) until :meth:`~aiotestkit.ResponseStream.finish` or
        :meth:`~aiotestkit.ResponseStream.abort`. The body uses chunked transfer
        encoding unless ``headers`` has a ``Content-Length``. A stream left neither
        finished nor aborted counts as an unanswered request.

        Args:
            request: a request returned by :meth:`receive_request` of this server.
            status: the HTTP status code (int).
            headers: response headers (a mapping of str to str).
            content_type: the ``Content-Type`` (str), ``text/event-stream`` by default;
                ``None`` sends none. A ``Content-Type`` in ``headers`` wins.
            timeout: how long sending the headers may take, in seconds (float, > 0).

        Returns:
            The :class:`aiotestkit.ResponseStream` of the response.

        Raises:
            aiotestkit.RequestNotPending: (a :class:`RuntimeError`) if ``request`` was
                answered already, has a stream already, its client went away, or this
                server never held it.
            aiotestkit.ClientClosedConnection: if the client closed its connection.
            TypeError, ValueError: for a bad status or header.

        Example:
            ```python
            request = await server.receive_request()
            stream = await server.start_stream(request)
            await stream.send_event('{"delta": "Hello"}')
            await stream.finish()
            ```
        """
        exchange = self._exchange_for(request)
        response = web.StreamResponse(status=status, headers=headers)
        if content_type is not None and hdrs.CONTENT_TYPE not in response.headers:
            response.content_type = content_type
        if hdrs.CONTENT_LENGTH not in response.headers:
            response.enable_chunked_encoding()
        stream = ResponseStream(
            request,
            response,
            on_end=lambda reason, aborted: self._end_stream(exchange, response, reason, aborted),
        )
        exchange.state = ExchangeState.STREAMING
        exchange.stream = stream
        try:
            await asyncio.wait_for(response.prepare(request), check_timeout(timeout))
        except (ConnectionError, asyncio.TimeoutError) as error:
            raise ClientClosedConnection(
                f"cannot start a response stream for {_describe(request)} on {self!r}: "
                "its client closed the connection"
            ) from error
        return stream

    def _end_stream(
        self, exchange: _Exchange, response: web.StreamResponse, reason: str, aborted: bool
    ) -> None:
        if exchange.state is not ExchangeState.STREAMING:
            return  # the handler is gone already: the client left, or the server closed
        self._finish(exchange.request, reason)
        exchange.state = ExchangeState.ANSWERED
        if aborted and exchange.handler is not None:
            exchange.handler.cancel()
        elif not exchange.response.done():
            exchange.response.set_result(response)

    async def wait_for_disconnect(
        self, request: web.BaseRequest, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        """Wait until the client of the unanswered ``request`` closes its connection.

        Use it to check that a client which gave up (a timeout, a cancelled task)
        really released its connection, and to leave no request pending.

        Args:
            request: a request returned by :meth:`receive_request` and not answered.
            timeout: how long to wait, in seconds (float, > 0).

        Raises:
            aiotestkit.ReceiveTimeout: if the connection stayed open ``timeout`` seconds.
            aiotestkit.RequestNotPending: if ``request`` was answered or dropped by the
                test, or this server never held it.
            TypeError, ValueError: if ``timeout`` is not a positive number.

        Example:
            ```python
            with pytest.raises(asyncio.TimeoutError):
                await client_task
            await server.wait_for_disconnect(request)
            ```
        """
        timeout = check_timeout(timeout)
        exchange = self._exchanges.get(id(request))
        if (
            exchange is None
            or exchange.request is not request
            or exchange.state is not ExchangeState.PENDING
        ):
            finished = self._finished.get(id(request))
            if finished is not None and finished[0]() is request and finished[1] == _CLIENT_CLOSED:
                return
            self._exchange_for(request)  # raises the precise RequestNotPending
            return
        assert exchange.handler is not None
        done, _ = await asyncio.wait({exchange.handler}, timeout=timeout)
        if not done:
            raise ReceiveTimeout(
                f"the client of {_describe(request)} kept its connection to {self!r} open "
                f"for {timeout:g} s without an answer; did it give up on the request?"
                f"{timeout_details(timeout)}"
            )

    def abort(self, request: web.BaseRequest) -> None:
        """Abort the exchange of ``request``: close its connection without an answer.

        The client sees the server go away mid-request (aiohttp raises
        ``ServerDisconnectedError``), as when a real server crashes or a proxy cuts the
        connection. The same verb as :meth:`aiotestkit.StreamConnection.abort`.

        Args:
            request: a request returned by :meth:`receive_request` of this server.

        Raises:
            aiotestkit.RequestNotPending: as for :meth:`send_response`.

        Example:
            ```python
            server.abort(await server.receive_request())
            ```
        """
        exchange = self._exchange_for(request)
        self._finish(request, "the test aborted it")
        transport = request.transport
        if transport is not None:
            transport.close()
        if exchange.handler is not None:
            exchange.handler.cancel()

    def _exchange_for(self, request: web.BaseRequest) -> _Exchange:
        if not isinstance(request, web.BaseRequest):
            raise TypeError(
                "send_response() needs the request returned by receive_request(), "
                f"got {type(request).__name__}"
            )
        exchange = self._exchanges.get(id(request))
        if exchange is not None and exchange.request is request:
            if exchange.state is ExchangeState.STREAMING:
                raise RequestNotPending(
                    f"{_describe(request)} has a response stream already; write to it, "
                    "then finish() or abort() it"
                )
            if exchange.state is not ExchangeState.PENDING:
                raise RequestNotPending(
                    f"{_describe(request)} was answered already; each request takes one answer"
                )
            return exchange
        finished = self._finished.get(id(request))
        if finished is not None and finished[0]() is request:
            raise RequestNotPending(f"cannot answer {_describe(request)}: {finished[1]}")
        raise RequestNotPending(
            f"{self!r} is not holding {_describe(request)}: answer a request on the server "
            "whose receive_request() returned it"
        )

    def _answer(self, exchange: _Exchange, response: web.StreamResponse) -> None:
        self._finish(exchange.request, "it was answered already; each request takes one answer")
        exchange.state = ExchangeState.ANSWERED
        exchange.response.set_result(response)

    def _describe_pending(self) -> str:
        return ", ".join(_describe(r) for r in self.pending_requests) or "none"

    async def _shutdown(self) -> None:
        """Cancel the handlers of unanswered requests, wait for them, stop the server."""
        unanswered = [e for e in self._exchanges.values() if e.state is not ExchangeState.ANSWERED]
        handlers = [e.handler for e in unanswered if e.handler is not None]
        handlers.extend(self._responding)  # expectations still streaming their answer
        for task in self._responding:
            task.cancel()
        for exchange in unanswered:
            self._finish(exchange.request, f"{self!r} closed before it was answered")
            if exchange.handler is not None:
                exchange.handler.cancel()
        if handlers:
            await asyncio.wait(handlers)
        for reference, _ in list(self._finished.values()):
            request = reference()
            if request is not None and not request.content.is_eof():
                # After an answer aiohttp lingers up to 10 s reading the rest of a body
                # the test did not read (the client may have stopped sending): end
                # that wait as its own timeout would, and the connection closes.
                request.content.set_exception(asyncio.TimeoutError())
        server = self.runner.server if self.runner is not None else None
        tls_connections = [
            handler.transport
            for handler in (server.connections if isinstance(server, web.Server) else ())
            if handler.transport is not None
            and handler.transport.get_extra_info("sslcontext") is not None
        ]
        await RawTestServer.close(self)
        for transport in tls_connections:
            # The TLS close sent its close_notify and waits (asyncio: up to 30 s) for
            # the client's. A client that keeps its socket open without reading it
            # never answers: a requests.Session whose pool a caught HTTPError still
            # holds (urllib3 2 leaves pools to the garbage collector), any idle
            # keep-alive connection of a blocking client. A server that closes
            # need not wait for that answer (RFC 8446, 6.1): drop the connection.
            transport.abort()
