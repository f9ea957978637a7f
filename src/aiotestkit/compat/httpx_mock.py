"""A pytest-httpx compatible mock for httpx, answered by a real test server over real sockets.

Use the ``aiotestkit_httpx_mock`` fixture where pytest-httpx has ``httpx_mock`` (the
names differ so both plugins can be installed)::

    async def test_price(aiotestkit_httpx_mock):
        aiotestkit_httpx_mock.add_response(url="https://api.example.com/price", json={"p": 3})
        async with httpx.AsyncClient() as client:
            assert (await client.get("https://api.example.com/price")).json() == {"p": 3}

Each response is an expectation on one :class:`aiotestkit.CaseControlledTestServer`
routed through the test's network sandbox for every mocked host: httpx opens a real
connection through its real transport (httpcore, anyio) and parses a real response,
so the mock cannot break when httpx changes its transport API (as pytest-httpx and
respx did on several httpx releases). At the end of the test, as pytest-httpx does,
a response that was not requested fails the test (hygiene check
``unused_expectations``) unless ``is_optional=True``, and so does a request no
response matched (``unexpected_requests``), with the closest responses and what
differed. Only :class:`httpx.AsyncClient` goes through the sandbox; what else differs
from pytest-httpx is listed in ``docs/migration.md``.
"""

from __future__ import annotations

import inspect
import json as json_module
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest
from aiohttp import web
from yarl import URL

from .._network import NetworkSandbox
from .._servers import Expectation
from ._origins import Origins, hold

__all__ = ["HTTPXMock"]

_NAME = "aiotestkit_httpx_mock"

_UNSUPPORTED_MATCHERS = ("proxy_url", "match_data", "match_files", "match_extensions")

Headers = Mapping[str, str] | Sequence[tuple[str, str]]
_NO_JSON: Any = object()


