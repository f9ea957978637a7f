"""The case-controlled HTTP test server: the test case answers each request itself."""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import RawTestServer

from .._core import (
    DEFAULT_TIMEOUT,
    CertificateAuthority,
    check_timeout,
    default_certificate_authority,
    get_within,
    shared_sni_server_context,
)
from .._loop import register_probe, report_issue
from ..errors import ReceiveTimeout, RequestNotPending, UnansweredRequestsWarning

__all__ = ["CaseControlledTestServer"]

_CLIENT_CLOSED = "its client closed the connection before the answer"


def _describe(request: web.BaseRequest) -> str:
    return f"{request.method} {request.path_qs}"


@dataclass
class _Exchange:
    """One request held by the server, and the future its handler waits on."""

    request: web.BaseRequest
    response: asyncio.Future[web.StreamResponse]
    handler: asyncio.Task[Any] | None = field(default=None)


class CaseControlledTestServer(RawTestServer):
    """An HTTP server that hands every request to the test case, which answers it.

    Built on :class:`aiohttp.test_utils.RawTestServer`: a real server on a real socket.
    Each request waits in the server until the test takes it with
    :meth:`receive_request` and answers it with :meth:`send_response` or
    :meth:`send_json`, so the test reads in the order things happen and controls when
    the client gets its answer.

    Args:
        scheme: ``"http"``, ``"https"`` or ``""`` (``"https"`` when ``ssl`` is given,
            else ``"http"``). ``"https"`` without ``ssl`` serves certificates from
            ``certificate_authority`` for whatever host name the client asks for (SNI).
        host: the address to listen on (str); ``"127.0.0.1"`` by default.
        port: the TCP port (int); ``None`` picks a free one.
        ssl: a server :class:`ssl.SSLContext` to serve HTTPS with.
        certificate_authority: the authority for ``scheme="https"`` without ``ssl``;
            :func:`aiotestkit.default_certificate_authority` by default.
        **kwargs: passed to :class:`aiohttp.test_utils.RawTestServer`.

    Raises:
        ValueError: if ``scheme`` is not one of the above, or ``"http"`` with ``ssl``.
        TypeError: if ``ssl`` is not an :class:`ssl.SSLContext`.

    Example:
        >>> async def test_price():
        ...     async with CaseControlledTestServer() as server:
        ...         task = asyncio.create_task(session.get(server.make_url("/price")))
        ...         request = await server.receive_request()
        ...         assert request.path == "/price"
        ...         server.send_json(request, {"price": "3602.2"})
        ...         response = await task
    """

    def __init__(
        self,
        *,
        scheme: str = "",
        host: str = "127.0.0.1",
        port: int | None = None,
        ssl: ssl_module.SSLContext | None = None,
        certificate_authority: CertificateAuthority | None = None,
        **kwargs: Any,
    ) -> None:
        if scheme not in ("", "http", "https"):
            raise ValueError(f"scheme must be 'http' or 'https', got {scheme!r}")
        if ssl is not None and not isinstance(ssl, ssl_module.SSLContext):
            raise TypeError(f"ssl must be an ssl.SSLContext, got {type(ssl).__name__}")
        if scheme == "http" and ssl is not None:
            raise ValueError("scheme='http' cannot serve with an SSL context; use 'https'")
        if scheme == "https" and ssl is None:
            authority = certificate_authority or default_certificate_authority()
            ssl = shared_sni_server_context(authority)
        super().__init__(self._handle_request, scheme=scheme, host=host, port=port, **kwargs)
        self._server_ssl = ssl
        self._exchanges: dict[int, _Exchange] = {}
        self._finished: dict[int, tuple[weakref.ref[web.BaseRequest], str]] = {}
        self._received: asyncio.Queue[web.BaseRequest] = asyncio.Queue()

    def __repr__(self) -> str:
        where = f"{self.scheme}://{self.host}:{self.port}" if self.started else "not started"
        return f"<{type(self).__name__} {where}>"

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        """Start listening. ``async with server:`` calls this for you.

        Args:
            loop: deprecated by aiohttp; leave it out.
            **kwargs: passed to :class:`aiohttp.web.Server`; ``ssl`` overrides the
                context given to the constructor.

        Example:
            >>> server = CaseControlledTestServer()
            >>> await server.start_server()
            >>> try:
            ...     ...
            ... finally:
            ...     await server.close()
        """
        kwargs.setdefault("ssl", self._server_ssl)
        await super().start_server(loop=loop, **kwargs)
        register_probe(self)

    def hygiene_issues(self) -> Iterator[tuple[str, str]]:
        """What the server is left with at the end of a test, for the hygiene checks.

        A started server that was not closed is reported as an unclosed resource, and
        each request it still holds as an unanswered request.

        Returns:
            An iterator of ``(check, message)`` pairs (see
            :class:`aiotestkit.LoopInstrumentation`).

        Example:
            >>> list(server.hygiene_issues())
            []
        """
        if not self.started or self.closed:
            return
        yield (
            "unclosed_resources",
            f"{self!r} was never closed; use 'async with' or 'await server.close()'",
        )
        for request in self.pending_requests:
            yield (
                "unanswered_requests",
                f"{_describe(request)} is still waiting for an answer on {self!r}",
            )

    async def __aenter__(self) -> CaseControlledTestServer:
        await self.start_server(loop=self._loop)
        return self

    @property
    def pending_requests(self) -> list[web.BaseRequest]:
        """The requests the server received and the test has not answered yet, oldest first.

        It includes requests that :meth:`receive_request` has not returned yet.

        Example:
            >>> assert server.pending_requests == []
        """
        return [exchange.request for exchange in self._exchanges.values()]

    async def _handle_request(self, request: web.BaseRequest) -> web.StreamResponse:
        exchange = _Exchange(
            request=request,
            response=asyncio.get_running_loop().create_future(),
            handler=asyncio.current_task(),
        )
        key = id(request)
        self._exchanges[key] = exchange
        self._received.put_nowait(request)
        try:
            return await exchange.response
        finally:
            del self._exchanges[key]
            if key not in self._finished:
                self._finish(request, _CLIENT_CLOSED)

    def _finish(self, request: web.BaseRequest, reason: str) -> None:
        key = id(request)

        def forget(_: object) -> None:
            self._finished.pop(key, None)

        self._finished[key] = (weakref.ref(request, forget), reason)

    async def receive_request(self, timeout: float = DEFAULT_TIMEOUT) -> web.BaseRequest:
        """Wait for the next request that reaches the server, and return it.

        The request stays pending, its client waiting, until the test answers it with
        :meth:`send_response` or :meth:`send_json`. Its body can be read as usual
        (``await request.json()``).

        Args:
            timeout: how long to wait, in seconds (float, > 0).

        Returns:
            The :class:`aiohttp.web.BaseRequest`, in the order requests arrived.

        Raises:
            aiotestkit.ReceiveTimeout: (a :class:`TimeoutError`) if no request arrived
                within ``timeout`` seconds.
            RuntimeError: if the server is not started or already closed.
            TypeError, ValueError: if ``timeout`` is not a positive number.

        Example:
            >>> request = await server.receive_request(timeout=1.0)
            >>> request.method, request.path_qs
            ('GET', '/0/public/Ticker?pair=XXBTZUSD')
        """
        timeout = check_timeout(timeout)
        self._check_open("receive a request")
        try:
            return await get_within(self._received, timeout)
        except asyncio.TimeoutError:
            raise ReceiveTimeout(
                f"{self!r} received no request within {timeout:g} s; "
                "did the client send one to this server's address? "
                f"(pending: {self._describe_pending()})"
            ) from None

    def receive_request_nowait(self) -> web.BaseRequest:
        """Return the next request that reached the server, without waiting.

        Returns:
            The oldest request not returned by a ``receive_request*`` call yet.

        Raises:
            aiotestkit.ReceiveTimeout: if no request is waiting.

        Example:
            >>> request = server.receive_request_nowait()
        """
        try:
            return self._received.get_nowait()
        except asyncio.QueueEmpty:
            raise ReceiveTimeout(f"{self!r} has no request waiting to be received") from None

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
            >>> server.send_response(request, status=404, text="no such pair")
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
            >>> server.send_json(request, {"error": [], "result": {}})
        """
        exchange = self._exchange_for(request)
        response = web.json_response(data, status=status, headers=headers, dumps=dumps)
        self._answer(exchange, response)

    async def wait_for_disconnect(
        self, request: web.BaseRequest, timeout: float = DEFAULT_TIMEOUT
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
            >>> with pytest.raises(asyncio.TimeoutError):
            ...     await client_task
            >>> await server.wait_for_disconnect(request)
        """
        timeout = check_timeout(timeout)
        exchange = self._exchanges.get(id(request))
        if exchange is None or exchange.request is not request or exchange.response.done():
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
            )

    def drop_connection(self, request: web.BaseRequest) -> None:
        """Close the connection of ``request`` without answering it.

        The client sees the server go away mid-request (aiohttp raises
        ``ServerDisconnectedError``), as when a real server crashes or a proxy cuts the
        connection.

        Args:
            request: a request returned by :meth:`receive_request` of this server.

        Raises:
            aiotestkit.RequestNotPending: as for :meth:`send_response`.

        Example:
            >>> server.drop_connection(await server.receive_request())
        """
        exchange = self._exchange_for(request)
        self._finish(request, "its connection was dropped by the test")
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
            if exchange.response.done():
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
        exchange.response.set_result(response)

    def _check_open(self, action: str) -> None:
        if self.closed:
            raise RuntimeError(f"cannot {action}: {self!r} is closed")
        if not self.started:
            raise RuntimeError(
                f"cannot {action}: {self!r} is not started; use 'async with server:' "
                "or 'await server.start_server()'"
            )

    def _describe_pending(self) -> str:
        return ", ".join(_describe(r) for r in self.pending_requests) or "none"

    async def close(self) -> None:
        """Drop the connections of unanswered requests, stop the server, wait for its tasks.

        The client of every pending request sees its connection close, as with a
        server that went away. Calling it again does nothing.

        The unanswered requests are reported to the hygiene checks of the test
        (check ``unanswered_requests``), or, when none is checking, warned about.

        Warns:
            aiotestkit.UnansweredRequestsWarning: if requests were still pending and
                no hygiene check took the report, naming each of them.

        Example:
            >>> await server.close()
        """
        unanswered = [e for e in self._exchanges.values() if not e.response.done()]
        handlers = [e.handler for e in unanswered if e.handler is not None]
        for exchange in unanswered:
            self._finish(exchange.request, f"{self!r} closed before it was answered")
            if exchange.handler is not None:
                exchange.handler.cancel()
        if handlers:
            await asyncio.wait(handlers)
        await super().close()
        if unanswered:
            listed = ", ".join(_describe(e.request) for e in unanswered)
            message = (
                f"{self!r} closed with {len(unanswered)} unanswered request(s): {listed}; "
                "their clients saw the connection drop. Answer each request with "
                "send_response() or send_json() before the server closes."
            )
            # Into the test's hygiene report when one is checking; a warning otherwise.
            if not report_issue("unanswered_requests", message):
                warnings.warn(UnansweredRequestsWarning(message), stacklevel=2)
