"""Declarative expectations of the case-controlled HTTP server: matching, answers, diffs.

An :class:`Expectation` says which requests it answers (method, path, and optionally
query, headers and body) and how (:meth:`Expectation.respond`,
:meth:`~Expectation.respond_with`, :meth:`~Expectation.respond_events`,
:meth:`~Expectation.drop`). The server tries its expectations on each request, in the
order they were declared; a request none answers goes to the test as before.

The same comparison decides a match and explains a miss: :func:`differences` lists
what differs between an expectation and a request, empty when it matches, and the
report of a request that matched nothing shows that list for the closest expectations.
"""

from __future__ import annotations

import asyncio
import json as json_module
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from ._response_stream import format_event

__all__ = [
    "UNSET",
    "Criteria",
    "Expectation",
    "Handler",
    "differences",
    "drop_connection",
    "format_unexpected",
    "format_unused",
]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
"""An ``async def handler(request) -> web.StreamResponse``, as aiohttp's low-level server takes."""


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Final[Any] = _Unset()
"""The default of ``json=``: no JSON body is required (``None`` is the JSON ``null``)."""

_EVENT_KEYS = frozenset({"data", "event", "id", "retry"})
_SHOWN_BYTES = 120
_CLOSEST = 3


def _short(body: bytes) -> str:
    if len(body) <= _SHOWN_BYTES:
        return repr(body)
    return f"{body[:_SHOWN_BYTES]!r}... ({len(body)} bytes)"


def _query_values(name: str, value: object) -> list[str]:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        values = list(value)
        if all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            return [str(v) for v in values]
    raise TypeError(f"query[{name!r}] must be a str or number, or a list of them; got {value!r}")


