"""AiohttpRedirector and the aiohttp_redirector fixture, over real TLS."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aiotestkit import AiohttpRedirector, CaseControlledTestServer

pytestmark = pytest.mark.asyncio


async def test_fixture_routes_https_to_a_server_with_the_real_hostname(
    aiohttp_redirector: AiohttpRedirector,
) -> None:
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.kraken.com", 443, server)
        task = asyncio.create_task(
            aiohttp_redirector.session.get("https://api.kraken.com/0/public/Time")
        )
        request = await server.receive_request()
        assert (request.host, request.path, request.secure) == (
            "api.kraken.com",
            "/0/public/Time",
            True,
        )
        server.send_json(request, {"error": [], "result": {"unixtime": 1}})
        async with await task as response:
            assert await response.json() == {"error": [], "result": {"unixtime": 1}}


async def test_add_server_takes_a_port_number(aiohttp_redirector: AiohttpRedirector) -> None:
    async with CaseControlledTestServer() as server:
        assert server.port is not None
        aiohttp_redirector.add_server("plain.example", 80, server.port)
        task = asyncio.create_task(aiohttp_redirector.session.get("http://plain.example/"))
        server.send_response(await server.receive_request(), text="ok")
        async with await task as response:
            assert await response.text() == "ok"


async def test_nothing_else_is_reachable(aiohttp_redirector: AiohttpRedirector) -> None:
    with pytest.raises(
        aiohttp.ClientConnectorError, match=r"no test server is known for example\.com:443"
    ):
        await aiohttp_redirector.session.get("https://example.com/")


async def test_add_server_rejects_a_server_that_is_not_started(
    aiohttp_redirector: AiohttpRedirector,
) -> None:
    with pytest.raises(ValueError, match="is not started; start it before adding it"):
        aiohttp_redirector.add_server("a.example", 443, CaseControlledTestServer())
    with pytest.raises(TypeError, match="target must be a port number or a started server"):
        aiohttp_redirector.add_server("a.example", 443, "8443")  # type: ignore[arg-type]


async def test_session_is_closed_on_exit_and_not_usable_before_opening() -> None:
    redirector = AiohttpRedirector()
    with pytest.raises(RuntimeError, match="session is not open"):
        _ = redirector.session
    async with redirector:
        session = redirector.session
    assert session.closed
    with pytest.raises(RuntimeError, match="session is not open"):
        _ = redirector.session