def _response_headers(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


def _to_web_response(response: httpx.Response) -> web.Response:
    """An httpx response (from a callback) as the server's answer: status, headers, body."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-length", "transfer-encoding", "content-encoding")
    ]
    return web.Response(status=response.status_code, headers=headers, body=response.content)


class HTTPXMock:
    """Responses for httpx requests, in pytest-httpx's API, served by a real server.

    Made by the ``aiotestkit_httpx_mock`` fixture. Responses are matched in the order
    they were added; each answers one request unless ``is_reusable=True``.

    Args:
        sandbox: the open network sandbox the responses are served through.
        assert_all_responses_were_requested: whether a response never requested fails
            the test (bool); as the ``httpx_mock`` marker option of pytest-httpx.

    Example:
        ```python
        aiotestkit_httpx_mock.add_response(url="https://api.example.com/", json={})
        ```
    """

    def __init__(
        self, sandbox: NetworkSandbox, *, assert_all_responses_were_requested: bool = True
    ) -> None:
        self._origins = Origins(sandbox, _NAME)
        self._strict = assert_all_responses_were_requested

    @classmethod
    def for_test(cls, node: pytest.Item, sandbox: NetworkSandbox) -> HTTPXMock:
        """The mock of one test, with the options of its ``httpx_mock`` marker.

        Args:
            node: the pytest test item.
            sandbox: the test's open network sandbox.

        Returns:
            A new :class:`HTTPXMock`.

        Raises:
            pytest.UsageError: if the marker has options that cannot be honoured over
                real sockets (the message says what to use instead).

        Example:
            ```python
            mock = HTTPXMock.for_test(request.node, network_sandbox)
            ```
        """
        marker = node.get_closest_marker("httpx_mock")
        options = dict(marker.kwargs) if marker is not None else {}
        unknown = sorted(set(options) - {"assert_all_responses_were_requested"})
        if unknown or (marker is not None and marker.args):
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.httpx_mock takes only "
                f"assert_all_responses_were_requested= for {_NAME}; "
                f"{unknown or list(marker.args if marker else ())} cannot be honoured over "
                "real sockets (for assert_all_requests_were_expected=False use "
                "@pytest.mark.hygiene(allow=['unexpected_requests'], reason=...); see "
                "docs/migration/respx-pytest-httpx.md)"
            )
        return cls(sandbox, **options)

    def __repr__(self) -> str:
        return f"<HTTPXMock {len(self._origins.server.expectations)} response(s)>"

    @property
    def server(self) -> Any:
        """The :class:`aiotestkit.CaseControlledTestServer` that answers the requests.

        Example:
            ```python
            aiotestkit_httpx_mock.server.expectations[0].assert_called_once()
            ```
        """
        return self._origins.server

    # -- responses --------------------------------------------------------------------------

    def _expect(
        self,
        url: str | httpx.URL | None,
        method: str | None,
        match_headers: Mapping[str, str] | None,
        match_content: bytes | None,
        match_json: Any,
        is_optional: bool | None,
        is_reusable: bool,
        unsupported: Mapping[str, Any],
    ) -> Expectation:
        given = sorted(name for name, value in unsupported.items() if value is not None)
        if given:
            raise TypeError(
                f"{_NAME}: {', '.join(given)} cannot be matched by a server over a socket "
                "(see docs/migration.md)"
            )
        if url is None or not isinstance(url, (str, httpx.URL)):
            raise TypeError(
                f"{_NAME}: give url= as a str or httpx.URL (a response without a URL, or "
                f"with a regular expression, names no host to serve), got {url!r}"
            )
        parsed = URL(str(url))
        headers = {"Host": self._origins.route(parsed), **dict(match_headers or {})}
        query: dict[str, list[str]] = {}
        for name, value in parsed.query.items():
            query.setdefault(name, []).append(value)
        optional = (not self._strict) if is_optional is None else is_optional
        body: dict[str, Any] = {} if match_json is _NO_JSON else {"json": match_json}
        return self._origins.server.expect(
            method or "GET",
            parsed.path or "/",
            query=query or None,
            headers=headers,
            data=match_content,
            times=None if is_reusable else 1,
            optional=optional,
            **body,
        )

    def add_response(
        self,
        status_code: int = 200,
        http_version: str = "HTTP/1.1",
        headers: Headers | None = None,
        content: bytes | None = None,
        text: str | None = None,
        html: str | None = None,
        stream: Any = None,
        json: Any = _NO_JSON,
        *,
        url: str | httpx.URL | None = None,
        method: str | None = None,
        match_headers: Mapping[str, str] | None = None,
        match_content: bytes | None = None,
        match_json: Any = _NO_JSON,
        is_optional: bool | None = None,
        is_reusable: bool = False,
        **unsupported: Any,
    ) -> None:
        """Answer the request to ``url`` (and ``method``, headers, body) with this response.

        Args:
            status_code: the status code (int).
            http_version: ``"HTTP/1.1"`` only (the server speaks HTTP/1.1).
            headers: response headers (mapping or list of pairs).
            content: the body (bytes).
            text: a text body, ``text/plain; charset=utf-8``.
            html: an HTML body, ``text/html; charset=utf-8``.
            stream: not supported: give ``content``.
            json: a body encoded as JSON, ``application/json``.
            url: the absolute URL to match (str or :class:`httpx.URL`); its query
                parameters must be in the request. Required.
            method: the method to match (``GET`` when omitted).
            match_headers: headers the request must have.
            match_content: the exact request body.
            match_json: the request body, compared after parsing as JSON.
            is_optional: whether the test may end without the request
                (default: not ``assert_all_responses_were_requested``).
            is_reusable: whether it answers any number of requests (else one).
            **unsupported: ``proxy_url``, ``match_data``, ``match_files``,
                ``match_extensions``: not supported.

        Raises:
            TypeError: if ``url`` is missing or a pattern, or an unsupported
                argument is given.
            ValueError: if ``http_version`` is not HTTP/1.1, or more than one body is given.

        Example:
            ```python
            aiotestkit_httpx_mock.add_response(
                url="https://api.example.com/orders", method="POST", status_code=201,
                match_json={"qty": 1}, json={"id": 7},
            )
            ```
        """
        if http_version != "HTTP/1.1":
            raise ValueError(f"{_NAME}: the test server speaks HTTP/1.1, not {http_version}")
        if stream is not None:
            raise TypeError(f"{_NAME}: stream= is not supported; give the body as content=")
        bodies = [b for b in (content, text, html) if b is not None] + (
            [] if json is _NO_JSON else [json]
        )
        if len(bodies) > 1:
            raise ValueError(f"{_NAME}: give one of content=, text=, html= and json=")
        response_headers = _response_headers(headers)
        typed = any(name.lower() == "content-type" for name, _ in response_headers)
        body = content or b""
        content_type = None
        if text is not None:
            body, content_type = text.encode("utf-8"), "text/plain; charset=utf-8"
        elif html is not None:
            body, content_type = html.encode("utf-8"), "text/html; charset=utf-8"
        elif json is not _NO_JSON:
            body, content_type = json_module.dumps(json).encode("utf-8"), "application/json"
        if content_type is not None and not typed:
            response_headers.append(("Content-Type", content_type))
        expectation = self._expect(
            url,
            method,
            match_headers,
            match_content,
            match_json,
            is_optional,
            is_reusable,
            unsupported,
        )

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response(status=status_code, headers=response_headers, body=body)

        expectation.respond_with(answer)

    def add_callback(
        self,
        callback: Callable[[httpx.Request], Any],
        *,
        url: str | httpx.URL | None = None,
        method: str | None = None,
        match_headers: Mapping[str, str] | None = None,
        match_content: bytes | None = None,
        match_json: Any = _NO_JSON,
        is_optional: bool | None = None,
        is_reusable: bool = False,
        **unsupported: Any,
    ) -> None:
        """Answer the matching request with what ``callback(request)`` returns.

        The callback runs in the server: it gets the request as the server received it
        (an :class:`httpx.Request`) and returns an :class:`httpx.Response` (or awaits
        one), whose status, headers and body the server sends.

        Args:
            callback: ``def callback(request: httpx.Request) -> httpx.Response`` or an
                ``async def``.
            url: as for :meth:`add_response`; the other matchers too.
            method: as for :meth:`add_response`.
            match_headers: as for :meth:`add_response`.
            match_content: as for :meth:`add_response`.
            match_json: as for :meth:`add_response`.
            is_optional: as for :meth:`add_response`.
            is_reusable: as for :meth:`add_response`.
            **unsupported: as for :meth:`add_response`.

        Raises:
            TypeError: as for :meth:`add_response`.

        Example:
            ```python
            aiotestkit_httpx_mock.add_callback(
                lambda request: httpx.Response(200, json={"echo": request.url.path}),
                url="https://api.example.com/echo",
            )
            ```
        """
        expectation = self._expect(
            url,
            method,
            match_headers,
            match_content,
            match_json,
            is_optional,
            is_reusable,
            unsupported,
        )

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            result = callback(self._httpx_request(request, await request.read()))
            if inspect.isawaitable(result):
                result = await result
            if not isinstance(result, httpx.Response):
                raise TypeError(
                    f"{_NAME}: the callback returned {result!r}, not an httpx.Response"
                )
            return _to_web_response(result)

        expectation.respond_with(answer)

    def add_exception(
        self,
        exception: BaseException,
        *,
        url: str | httpx.URL | None = None,
        method: str | None = None,
        match_headers: Mapping[str, str] | None = None,
        match_content: bytes | None = None,
        match_json: Any = _NO_JSON,
        is_optional: bool | None = None,
        is_reusable: bool = False,
        **unsupported: Any,
    ) -> None:
        """Make the matching request fail as the network makes it fail.

        A server cannot send an exception: it makes the failure happen. An
        :class:`httpx.TimeoutException` leaves the request unanswered until the
        client's timeout fires (use the virtual clock to take no real time); another
        :class:`httpx.TransportError` drops the connection, which httpx raises as
        :class:`httpx.RemoteProtocolError` (a ``TransportError``).

        Args:
            exception: an :class:`httpx.TimeoutException` or :class:`httpx.TransportError`.
            url: as for :meth:`add_response`; the other matchers too.
            method: as for :meth:`add_response`.
            match_headers: as for :meth:`add_response`.
            match_content: as for :meth:`add_response`.
            match_json: as for :meth:`add_response`.
            is_optional: as for :meth:`add_response`.
            is_reusable: as for :meth:`add_response`.
            **unsupported: as for :meth:`add_response`.

        Raises:
            TypeError: if ``exception`` is not a transport failure, or as for
                :meth:`add_response`.

        Example:
            ```python
            aiotestkit_httpx_mock.add_exception(
                httpx.ReadTimeout("slow"), url="https://api.example.com/slow"
            )
            ```
        """
        if not isinstance(exception, httpx.TransportError):
            raise TypeError(
                f"{_NAME}: {exception!r} cannot come from a server over a socket; a server "
                "makes transport failures happen: httpx.TimeoutException (no answer) or "
                "another httpx.TransportError (the connection drops)"
            )
        expectation = self._expect(
            url,
            method,
            match_headers,
            match_content,
            match_json,
            is_optional,
            is_reusable,
            unsupported,
        )
        if isinstance(exception, httpx.TimeoutException):
            hold(expectation)
        else:
            expectation.drop()

    # -- requests ---------------------------------------------------------------------------

    def _httpx_request(self, request: web.BaseRequest, body: bytes | None) -> httpx.Request:
        scheme = "https" if request.secure else "http"
        return httpx.Request(
            request.method,
            f"{scheme}://{request.host}{request.raw_path}",
            headers=[(name, value) for name, value in request.headers.items()],
            content=body or b"",
        )

    def get_requests(
        self,
        *,
        url: str | httpx.URL | None = None,
        method: str | None = None,
        match_headers: Mapping[str, str] | None = None,
        match_content: bytes | None = None,
        match_json: Any = _NO_JSON,
    ) -> list[httpx.Request]:
        """Every request the server received, in order, as :class:`httpx.Request` objects.

        Args:
            url: only requests to this URL (str or :class:`httpx.URL`, query included).
            method: only requests with this method.
            match_headers: only requests with these headers.
            match_content: only requests with this body.
            match_json: only requests with this JSON body.

        Returns:
            The requests as the server received them (what went over the wire).

        Example:
            ```python
            [r.url.path for r in aiotestkit_httpx_mock.get_requests(method="POST")]
            # ['/orders']
            ```
        """
        server = self._origins.server
        found = []
        for request in server.requests:
            sent = self._httpx_request(request, server.body_of(request))
            if url is not None and sent.url != httpx.URL(str(url)):
                continue
            if method is not None and sent.method != method.upper():
                continue
            if match_headers is not None and any(
                sent.headers.get(name) != value for name, value in match_headers.items()
            ):
                continue
            if match_content is not None and sent.content != match_content:
                continue
            if match_json is not _NO_JSON:
                try:
                    if json_module.loads(sent.content) != match_json:
                        continue
                except ValueError:
                    continue
            found.append(sent)
        return found

    def get_request(self, **matchers: Any) -> httpx.Request | None:
        """The one request that matches, or ``None``; the matchers as for :meth:`get_requests`.

        Returns:
            The :class:`httpx.Request`, or ``None`` if no request matches.

        Raises:
            AssertionError: if more than one request matches (refine the matchers, or
                use :meth:`get_requests`).

        Example:
            ```python
            request = aiotestkit_httpx_mock.get_request(url="https://api.example.com/")
            ```
        """
        __tracebackhide__ = True
        found = self.get_requests(**matchers)
        if len(found) > 1:
            listed = ", ".join(f"{r.method} {r.url}" for r in found)
            raise AssertionError(
                f"{len(found)} requests match {matchers!r}: {listed}; refine the matchers "
                "or use get_requests()"
            )
        return found[0] if found else None