def _json_diff(expected: object, actual: object, where: str = "$") -> list[str]:
    """The places where ``actual`` differs from ``expected``, as JSONPath-like lines."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected:
            if key not in actual:
                found.append(f"json {where}.{key}: missing, expected {expected[key]!r}")
            else:
                found.extend(_json_diff(expected[key], actual[key], f"{where}.{key}"))
        found.extend(
            f"json {where}.{key}: not expected, got {actual[key]!r}"
            for key in actual
            if key not in expected
        )
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [
                f"json {where}: expected a list of {len(expected)} item(s), got "
                f"{len(actual)}: {actual!r}"
            ]
        return [
            line
            for index, (e, a) in enumerate(zip(expected, actual, strict=True))
            for line in _json_diff(e, a, f"{where}[{index}]")
        ]
    if expected == actual and type(expected) is type(actual):
        return []
    if expected == actual and {type(expected), type(actual)} <= {int, float}:
        return []
    return [f"json {where}: expected {expected!r}, got {actual!r}"]


@dataclass(frozen=True)
class Criteria:
    """What a request must have to match; ``None`` (or :data:`UNSET` for ``json``): anything.

    Built and checked by :meth:`aiotestkit.CaseControlledTestServer.expect` and the
    ``assert_called_*`` helpers of :class:`Expectation`.
    """

    method: str | None = None
    path: str | re.Pattern[str] | None = None
    query: Mapping[str, list[str]] | None = None
    headers: Mapping[str, str] | None = None
    json: Any = UNSET
    data: bytes | None = None

    @classmethod
    def build(
        cls,
        method: str | None,
        path: str | re.Pattern[str] | None,
        *,
        query: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        json: Any,
        data: bytes | str | None,
    ) -> Criteria:
        """Check the arguments of ``expect()`` or of an assertion and normalise them."""
        if method is not None:
            if not isinstance(method, str) or not method.strip():
                raise TypeError(f"method must be an HTTP method name (str), got {method!r}")
            method = method.strip().upper()
        if path is not None:
            if isinstance(path, str):
                if not path.startswith("/"):
                    raise ValueError(
                        f"path must start with '/', got {path!r}; give the path alone "
                        "(the server's address is not part of it)"
                    )
                if "?" in path:
                    raise ValueError(
                        f"path {path!r} holds a query string; give it as query={{...}} "
                        "(matched as a subset of the request's query)"
                    )
            elif not isinstance(path, re.Pattern):
                raise TypeError(
                    f"path must be a str or a compiled regular expression, got {path!r}"
                )
        checked_query = None
        if query is not None:
            if not isinstance(query, Mapping):
                raise TypeError(f"query must be a mapping of names to values, got {query!r}")
            checked_query = {str(k): _query_values(str(k), v) for k, v in query.items()}
        checked_headers = None
        if headers is not None:
            if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise TypeError(f"headers must be a mapping of str to str, got {headers!r}")
            checked_headers = dict(headers)
        body = None
        if data is not None:
            if json is not UNSET:
                raise ValueError("give json= or data=, not both: they both describe the body")
            if isinstance(data, str):
                body = data.encode("utf-8")
            elif isinstance(data, (bytes, bytearray)):
                body = bytes(data)
            else:
                raise TypeError(f"data must be bytes or str, got {type(data).__name__}")
        if json is not UNSET:
            json_module.dumps(json)  # raises TypeError for what a body cannot hold
        return cls(method, path, checked_query, checked_headers, json, body)

    def describe(self) -> str:
        """The criteria as one line: ``GET /items query={'page': ['2']}``."""
        path = self.path.pattern if isinstance(self.path, re.Pattern) else self.path
        parts = [self.method or "*", f"re:{path}" if isinstance(self.path, re.Pattern) else path]
        if self.query:
            shown = {k: v[0] if len(v) == 1 else v for k, v in self.query.items()}
            parts.append(f"query={shown!r}")
        if self.headers:
            parts.append(f"headers={self.headers!r}")
        if self.json is not UNSET:
            parts.append(f"json={self.json!r}")
        if self.data is not None:
            parts.append(f"data={_short(self.data)}")
        return " ".join(str(part) for part in parts if part is not None)


def differences(criteria: Criteria, request: web.BaseRequest, body: bytes | None) -> list[str]:
    """What ``request`` (with its ``body``) lacks to meet ``criteria``: empty if it matches.

    Each line names one difference: the method, the path, one query parameter or
    header (missing or different), the body, or one place in the JSON body.
    """
    found = []
    if criteria.method is not None and request.method.upper() != criteria.method:
        found.append(f"method: expected {criteria.method}, got {request.method}")
    if isinstance(criteria.path, re.Pattern):
        if criteria.path.fullmatch(request.path) is None:
            found.append(
                f"path: expected to match {criteria.path.pattern!r}, got {request.path!r}"
            )
    elif criteria.path is not None and request.path != criteria.path:
        found.append(f"path: expected {criteria.path!r}, got {request.path!r}")
    for name, values in (criteria.query or {}).items():
        got = request.query.getall(name, [])
        if got != values:
            expected = values[0] if len(values) == 1 else values
            if not got:
                found.append(f"query {name!r}: missing, expected {expected!r}")
            else:
                shown = got[0] if len(got) == 1 else got
                found.append(f"query {name!r}: expected {expected!r}, got {shown!r}")
    for name, value in (criteria.headers or {}).items():
        got_header = request.headers.getall(name, [])
        if not got_header:
            found.append(f"header {name!r}: missing, expected {value!r}")
        elif ", ".join(got_header) != value:
            found.append(f"header {name!r}: expected {value!r}, got {', '.join(got_header)!r}")
    if criteria.data is not None and body != criteria.data:
        found.append(f"body: expected {_short(criteria.data)}, got {_short(body or b'')}")
    if criteria.json is not UNSET:
        try:
            parsed = json_module.loads(body or b"")
        except ValueError:
            found.append(
                f"json: expected {criteria.json!r}, got a body that is not JSON: "
                f"{_short(body or b'')}"
            )
        else:
            found.extend(_json_diff(criteria.json, parsed))
    return found


def _frame_event(event: Mapping[str, Any]) -> bytes:
    """One server-sent event as bytes, framed as ``ResponseStream.send_event`` frames it."""
    return format_event(**event)


def _event_fields(event: object) -> dict[str, Any]:
    if isinstance(event, str):
        return {"data": event}
    if isinstance(event, Mapping):
        unknown = set(event) - _EVENT_KEYS
        if unknown or "data" not in event:
            raise ValueError(
                f"respond_events(): an event mapping needs 'data' and may have 'event', "
                f"'id', 'retry'; got keys {sorted(map(str, event))}"
            )
        return dict(event)
    raise TypeError(
        f"respond_events(): each event is a str of data or a mapping, got {type(event).__name__}"
    )


async def drop_connection(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection of ``request`` without an answer, as a crashed server would."""
    transport = request.transport
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError  # aiohttp ends the handler of a closed connection so


