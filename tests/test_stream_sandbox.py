"""A case-controlled stream server reached under a real host name through the network sandbox."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import redis.asyncio

from aiotestkit import (
    CaseControlledStreamServer,
    ClientClosedConnection,
    NetworkSandbox,
    StreamConnection,
)

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("kind", ["tcp", "tls", "unix"])
async def test_routed_host_name_reaches_the_stream_server(
    kind: str, network_sandbox: NetworkSandbox, case_controlled_stream_server_factory: Any
) -> None:
    server: CaseControlledStreamServer = await case_controlled_stream_server_factory(
        transport=kind
    )
    port = 6380 if kind == "tls" else 6379
    await network_sandbox.route("redis.example.com", port, server.address)
    client_ssl = ssl.create_default_context() if kind == "tls" else None  # the system's trust
    reader, writer = await asyncio.open_connection("redis.example.com", port, ssl=client_ssl)
    connection = await server.receive_connection()
    writer.write(b"PING\r\n")
    assert await connection.receive_line() == b"PING\r\n"
    await connection.send(b"+PONG\r\n")
    assert await reader.readline() == b"+PONG\r\n"
    if kind == "tls":
        names = [value for _, value in writer.get_extra_info("peercert")["subjectAltName"]]
        assert names == ["redis.example.com"]
    writer.close()
    assert await connection.receive() == b""
    await connection.close()


async def _serve_resp(connection: StreamConnection, values: dict[bytes, bytes]) -> list[bytes]:
    """Answer RESP commands as a key-value store would, until the client closes."""
    commands = []
    while True:
        try:
            header = await connection.receive_line()
        except ClientClosedConnection:
            break
        assert header.startswith(b"*"), header
        arguments = []
        for _ in range(int(header[1:])):
            size = int((await connection.receive_line())[1:])
            arguments.append((await connection.receive_exactly(size + 2))[:-2])
        commands.append(b" ".join(arguments))
        if arguments[0] == b"HELLO":
            await connection.send(b"%1\r\n+proto\r\n:3\r\n")
        elif arguments[0] == b"GET":
            value = values[arguments[1]]
            await connection.send(b"$%d\r\n%s\r\n" % (len(value), value))
        else:
            await connection.send(b"+OK\r\n")
    await connection.close()
    return commands


@pytest.mark.parametrize(
    "clock_marker",
    [pytest.param(False, id="real-time"), pytest.param(True, id="virtual-clock")],
)
async def test_key_value_store_client_handshakes_through_a_route(
    clock_marker: bool,
    request: pytest.FixtureRequest,
    network_sandbox: NetworkSandbox,
    case_controlled_stream_server_factory: Any,
) -> None:
    # redis-py pipelines its handshake (CLIENT SETINFO twice, two replies) and reads
    # with a timeout: the relay must pass each reply on at once, and the clock must
    # not jump past the client's timeout while a reply is on its way.
    if clock_marker:
        clock = request.getfixturevalue("clock")
    server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    await network_sandbox.route("cache.example.com", 6379, server.address)
    client = redis.asyncio.Redis(host="cache.example.com", port=6379, socket_timeout=5)
    reading = asyncio.create_task(client.get("greeting"))
    connection = await server.receive_connection()
    serving = asyncio.create_task(_serve_resp(connection, {b"greeting": b"hello"}))
    assert await reading == b"hello"
    await client.aclose()
    commands = await serving
    assert commands[0] == b"HELLO 3"
    assert b"CLIENT SETINFO LIB-NAME redis-py" in commands
    assert commands[-1] == b"GET greeting"
    if clock_marker:
        assert clock.time() == 0.0
