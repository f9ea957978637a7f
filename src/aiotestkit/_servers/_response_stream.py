"""Case-controlled streaming responses: the test writes the body of an answer step by step.

:meth:`aiotestkit.CaseControlledTestServer.start_stream` sends the status line and
headers of a response at once and returns a :class:`ResponseStream`. The test then
writes the body when it wants (bytes, or server-sent events framed as the WHATWG HTML
standard says), and ends it with :meth:`ResponseStream.finish` or cuts it off with
:meth:`ResponseStream.abort`. Between two writes the test can check what the client
made of the previous one, which is how streaming clients (SSE, chunked downloads,
LLM SDKs) are tested chunk by chunk.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable

from aiohttp import web

from .._core import DEFAULT_TIMEOUT, abort_with_reset, check_timeout
from ..errors import ClientClosedConnection, SendTimeout

__all__ = ["ResponseStream", "format_event"]


def _single_line(name: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"send_event(): {name} must be a str, got {type(value).__name__}")
    if "\n" in value or "\r" in value:
        raise ValueError(
            f"send_event(): {name}={value!r} contains a line break; an SSE field is one line"
        )
    return value


def format_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    r"""Frame one server-sent event as the WHATWG HTML standard defines the format.

    ``data`` is split into lines (at ``\r\n``, ``\r`` or ``\n``), each sent as its own
    ``data:`` field, so the client's event has ``data`` back exactly; ``event``, ``id``
    and ``retry`` come first when given; a blank line ends the event.

    Args:
        data: the event's data (str); may span several lines.
        event: the event type (str, one line); a client's ``message`` when omitted.
        id: the event ID (str, one line, no NUL), the client's ``Last-Event-ID``.
        retry: the reconnection time the client should use, in milliseconds (int, >= 0).

    Returns:
        The UTF-8 bytes of the event, ending with a blank line.

    Raises:
        TypeError: if a field has the wrong type.
        ValueError: if ``event`` or ``id`` has a line break (or ``id`` a NUL), or
            ``retry`` is negative.

    Example:
        ```python
        assert format_event("a\nb", event="delta", id="7") == (
            b"event: delta\nid: 7\ndata: a\ndata: b\n\n"
        )
        ```
    """
    if not isinstance(data, str):
        raise TypeError(f"send_event(): data must be a str, got {type(data).__name__}")
    fields: list[str] = []
    if event is not None:
        fields.append(f"event: {_single_line('event', event)}")
    if id is not None:
        if "\0" in _single_line("id", id):
            raise ValueError(f"send_event(): id={id!r} contains NUL, which clients ignore")
        fields.append(f"id: {id}")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int):
            raise TypeError(
                f"send_event(): retry is a number of milliseconds (int), got {retry!r}"
            )
        if retry < 0:
            raise ValueError(f"send_event(): retry must be >= 0 milliseconds, got {retry}")
        fields.append(f"retry: {retry}")
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    fields.extend(f"data: {line}" for line in lines)
    return ("\n".join(fields) + "\n\n").encode("utf-8")


class _State(enum.Enum):
    OPEN = "open"
    FINISHED = "finished"
    ABORTED = "aborted"


class ResponseStream:
    """The body of one response, written by the test step by step.

    Made by :meth:`aiotestkit.CaseControlledTestServer.start_stream`, which has sent
    the status line and the headers already. The body uses chunked transfer encoding,
    unless the test gave a ``Content-Length`` header: then the body must have exactly
    that many bytes, and finishing early closes the connection, so the client sees a
    truncated body, as it must detect.

    Until it is finished or aborted, the stream counts as an unanswered request: at
    the end of the test the hygiene checks report it like any request left waiting.

    Example:
        ```python
        stream = await server.start_stream(request)
        await stream.send_event('{"delta": "Hel"}')
        assert await client_queue.get() == "Hel"
        await stream.send_event('{"delta": "lo"}')
        await stream.finish()
        ```
    """

    def __init__(
        self,
        request: web.BaseRequest,
        response: web.StreamResponse,
        *,
        on_end: Callable[[str, bool], None],
    ) -> None:
        self._request = request
        self._response = response
        self._on_end = on_end
        self._state = _State.OPEN
        self._sent = 0
        self._length = response.content_length if not response.chunked else None

    def __repr__(self) -> str:
        return (
            f"<ResponseStream {self._request.method} {self._request.path_qs} "
            f"{self._response.status}: {self._sent} bytes sent, {self._state.value}>"
        )

    @property
    def request(self) -> web.BaseRequest:
        """The request this stream answers (:class:`aiohttp.web.BaseRequest`)."""
        return self._request

    @property
    def bytes_sent(self) -> int:
        """How many bytes of body the test has written so far (int)."""
        return self._sent

    @property
    def finished(self) -> bool:
        """Whether the test ended the stream, with :meth:`finish` or :meth:`abort` (bool)."""
        return self._state is not _State.OPEN

    def _describe_unfinished(self) -> str:
        return f"response stream started, {self._sent} bytes sent, neither finished nor aborted"

    async def write(self, data: bytes, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Send ``data`` as the next part of the body, and wait until the transport took it.

        With chunked transfer encoding each call is one chunk, so the client can read
        it before the test writes the next.

        Args:
            data: the bytes to send (bytes, bytearray or memoryview; not empty).
            timeout: how long the send buffer may stay full, in seconds (float, > 0;
                keyword-only).

        Raises:
            TypeError: if ``data`` is not bytes-like (encode text first).
            ValueError: if ``data`` is empty (an empty chunk would end a chunked body),
                or goes past the ``Content-Length`` the test declared.
            RuntimeError: if the stream was finished or aborted.
            aiotestkit.ClientClosedConnection: if the client closed its connection.
            aiotestkit.SendTimeout: if the client did not read within ``timeout``
                seconds.

        Example:
            ```python
            await stream.write(b'{"id": 1}')
            ```
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"write() takes bytes, got {type(data).__name__}; encode text first, "
                "or use send_event() for server-sent events"
            )
        if not data:
            raise ValueError("write(b'') sends nothing; use finish() to end the body")
        self._check_open("write to")
        if self._length is not None and self._sent + len(data) > self._length:
            raise ValueError(
                f"write() of {len(data)} bytes after {self._sent} would go past the "
                f"Content-Length of {self._length} bytes the test declared"
            )
        await self._send(self._response.write(data), f"{len(data)} bytes", timeout)
        self._sent += len(data)

    async def send_event(
        self,
        data: str,
        *,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Send one server-sent event (``text/event-stream``).

        The event is framed by :func:`format_event`: multi-line ``data`` becomes one
        ``data:`` line each, and the client gets it back whole.

        Args:
            data: the event's data (str).
            event: the event type (str, one line).
            id: the event ID (str, one line).
            retry: the client's reconnection time, in milliseconds (int, >= 0).
            timeout: how long the send buffer may stay full, in seconds (float, > 0).

        Raises:
            TypeError, ValueError: for a bad field (see :func:`format_event`).
            RuntimeError, aiotestkit.ClientClosedConnection, aiotestkit.SendTimeout:
                as for :meth:`write`.

        Example:
            ```python
            await stream.send_event('{"choices": []}', id="1")
            await stream.send_event("[DONE]")
            ```
        """
        await self.write(format_event(data, event=event, id=id, retry=retry), timeout=timeout)

    async def finish(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """End the body: the client reads a complete response.

        With a ``Content-Length`` that the body has not reached, the server closes
        the connection instead, and the client sees a truncated body. Calling it
        again does nothing.

        Args:
            timeout: how long to wait for the end to be sent, in seconds (float, > 0).

        Raises:
            RuntimeError: if the stream was aborted.
            aiotestkit.ClientClosedConnection: if the client closed its connection.
            aiotestkit.SendTimeout: if the client did not read within ``timeout``.

        Example:
            ```python
            await stream.finish()
            ```
        """
        if self._state is _State.FINISHED:
            return
        self._check_open("finish")
        truncated = self._length is not None and self._sent < self._length
        if truncated:
            self._response.force_close()
        await self._send(self._response.write_eof(), "the end of the body", timeout)
        self._state = _State.FINISHED
        if truncated:
            transport = self._request.transport
            if transport is not None:
                transport.close()
            reason = f"its response stream was finished early, after {self._sent} bytes"
        else:
            reason = "its response stream was finished"
        self._on_end(reason, False)

    def abort(self) -> None:
        """Reset the connection mid-body: the client sees a truncated response.

        Data not yet handed to the kernel is discarded; over TCP the client sees a
        reset. Like :meth:`asyncio.Transport.abort`, it does not wait. Calling it on a
        finished or aborted stream does nothing.

        Example:
            ```python
            await stream.send_event("partial")
            stream.abort()
            ```
        """
        if self._state is not _State.OPEN:
            return
        self._state = _State.ABORTED
        transport = self._request.transport
        if transport is not None:
            abort_with_reset(transport)
        self._on_end("its response stream was aborted by the test", True)

    def _check_open(self, action: str) -> None:
        if self._state is not _State.OPEN:
            raise RuntimeError(f"cannot {action} {self!r}: the test {self._state.value} it")

    async def _send(self, sending: Awaitable[None], what: str, timeout: float) -> None:
        timeout = check_timeout(timeout)
        try:
            await asyncio.wait_for(sending, timeout)
        except asyncio.TimeoutError:
            raise SendTimeout(
                f"{self!r} could not send {what} within {timeout:g} s: the client does "
                "not read. Read in the client before the server sends more."
            ) from None
        except (ConnectionError, RuntimeError) as error:
            # aiohttp raises ClientConnectionResetError (a ConnectionResetError) or, on
            # older versions, RuntimeError("Cannot write to closing transport").
            if isinstance(error, RuntimeError) and "closing transport" not in str(error):
                raise
            raise ClientClosedConnection(
                f"cannot send {what} on {self!r}: its client closed the connection"
            ) from error