class Expectation:
    """A request the server expects, and the answer it gives to each that matches.

    Made by :meth:`aiotestkit.CaseControlledTestServer.expect` and completed with one
    of :meth:`respond`, :meth:`respond_with`, :meth:`respond_events` or :meth:`drop`,
    each returning the expectation itself, so one line declares it and keeps a handle.

    It answers at most ``times`` requests (any number for ``None``). When the server
    closes (or the test ends with it open), an expectation that is not ``optional``
    and answered fewer than ``times`` requests fails the test (hygiene check
    ``unused_expectations``). The ``assert_*`` helpers check the requests it answered,
    as those of :class:`unittest.mock.Mock` check calls.

    Attributes:
        criteria: what a request must have to match (method, path, query, headers,
            body), for messages.
        times: how many requests it answers (int), or ``None`` for any number.
        optional: whether answering fewer than ``times`` is fine.

    Example:
        ```python
        pages = server.expect("GET", "/items", times=2).respond(json={"items": []})
        ...  # the client lists the items
        pages.assert_called_with(query={"page": "2"})
        ```
    """

    def __init__(self, criteria: Criteria, *, times: int | None, optional: bool) -> None:
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise TypeError(f"times must be an int or None (any number), got {times!r}")
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1, or None for any number; got {times}")
        if not isinstance(optional, bool):
            raise TypeError(f"optional must be True or False, got {optional!r}")
        self.criteria = criteria
        self.times = times
        self.optional = optional
        self._handler: Handler | None = None
        self._calls: list[tuple[web.BaseRequest, bytes | None]] = []

    def __repr__(self) -> str:
        times = "any" if self.times is None else self.times
        answer = "" if self._handler is not None else ", no answer given"
        return (
            f"<Expectation {self.criteria.describe()} times={times} "
            f"used={len(self._calls)}{answer}>"
        )

    # -- the answer ------------------------------------------------------------------

    def _complete(self, handler: Handler) -> Expectation:
        if self._handler is not None:
            raise RuntimeError(
                f"{self!r} has its answer already; declare another expect() for another answer"
            )
        self._handler = handler
        return self

    def respond(
        self,
        status: int = 200,
        *,
        json: Any = UNSET,
        text: str | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Expectation:
        """Answer each matching request with this response.

        Args:
            status: the HTTP status code (int).
            json: a body encoded with :func:`json.dumps`, content type
                ``application/json`` unless ``content_type`` says otherwise.
            text: a text body (str), ``text/plain`` by default.
            body: a body of bytes.
            headers: response headers.
            content_type: the ``Content-Type``.

        Returns:
            This expectation.

        Raises:
            ValueError: if more than one of ``json``, ``text`` and ``body`` is given,
                or :class:`aiohttp.web.Response` refuses the arguments.
            TypeError: if ``json`` cannot be encoded, or an argument has the wrong type.
            RuntimeError: if the expectation has its answer already.

        Example:
            ```python
            server.expect("POST", "/token").respond(json={"access_token": "t"})
            ```
        """
        if sum(x is not None for x in (text, body)) + (json is not UNSET) > 1:
            raise ValueError("respond(): give one of json=, text= and body=")
        kwargs: dict[str, Any] = {"status": status, "text": text, "body": body}
        if json is not UNSET:
            kwargs["text"] = json_module.dumps(json)
            content_type = content_type or "application/json"
        kwargs["headers"] = dict(headers) if headers is not None else None
        kwargs["content_type"] = content_type
        web.Response(**kwargs)  # check the arguments now, not at the first request

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            return web.Response(**kwargs)

        return self._complete(answer)

    def respond_with(self, handler: Handler) -> Expectation:
        """Answer each matching request with what ``handler`` returns.

        Args:
            handler: ``async def handler(request) -> aiohttp.web.StreamResponse``; it
                gets the :class:`aiohttp.web.BaseRequest` (body read already) and may
                stream its response (``await response.prepare(request)``).

        Returns:
            This expectation.

        Raises:
            TypeError: if ``handler`` is not callable.
            RuntimeError: if the expectation has its answer already.

        Example:
            ```python
            async def echo(request):
                return web.Response(body=await request.read())
            server.expect("POST", "/echo", times=None).respond_with(echo)
            ```
        """
        if not callable(handler):
            raise TypeError(f"respond_with() needs an async handler, got {handler!r}")
        return self._complete(handler)

    def respond_events(
        self, events: Iterable[str | Mapping[str, Any]], *, delay: float = 0
    ) -> Expectation:
        """Answer each matching request with a stream of server-sent events.

        The response has content type ``text/event-stream``; the events follow one
        another ``delay`` seconds apart, timed on the loop's clock (under
        :class:`aiotestkit.VirtualClock` they take no real time), and the response
        ends after the last one.

        Args:
            events: each a ``str`` of data, or a mapping with the keys of
                ``send_event``: ``data`` (str, required), ``event``, ``id``, ``retry``
                (milliseconds).
            delay: seconds between two events (float, >= 0; keyword-only).

        Returns:
            This expectation.

        Raises:
            TypeError: if an event or ``delay`` has the wrong type.
            ValueError: if an event mapping has other keys or no ``data``, a field
                has a line break, or ``delay`` is negative.
            RuntimeError: if the expectation has its answer already.

        Example:
            ```python
            server.expect("GET", "/stream").respond_events(
                ["hello", {"event": "done", "data": "{}"}], delay=1.0
            )
            ```
        """
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, got {delay!r}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        if isinstance(events, (str, Mapping)):
            raise TypeError("respond_events() takes a list of events, not one event")
        framed = [_frame_event(_event_fields(event)) for event in events]

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            response = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
            )
            await response.prepare(request)
            for index, event in enumerate(framed):
                if index and delay:
                    await asyncio.sleep(delay)
                await response.write(event)
            await response.write_eof()
            return response

        return self._complete(answer)

    def drop(self) -> Expectation:
        """Answer each matching request by closing its connection without a response.

        The client sees the server go away (aiohttp raises
        ``ServerDisconnectedError``, httpx ``RemoteProtocolError``), as with
        :meth:`aiotestkit.CaseControlledTestServer.abort`.

        Returns:
            This expectation.

        Raises:
            RuntimeError: if the expectation has its answer already.

        Example:
            ```python
            server.expect("GET", "/flaky").drop()
            ```
        """
        return self._complete(drop_connection)

    # -- for the server ----------------------------------------------------------------

    @property
    def _answered(self) -> bool:
        """Whether the expectation has its answer (a ``respond*`` or ``drop`` call)."""
        return self._handler is not None

    @property
    def _used_up(self) -> bool:
        """Whether it answered ``times`` requests already."""
        return self.times is not None and len(self._calls) >= self.times

    @property
    def _satisfied(self) -> bool:
        """Whether it answered as many requests as declared, or is optional."""
        return self.optional or (
            self._answered and (self.times is None or len(self._calls) >= self.times)
        )

    def _accept(self, request: web.BaseRequest, body: bytes | None) -> Handler:
        """Count ``request`` as answered by this expectation; return the handler to answer it."""
        assert self._handler is not None
        self._calls.append((request, body))
        return self._handler

    def _describe_use(self) -> str:
        """How the expectation was used, for the report of unused ones."""
        if self._handler is None:
            return f"{self.criteria.describe()}: never given an answer (respond(), ...)"
        times = "at least once" if self.times is None else f"{self.times} time(s)"
        return f"{self.criteria.describe()}: used {len(self._calls)} time(s), expected {times}"

    # -- the request log and assertions ----------------------------------------------------

    @property
    def requests(self) -> list[web.BaseRequest]:
        """The requests this expectation answered, oldest first (their bodies read).

        Example:
            ```python
            [request.query["page"] for request in pages.requests]
            # ['1', '2', '3']
            ```
        """
        return [request for request, _ in self._calls]

    @property
    def call_count(self) -> int:
        """How many requests it answered (int), as :attr:`unittest.mock.Mock.call_count`.

        Example:
            ```python
            assert token.call_count == 1
            ```
        """
        return len(self._calls)

    @property
    def called(self) -> bool:
        """Whether it answered a request, as :attr:`unittest.mock.Mock.called`.

        Example:
            ```python
            assert not health.called
            ```
        """
        return bool(self._calls)

    def _fail(self, message: str) -> AssertionError:
        return AssertionError(f"{self.criteria.describe()}: {message}")

    def assert_called(self) -> None:
        """Check that it answered at least one request.

        Raises:
            AssertionError: if it answered none.

        Example:
            ```python
            token.assert_called()
            ```
        """
        __tracebackhide__ = True
        if not self._calls:
            raise self._fail("expected to answer a request, answered none")

    def assert_called_once(self) -> None:
        """Check that it answered exactly one request.

        Raises:
            AssertionError: if it answered none or several.

        Example:
            ```python
            token.assert_called_once()
            ```
        """
        __tracebackhide__ = True
        if len(self._calls) != 1:
            raise self._fail(f"expected to answer 1 request, answered {len(self._calls)}")

    def assert_not_called(self) -> None:
        """Check that it answered no request.

        Raises:
            AssertionError: if it answered one or more, listing them.

        Example:
            ```python
            fallback.assert_not_called()
            ```
        """
        __tracebackhide__ = True
        if self._calls:
            listed = ", ".join(f"{r.method} {r.path_qs}" for r, _ in self._calls)
            raise self._fail(f"expected to answer no request, answered {listed}")

    def _check_call(
        self,
        index: int,
        query: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        json: Any,
        data: bytes | str | None,
    ) -> list[str]:
        wanted = Criteria.build(None, None, query=query, headers=headers, json=json, data=data)
        request, body = self._calls[index]
        return differences(wanted, request, body)

    def assert_called_with(
        self,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = UNSET,
        data: bytes | str | None = None,
    ) -> None:
        """Check the last request it answered; the arguments match as in ``expect()``.

        Args:
            query: parameters the query must have (a subset).
            headers: headers the request must have (a subset, names case-insensitive).
            json: the body, compared after parsing as JSON.
            data: the body, bytes or str (UTF-8).

        Raises:
            AssertionError: if it answered nothing, or the last request differs; the
                message lists each difference.

        Example:
            ```python
            token.assert_called_with(json={"grant_type": "refresh_token"})
            ```
        """
        __tracebackhide__ = True
        if not self._calls:
            raise self._fail("expected a call, answered no request")
        found = self._check_call(-1, query, headers, json, data)
        if found:
            raise self._fail("the last request differs: " + "; ".join(found))

    def assert_called_once_with(
        self,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = UNSET,
        data: bytes | str | None = None,
    ) -> None:
        """Check that it answered exactly one request, and check it as :meth:`assert_called_with`.

        Raises:
            AssertionError: if it answered none or several, or the request differs.

        Example:
            ```python
            token.assert_called_once_with(headers={"Authorization": "Basic dTpw"})
            ```
        """
        __tracebackhide__ = True
        self.assert_called_once()
        self.assert_called_with(query=query, headers=headers, json=json, data=data)

    def assert_any_call(
        self,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = UNSET,
        data: bytes | str | None = None,
    ) -> None:
        """Check that one of the requests it answered has these properties.

        Raises:
            AssertionError: if none has, with the differences of each request.

        Example:
            ```python
            pages.assert_any_call(query={"page": "3"})
            ```
        """
        __tracebackhide__ = True
        misses = []
        for index in range(len(self._calls)):
            found = self._check_call(index, query, headers, json, data)
            if not found:
                return
            misses.append(f"request {index + 1}: " + "; ".join(found))
        raise self._fail(
            "no request it answered matches: " + (" | ".join(misses) or "it answered none")
        )


