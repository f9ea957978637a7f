"""A raw asyncio.open_connection client over TLS to a routed host name."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from aiotestkit import NetworkSandbox

pytestmark = pytest.mark.asyncio


async def fetch_status_line(host: str, path: str) -> bytes:
    """Client code under test: plain asyncio streams, TLS from the system defaults."""
    reader, writer = await asyncio.open_connection(host, 443, ssl=True)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_open_connection_over_tls(network_sandbox: NetworkSandbox) -> None:
    async def status(request: web.BaseRequest) -> web.Response:
        assert request.secure
        assert request.host == "status.example.com"
        return web.Response(status=204)

    await network_sandbox.route("status.example.com", 443, status)
    assert (
        await fetch_status_line("status.example.com", "/health") == b"HTTP/1.1 204 No Content\r\n"
    )
    network_sandbox.assert_tls_verified()
