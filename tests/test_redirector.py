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


class InjectedClient:
    """Client code that takes a session when it is built (as an SDK's client does)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def text(self, url: str) -> str:
        async with self.session.get(url) as response:
            return await response.text()


@pytest.fixture
def injected_client(aiohttp_redirector: AiohttpRedirector) -> InjectedClient:
    # A synchronous fixture: no loop runs while it asks for the session.
    return InjectedClient(aiohttp_redirector.session)


async def test_the_fixture_session_taken_outside_the_loop_runs_on_the_test_loop(
    injected_client: InjectedClient, aiohttp_redirector: AiohttpRedirector
) -> None:
    assert aiohttp_redirector.session is injected_client.session
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.example.com", 443, server)
        task = asyncio.create_task(injected_client.text("https://api.example.com/"))
        request = await server.receive_request()
        assert (request.host, request.secure) == ("api.example.com", True)
        server.send_response(request, text="same loop")
        assert await task == "same loop"


async def test_open_nowait_makes_the_session_at_first_use_and_close_ends_it() -> None:
    redirector = AiohttpRedirector()
    redirector.open_nowait(asyncio.get_running_loop())
    redirector.open_nowait(asyncio.get_running_loop())  # again: nothing
    async with CaseControlledTestServer() as server:
        redirector.add_server("plain.example", 80, server)
        session = redirector.session
        assert redirector.session is session
        task = asyncio.create_task(session.get("http://plain.example/"))
        server.send_response(await server.receive_request(), text="ok")
        async with await task as response:
            assert await response.text() == "ok"
    await redirector.close()
    assert session.closed
    with pytest.raises(RuntimeError, match="session is not open"):
        _ = redirector.session


async def test_a_redirector_closed_before_its_first_use_makes_no_session() -> None:
    redirector = AiohttpRedirector()
    redirector.open_nowait(asyncio.get_running_loop())
    await redirector.close()
    with pytest.raises(RuntimeError, match="session is not open"):
        _ = redirector.session
    await redirector.open()  # a closed redirector stays closed
    with pytest.raises(RuntimeError, match="session is not open"):
        _ = redirector.session
