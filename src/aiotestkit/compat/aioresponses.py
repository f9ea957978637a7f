"""A drop-in for ``aioresponses``, answered by real test servers over real sockets.

Change one import line::

    from aiotestkit.compat.aioresponses import aioresponses  # was: from aioresponses import ...

and run the tests in the network sandbox (ini option ``aiotestkit_network_sandbox = true``,
or ``@pytest.mark.network_sandbox``). Each mocked URL becomes an expectation on a
:class:`aiotestkit.CaseControlledTestServer` for its origin, routed through the
sandbox: the aiohttp client connects, sends its request and parses the response as it
would in production, so the mocks do not depend on aiohttp's internals (aioresponses
builds ``ClientResponse`` objects itself, which aiohttp 3.14 broke).

The calls are recorded as aioresponses records them (``m.requests``, the
``assert_called_*`` helpers) by a thin wrapper around ``ClientSession._request`` that
only writes down the arguments; the response always comes from the server. What
cannot be done over a socket (``callback=``, ``passthrough``, exceptions that are not
network failures, regular expressions for URLs) is listed in ``docs/migration.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, TypeVar

import aiohttp
from aiohttp import web
from multidict import MultiDict
from yarl import URL

from .._servers import Expectation
from ._origins import Origins, hold, open_sandbox

__all__ = ["RequestCall", "aioresponses"]

_F = TypeVar("_F", bound=Callable[..., Any])

_NAME = "aiotestkit.compat.aioresponses"

_RETRIED = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""The methods aiohttp retries once on a dropped connection (its IDEMPOTENT_METHODS)."""


