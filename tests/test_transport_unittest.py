"""TransportContext without pytest fixtures: a unittest test case.

As in docs/how-to/every-transport.md.
"""

from __future__ import annotations

import asyncio
import unittest

from aiotestkit import TransportContext


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


class TestOverEachTransport(unittest.IsolatedAsyncioTestCase):
    async def test_over_each_transport(self) -> None:
        for name in ("tcp", "tls", "unix"):
            with self.subTest(transport=name):
                async with TransportContext(name) as transport:
                    reader, writer = await transport.start_server_and_connect(handle)
                    writer.write(b"abc\n")
                    self.assertEqual(await reader.readline(), b"ABC\n")  # noqa: PT009