def format_unused(server: str, expectations: list[Expectation], *, closing: bool) -> str:
    """The report of expectations used fewer times than declared."""
    state = "closed" if closing else "was still open at the end of the test"
    listed = "\n".join(f"{e._describe_use()}" for e in expectations)
    return f"{server} {state} with {len(expectations)} unused expectation(s):\n{listed}"


def _closest(
    request: web.BaseRequest, body: bytes | None, expectations: list[Expectation]
) -> list[tuple[Expectation, list[str]]]:
    def cost(found: list[str]) -> int:
        weights = {"method": 2, "path": 3}
        return sum(weights.get(line.split(":")[0], 1) for line in found)

    scored = [(e, differences(e.criteria, request, body)) for e in expectations]
    ranked = sorted(enumerate(scored), key=lambda item: (cost(item[1][1]), item[0]))
    return [pair for _, pair in ranked[:_CLOSEST]]


def format_unexpected(
    server: str,
    requests: list[tuple[web.BaseRequest, bytes | None]],
    expectations: list[Expectation],
    *,
    closing: bool,
) -> str:
    """The report of requests no expectation matched, each with its closest expectations."""
    state = "closed" if closing else "was still open at the end of the test"
    lines = [
        f"{server} {state} with {len(requests)} request(s) that matched no expectation "
        "and that the test never received:"
    ]
    for request, body in requests:
        size = f" ({len(body)} bytes of body)" if body else ""
        lines.append(f"{request.method} {request.path_qs}{size}; closest expectations:")
        for expectation, found in _closest(request, body, expectations):
            if not found:
                if expectation._used_up:
                    why = f"it matches, but was used up (times={expectation.times})"
                else:
                    why = "it matches, but had no answer yet (respond(), ...)"
            else:
                why = "; ".join(found)
            lines.append(f"  {expectation.criteria.describe()}: {why}")
    return "\n".join(lines)