class RequestCall(NamedTuple):
    """One call of ``ClientSession.request``: its positional and keyword arguments.

    As aioresponses records it: the keyword arguments the client passed, with
    ``allow_redirects`` (``True`` unless given) and, for ``POST``, ``data``.

    Example:
        ```python
        m.requests[("GET", URL("http://example.com/a"))][0].kwargs["allow_redirects"]
        # True
        ```
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _normalize(url: str | URL, params: Any = None) -> URL:
    """The URL a call is recorded under: ``params`` merged into the query, sorted."""
    parsed = URL(url)
    if params:
        parsed = parsed.update_query(params)
    query = MultiDict(sorted(parsed.query.items()))
    return parsed.with_query(query) if query else parsed.with_query(None)


def _call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RequestCall:
    recorded = dict(kwargs)
    recorded.setdefault("allow_redirects", True)
    if method == "POST":
        recorded.setdefault("data", None)
    with contextlib.suppress(TypeError, ValueError):  # an open file is recorded as it is
        recorded = copy.deepcopy(recorded)
    return RequestCall(args, recorded)


def _network_failure(exception: BaseException) -> Callable[[Expectation], Expectation]:
    """How a server produces ``exception`` at the client, or a TypeError saying it cannot."""
    if isinstance(exception, asyncio.TimeoutError):
        return hold
    if isinstance(exception, (aiohttp.ClientConnectionError, OSError)):
        return Expectation.drop
    raise TypeError(
        f"{_NAME}: exception={exception!r} cannot come from a server over a socket; a "
        "connection error (aiohttp.ClientConnectionError, OSError) drops the connection "
        "and asyncio.TimeoutError leaves the request unanswered until the client's "
        "timeout; see docs/migration.md for the rest"
    )


def _shortcut(method: str) -> Callable[..., None]:
    def add_method(self: aioresponses, url: str | URL, **kwargs: Any) -> None:
        self.add(url, method, **kwargs)

    add_method.__name__ = add_method.__qualname__ = method.lower()
    add_method.__doc__ = f"""Mock a {method} request: :meth:`add` with ``method="{method}"``.

        Example:
            ```python
            m.{method.lower()}("https://api.example.com/items", payload=[])
            ```
        """
    return add_method


class aioresponses:
    """Mock aiohttp requests by URL, as ``aioresponses`` does, with real servers.

    Use it as a context manager (``with`` or ``async with``), as a decorator of a
    test function (the mock is passed as the last positional argument, or as the
    keyword ``param``), or in a fixture (``with aioresponses() as m: yield m``).
    A network sandbox must be open (see the module's documentation).

    A mock answers the requests with its method and URL (path exact, the query
    parameters of the mocked URL present); mocks are tried in the order they were
    added; an unused mock is not an error, as with aioresponses. A request no mock
    answers to a mocked host has its connection dropped
    (``aiohttp.ServerDisconnectedError``, a ``ClientConnectionError``, as
    aioresponses raises) and fails the test at its end with the closest mocks and how
    they differed (hygiene check ``unexpected_requests``); a request to another host
    is refused by the sandbox (a ``ClientConnectorError``).

    Args:
        param: the keyword under which the decorator passes the mock; positional
            (appended) when ``None``.
        passthrough: not supported: nothing may leave the sandbox; must be empty.

    Raises:
        ValueError: if ``passthrough`` is given.

    Example:
        ```python
        async def test_price():
            with aioresponses() as m:
                m.get("https://api.example.com/price", payload={"price": 3})
                async with aiohttp.ClientSession() as session:
                    async with session.get("https://api.example.com/price") as r:
                        assert await r.json() == {"price": 3}
        ```
    """

    def __init__(self, *, param: str | None = None, passthrough: Iterable[str] = ()) -> None:
        if list(passthrough):
            raise ValueError(
                f"{_NAME}: passthrough cannot reach the real network from the sandbox; "
                "route a test server for those hosts instead (sandbox.route())"
            )
        self.param = param
        self.requests: dict[tuple[str, URL], list[RequestCall]] = {}
        self._origins: Origins | None = None
        self._original_request: Any = None

    def __repr__(self) -> str:
        state = "started" if self._original_request is not None else "stopped"
        return f"<{_NAME}.aioresponses {state}, {len(self.requests)} URL(s) called>"

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start mocking: record the client's calls; mocks can be added from now on.

        Raises:
            RuntimeError: if no network sandbox is open, or it is started already.

        Example:
            ```python
            m = aioresponses()
            m.start()
            m.stop()
            ```
        """
        if self._original_request is not None:
            raise RuntimeError(f"{self!r} is started already")
        self._origins = Origins(open_sandbox(_NAME), _NAME)
        original = aiohttp.ClientSession._request
        mock = self

        @functools.wraps(original)
        async def _request(
            session: aiohttp.ClientSession, method: str, str_or_url: Any, *args: Any, **kwargs: Any
        ) -> aiohttp.ClientResponse:
            key = (method.upper(), _normalize(str_or_url, kwargs.get("params")))
            mock.requests.setdefault(key, []).append(_call(method.upper(), args, kwargs))
            return await original(session, method, str_or_url, *args, **kwargs)

        self._original_request = original
        setattr(aiohttp.ClientSession, "_request", _request)  # noqa: B010 - restored by stop()

    def stop(self) -> None:
        """Stop recording calls. The servers stay until the sandbox closes.

        Example:
            ```python
            m.stop()
            ```
        """
        if self._original_request is not None:
            setattr(aiohttp.ClientSession, "_request", self._original_request)  # noqa: B010
            self._original_request = None

    def __enter__(self) -> aioresponses:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> aioresponses:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __call__(self, function: _F) -> _F:
        """Decorate a test function: it runs with a started mock, passed to it.

        Example:
            ```python
            @aioresponses()
            async def test_price(m):
                m.get("https://api.example.com/price", payload={})
            ```
        """
        signature = inspect.signature(function)
        parameters = list(signature.parameters.values())
        if self.param is not None:
            shown = [p for p in parameters if p.name != self.param]
        else:
            shown = parameters[:-1]

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any], mock: aioresponses) -> Any:
            if self.param is not None:
                return args, {**kwargs, self.param: mock}
            return (*args, mock), kwargs

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with type(self)(param=self.param) as mock:
                    call_args, call_kwargs = arguments(args, kwargs, mock)
                    return await function(*call_args, **call_kwargs)

            wrapper: Callable[..., Any] = run_async
        else:

            @functools.wraps(function)
            def run(*args: Any, **kwargs: Any) -> Any:
                with type(self)(param=self.param) as mock:
                    call_args, call_kwargs = arguments(args, kwargs, mock)
                    return function(*call_args, **call_kwargs)

            wrapper = run
        # pytest must not look for a fixture named after the mock's parameter.
        wrapper.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    # -- mocks ------------------------------------------------------------------------------

    def add(
        self,
        url: str | URL,
        method: str = "GET",
        status: int = 200,
        body: str | bytes = "",
        exception: BaseException | None = None,
        content_type: str = "application/json",
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
        response_class: Any = None,
        repeat: bool | int = False,
        timeout: bool = False,
        reason: str | None = None,
        callback: Any = None,
    ) -> None:
        """Mock ``method url``: the server answers it ``repeat`` times.

        Args:
            url: the absolute URL (str or :class:`yarl.URL`); its query parameters must
                be in the request.
            method: the HTTP method (str).
            status: the status code (int).
            body: the body (str, UTF-8, or bytes); ignored when ``payload`` is given.
            exception: a network failure the client should see instead of a response:
                an :class:`aiohttp.ClientConnectionError` or :class:`OSError` drops the
                connection; :class:`asyncio.TimeoutError` leaves the request
                unanswered until the client's timeout.
            content_type: the ``Content-Type`` (str), unless ``headers`` has one.
            payload: a body encoded as JSON.
            headers: response headers.
            response_class: not supported (the client builds its own response).
            repeat: ``False`` once, ``True`` any number of times, or a number of times.
            timeout: ``True`` as ``exception=asyncio.TimeoutError()``.
            reason: the reason phrase of the status line.
            callback: not supported (see ``docs/migration.md``).

        Raises:
            RuntimeError: if the mock is not started.
            TypeError: if ``exception`` is no network failure, or ``response_class`` or
                ``callback`` is given.
            ValueError: if ``url`` is not an absolute http(s) URL, or ``repeat`` < 1.

        Example:
            ```python
            m.add("https://api.example.com/orders", "POST", status=201, payload={"id": 1})
            ```
        """
        if self._origins is None or self._original_request is None:
            raise RuntimeError(f"{self!r}: start it ('with aioresponses() as m:') before adding")
        if callback is not None or response_class is not None:
            raise TypeError(
                f"{_NAME}: callback= and response_class= cannot run over a socket; answer "
                "with a handler instead: see 'callback' in docs/migration.md"
            )
        if not isinstance(url, (str, URL)):
            raise TypeError(
                f"{_NAME}: url must be a str or yarl.URL (regular expressions are not "
                f"supported: see docs/migration.md), got {url!r}"
            )
        times = (None if repeat else 1) if isinstance(repeat, bool) else repeat
        if timeout:
            exception = asyncio.TimeoutError()
        failure = None if exception is None else _network_failure(exception)
        if failure is Expectation.drop and times is not None and method.upper() in _RETRIED:
            # aiohttp sends an idempotent request once more when the server disconnects:
            # both attempts are one failed call, as aioresponses raises once.
            times *= 2
        parsed = URL(url)
        host = self._origins.route(parsed)
        query: dict[str, list[str]] = {}
        for name, value in parsed.query.items():
            query.setdefault(name, []).append(value)
        expectation = self._origins.server.expect(
            method,
            parsed.path or "/",
            query=query or None,
            headers={"Host": host},
            times=times,
            optional=True,
        )
        if failure is not None:
            failure(expectation)
            return
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
        response_headers = dict(headers or {})
        has_type = any(name.lower() == "content-type" for name in response_headers)

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response(
                status=status,
                reason=reason,
                body=data,
                headers=response_headers,
                content_type=None if has_type else content_type,
            )

        expectation.respond_with(answer)

    get = _shortcut("GET")
    post = _shortcut("POST")
    put = _shortcut("PUT")
    patch = _shortcut("PATCH")
    delete = _shortcut("DELETE")
    head = _shortcut("HEAD")
    options = _shortcut("OPTIONS")

    def clear(self) -> None:
        """Forget the recorded calls.

        Example:
            ```python
            m.clear()
            ```
        """
        self.requests.clear()

    # -- assertions -------------------------------------------------------------------------

    def _calls(self) -> list[RequestCall]:
        return [call for calls in self.requests.values() for call in calls]

    def assert_not_called(self) -> None:
        """Check that the client made no request.

        Raises:
            AssertionError: if it made one, listing the URLs.

        Example:
            ```python
            m.assert_not_called()
            ```
        """
        __tracebackhide__ = True
        if self.requests:
            called = ", ".join(f"{method} {url}" for method, url in self.requests)
            raise AssertionError(f"expected no request, the client called {called}")

    def assert_called(self) -> None:
        """Check that the client made at least one request.

        Raises:
            AssertionError: if it made none.

        Example:
            ```python
            m.assert_called()
            ```
        """
        __tracebackhide__ = True
        if not self.requests:
            raise AssertionError("expected a request, the client made none")

    def assert_called_once(self) -> None:
        """Check that the client made exactly one request.

        Raises:
            AssertionError: if it made none or several.

        Example:
            ```python
            m.assert_called_once()
            ```
        """
        __tracebackhide__ = True
        count = len(self._calls())
        if count != 1:
            raise AssertionError(f"expected 1 request, the client made {count}")

    def _last_call(self, url: str | URL, method: str, kwargs: dict[str, Any]) -> RequestCall:
        key = (method.upper(), _normalize(url, kwargs.get("params")))
        calls = self.requests.get(key)
        if not calls:
            called = ", ".join(f"{m} {u}" for m, u in self.requests) or "nothing"
            raise AssertionError(f"{key[0]} {key[1]} not called; the client called {called}")
        return calls[-1]

    def assert_called_with(
        self, url: str | URL, method: str = "GET", *args: Any, **kwargs: Any
    ) -> None:
        """Check the last call of ``method url``: its arguments as the client passed them.

        Args:
            url: the URL (str or :class:`yarl.URL`); ``params`` in ``kwargs`` is merged.
            method: the HTTP method.
            *args: the other positional arguments the client passed.
            **kwargs: the keyword arguments the client passed (``allow_redirects``
                defaults to ``True``; ``data`` to ``None`` for ``POST``).

        Raises:
            AssertionError: if ``method url`` was not called, or with other arguments.

        Example:
            ```python
            m.assert_called_with("https://api.example.com/orders", "POST", json={"qty": 1})
            ```
        """
        __tracebackhide__ = True
        actual = self._last_call(url, method, kwargs)
        expected = _call(method.upper(), args, kwargs)
        if actual != expected:
            raise AssertionError(
                f"{method.upper()} {url} was called with {actual}, expected {expected}"
            )

    def assert_called_once_with(self, *args: Any, **kwargs: Any) -> None:
        """Check that the client made one request, with these arguments.

        Raises:
            AssertionError: if it made none or several, or with other arguments.

        Example:
            ```python
            m.assert_called_once_with("https://api.example.com/price")
            ```
        """
        __tracebackhide__ = True
        self.assert_called_once()
        self.assert_called_with(*args, **kwargs)

    def assert_any_call(
        self, url: str | URL, method: str = "GET", *args: Any, **kwargs: Any
    ) -> None:
        """Check that one call of ``method url`` had these arguments.

        Raises:
            AssertionError: if none had.

        Example:
            ```python
            m.assert_any_call("https://api.example.com/items", params={"page": 2})
            ```
        """
        __tracebackhide__ = True
        self._last_call(url, method, kwargs)
        key = (method.upper(), _normalize(url, kwargs.get("params")))
        expected = _call(method.upper(), args, kwargs)
        if expected not in self.requests[key]:
            raise AssertionError(
                f"no call of {key[0]} {key[1]} had {expected}; the calls: {self.requests[key]}"
            )
