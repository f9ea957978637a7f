"""A case-controlled stream server reached under a real host name through the network sandbox."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from aiotestkit import CaseControlledStreamServer, NetworkSandbox

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
