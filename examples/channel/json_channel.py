"""A small JSON request/reply channel over asyncio streams, written for this example.

Each frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON: a list
``[kind, id, payload]`` where ``kind`` is 0 (request), 1 (reply) or 2 (error reply).
Either side can send requests; a background task reads frames and routes replies to
the requests waiting for them. It runs over TCP, TLS and Unix sockets alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

REQUEST, REPLY, ERROR = 0, 1, 2
MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")


class ChannelError(Exception):
    """Base of the channel's errors."""


class ProtocolError(ChannelError):
    """The peer sent a frame that is not valid for this protocol."""


class ChannelClosed(ChannelError, ConnectionError):
    """The connection ended while a request waited for its reply."""


class RemoteError(ChannelError):
    """The peer answered a request with an error."""


def encode_frame(kind: int, message_id: int, payload: Any) -> bytes:
    body = json.dumps([kind, message_id, payload]).encode()
    return _HEADER.pack(len(body)) + body


class Request:
    """A request received from the peer; answer it with :meth:`reply` or :meth:`fail`."""

    def __init__(self, channel: Channel, message_id: int, content: Any) -> None:
        self._channel = channel
        self._id = message_id
        self.content = content

    async def reply(self, content: Any) -> None:
        await self._channel._write(encode_frame(REPLY, self._id, content))

    async def fail(self, message: str) -> None:
        await self._channel._write(encode_frame(ERROR, self._id, message))


class Channel:
    """One end of a connection: :meth:`send` requests, :meth:`recv` the peer's requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._requests: asyncio.Queue[Request | ChannelError] = asyncio.Queue()
        self._error: ChannelError | None = None
        self._reading = asyncio.create_task(self._read_frames())

    async def send(self, content: Any) -> Any:
        """Send a request and return the peer's reply."""
        if self._error is not None:
            raise self._error
        message_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        try:
            await self._write(encode_frame(REQUEST, message_id, content))
            return await future
        finally:
            self._waiting.pop(message_id, None)

    async def recv(self) -> Request:
        """Return the next request from the peer."""
        item = await self._requests.get()
        if isinstance(item, ChannelError):
            self._requests.put_nowait(item)
            raise item
        return item

    async def close(self) -> None:
        self._reading.cancel()
        self._writer.close()
        with contextlib.suppress(OSError):  # ConnectionError and ssl.SSLError included
            await self._writer.wait_closed()
        await asyncio.wait([self._reading])

    async def _write(self, frame: bytes) -> None:
        self._writer.write(frame)
        await self._writer.drain()

    async def _read_frames(self) -> None:
        try:
            while True:
                kind, message_id, payload = await self._read_frame()
                if kind == REQUEST:
                    self._requests.put_nowait(Request(self, message_id, payload))
                    continue
                future = self._waiting.get(message_id)
                if future is None or future.done():
                    raise ProtocolError(f"reply to unknown request {message_id}")
                if kind == REPLY:
                    future.set_result(payload)
                else:
                    future.set_exception(RemoteError(payload))
        except ChannelError as error:
            self._fail(error)
            self._writer.close()
        except (ConnectionError, OSError) as error:
            self._fail(ChannelClosed(f"the connection failed: {error!r}"))

    async def _read_frame(self) -> tuple[int, int, Any]:
        try:
            header = await self._reader.readexactly(_HEADER.size)
        except asyncio.IncompleteReadError as error:
            if error.partial:
                raise ChannelClosed("the peer closed the connection mid-header") from None
            raise ChannelClosed("the peer closed the connection") from None
        (length,) = _HEADER.unpack(header)
        if length > MAX_FRAME:
            raise ProtocolError(f"frame of {length} bytes exceeds the limit of {MAX_FRAME}")
        try:
            body = await self._reader.readexactly(length)
        except asyncio.IncompleteReadError as error:
            raise ChannelClosed(
                f"the peer closed the connection mid-frame, after {len(error.partial)} "
                f"of {length} bytes"
            ) from None
        try:
            kind, message_id, payload = json.loads(body)
        except ValueError as error:
            raise ProtocolError(f"malformed frame {body[:60]!r}: {error}") from None
        if kind not in (REQUEST, REPLY, ERROR) or not isinstance(message_id, int):
            raise ProtocolError(f"malformed frame {body[:60]!r}: bad kind or id")
        return kind, message_id, payload

    def _fail(self, error: ChannelError) -> None:
        self._error = error
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._requests.put_nowait(error)


async def open_connection(address: tuple[str, int] | str, **kwargs: Any) -> Channel:
    """Connect to ``address`` (``(host, port)`` or a Unix socket path) and return a channel."""
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address, **kwargs)
    else:
        reader, writer = await asyncio.open_connection(*address, **kwargs)
    return Channel(reader, writer)


def channel_handler(
    handle_client: Callable[[Channel], Awaitable[None]],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """Turn ``handle_client(channel)`` into an ``asyncio.start_server`` callback."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = Channel(reader, writer)
        try:
            await handle_client(channel)
        finally:
            await channel.close()

    return handle


async def start_server(
    address: tuple[str, int] | str,
    handle_client: Callable[[Channel], Awaitable[None]],
    **kwargs: Any,
) -> asyncio.Server:
    """Serve channels on ``address``; ``handle_client(channel)`` runs per connection."""
    handle = channel_handler(handle_client)
    if isinstance(address, str):
        return await asyncio.start_unix_server(handle, address, **kwargs)
    return await asyncio.start_server(handle, *address, **kwargs)
