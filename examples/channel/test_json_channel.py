"""The JSON channel, tested over TCP, TLS and Unix sockets with the ``transport`` fixture.

Every test runs once per transport. The server's handler is written in the test; the
fixture starts it, connects, and at teardown closes everything and fails the test if
the handler raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

import pytest
from json_channel import (
    Channel,
    ChannelClosed,
    ProtocolError,
    RemoteError,
    channel_handler,
    encode_frame,
    open_connection,
    start_server,
)

from aiotestkit import CaseControlledStreamServer, TransportContext

pytestmark = pytest.mark.asyncio


async def test_request_and_reply(transport: TransportContext) -> None:
    results = []

    async def handle_client(channel: Channel) -> None:
        request = await channel.recv()
        results.append(request.content)
        await request.reply("cya")

    channel = Channel(*await transport.start_server_and_connect(channel_handler(handle_client)))
    results.append(await channel.send("ohai"))
    await channel.close()
    assert results == ["ohai", "cya"]


async def test_own_server_and_client_functions(transport: TransportContext) -> None:
    """The channel's own start_server/open_connection, on the transport's address."""

    async def handle_client(channel: Channel) -> None:
        with contextlib.suppress(ChannelClosed):  # until the client hangs up
            while True:
                request = await channel.recv()
                await request.reply({"sum": sum(request.content)})

    server = await start_server(transport.address, handle_client, ssl=transport.server_ssl)
    async with server:
        channel = await open_connection(transport.address, ssl=transport.client_ssl)
        assert await channel.send([1, 2, 3]) == {"sum": 6}
        assert await channel.send([]) == {"sum": 0}
        await channel.close()


async def test_concurrent_requests_get_their_own_replies(transport: TransportContext) -> None:
    async def handle_client(channel: Channel) -> None:
        first = await channel.recv()
        second = await channel.recv()
        await second.reply(second.content * 2)  # out of order
        await first.reply(first.content * 2)

    channel = Channel(*await transport.start_server_and_connect(channel_handler(handle_client)))
    assert await asyncio.gather(channel.send(1), channel.send(10)) == [2, 20]
    await channel.close()


async def test_error_reply_raises_remote_error(transport: TransportContext) -> None:
    async def handle_client(channel: Channel) -> None:
        request = await channel.recv()
        await request.fail(f"no such method {request.content['method']!r}")

    channel = Channel(*await transport.start_server_and_connect(channel_handler(handle_client)))
    with pytest.raises(RemoteError, match="no such method 'launch'"):
        await channel.send({"method": "launch"})
    await channel.close()


async def test_server_closing_mid_reply(transport: TransportContext) -> None:
    async def half_a_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        frame = encode_frame(1, 0, {"result": "x" * 100})
        writer.write(frame[:30])
        await writer.drain()
        writer.close()

    channel = Channel(*await transport.start_server_and_connect(half_a_reply))
    with pytest.raises(ChannelClosed, match="mid-frame, after 26 of 122 bytes"):
        await channel.send("get")
    with pytest.raises(ChannelClosed):  # the channel stays failed
        await channel.send("again")
    await channel.close()


async def test_server_closing_before_the_reply(transport: TransportContext) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        writer.close()

    channel = Channel(*await transport.start_server_and_connect(hang_up))
    with pytest.raises(ChannelClosed, match="the peer closed the connection"):
        await channel.send("get")
    await channel.close()


async def test_malformed_frame_from_the_server(transport: TransportContext) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        writer.write(struct.pack(">I", 9) + b"{not json")
        await writer.drain()
        await reader.read()  # until the client hangs up

    channel = Channel(*await transport.start_server_and_connect(garbage))
    with pytest.raises(ProtocolError, match=r"malformed frame b'\{not json'"):
        await channel.send("get")
    await channel.close()


async def test_malformed_frame_from_the_client_fails_the_handler(
    transport: TransportContext,
) -> None:
    errors = []

    async def handle_client(channel: Channel) -> None:
        try:
            await channel.recv()
        except ProtocolError as error:
            errors.append(error)

    reader, writer = await transport.start_server_and_connect(channel_handler(handle_client))
    writer.write(struct.pack(">I", 2**31))  # longer than the channel accepts
    assert await reader.read() == b""  # the server hung up
    await transport.close_server()
    assert [str(e) for e in errors] == ["frame of 2147483648 bytes exceeds the limit of 1048576"]


async def test_server_played_byte_by_byte(transport: TransportContext) -> None:
    """The test plays the server with a CaseControlledStreamServer on the same transport."""
    async with CaseControlledStreamServer(transport=transport.name) as server:
        channel = await open_connection(server.address, ssl=transport.client_ssl)
        sending = asyncio.create_task(channel.send({"method": "ping"}))
        connection = await server.receive_connection()
        (length,) = struct.unpack(">I", await connection.receive_exactly(4))
        assert json.loads(await connection.receive_exactly(length)) == [0, 0, {"method": "ping"}]
        await connection.send(encode_frame(1, 0, "pong"))
        assert await sending == "pong"
        await channel.close()
        assert await connection.receive() == b""  # the client closed
