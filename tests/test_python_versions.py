"""What the instrumentation must not change, on any supported Python version.

Python 3.13.0 to 3.13.2 rename the tasks a task factory makes (CPython gh-130033), and
Python 3.10 leaves a TLS transport flagged open after its peer closed the connection
(CPython bpo-46318). Both would make a test's outcome depend on the Python version.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto

import pytest
import trustme

from aiotestkit import LoopInstrumentation

pytestmark = pytest.mark.asyncio


async def test_tasks_keep_their_default_and_given_names() -> None:
    loop = asyncio.get_running_loop()
    create_task = loop.create_task  # the plugin's correction on 3.13.0-3.13.2, else the loop's

    async def name() -> str:
        task = asyncio.current_task()
        assert task is not None
        return task.get_name()

    async with LoopInstrumentation(name="names") as instrumentation:
        assert loop.get_task_factory() is not None
        unnamed = await asyncio.create_task(name())
        given = await asyncio.create_task(name(), name="given")
        from_loop = await loop.create_task(name())
    instrumentation.check()
    assert unnamed.startswith("Task-")
    assert from_loop.startswith("Task-")
    assert given == "given"
    assert loop.create_task == create_task


async def test_tls_connection_closed_by_the_peer_is_not_reported() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    connection_lost = sslproto.SSLProtocol.connection_lost

    class Silent(asyncio.Protocol):
        """Like aiohttp's server connections: never closes its transport itself."""

        def __init__(self) -> None:
            self.lost = asyncio.get_running_loop().create_future()

        def connection_lost(self, exc: Exception | None) -> None:
            self.lost.set_result(None)

    async with LoopInstrumentation(name="tls") as instrumentation:
        loop = asyncio.get_running_loop()
        protocols: list[Silent] = []

        def factory() -> Silent:
            protocols.append(Silent())
            return protocols[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        writer.close()
        await writer.wait_closed()
        await protocols[0].lost
        protocols.clear()  # the server's transport is collected inside the test
        server.close()
        await server.wait_closed()
    instrumentation.check()
    assert sslproto.SSLProtocol.connection_lost is connection_lost
