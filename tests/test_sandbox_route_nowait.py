"""NetworkSandbox.route_nowait(): a route declared without awaiting, completed on first use."""

from __future__ import annotations

import asyncio
import textwrap

import aiohttp
import httpx
import pytest

from aiotestkit import CaseControlledTestServer, NetworkSandbox


@pytest.mark.asyncio
async def test_the_route_is_completed_when_a_client_first_resolves_the_host(
    network_sandbox: NetworkSandbox,
) -> None:
    server = CaseControlledTestServer()
    network_sandbox.route_nowait("api.example.com", 443, server)
    assert not server.started
    server.expect("GET", "/a", times=None).respond(text="a")
    async with (
        aiohttp.ClientSession() as session,
        session.get("https://api.example.com/a") as response,
    ):
        assert await response.text() == "a"
    assert server.started
    async with httpx.AsyncClient() as client:
        assert (await client.get("https://api.example.com/a")).text == "a"
    assert NetworkSandbox.current() is network_sandbox


@pytest.mark.asyncio
async def test_one_route_per_host_and_port(network_sandbox: NetworkSandbox) -> None:
    server = CaseControlledTestServer()
    network_sandbox.route_nowait("api.example.com", 443, server)
    with pytest.raises(ValueError, match="routed already"):
        network_sandbox.route_nowait("API.example.com", 443, server)
    with pytest.raises(ValueError, match="routed already, with route_nowait"):
        await network_sandbox.route("api.example.com", 443, server)


def test_no_sandbox_is_current_outside_one() -> None:
    assert NetworkSandbox.current() is None


def test_a_server_no_client_reached_still_reports_at_the_sandbox_close(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(
        test_case=textwrap.dedent(
            """
            import pytest

            from aiotestkit import CaseControlledTestServer, NetworkSandbox


            @pytest.mark.network_sandbox
            async def test_never_called():
                server = CaseControlledTestServer()
                NetworkSandbox.current().route_nowait("api.example.com", 443, server)
                server.expect("POST", "/token").respond(json={})
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*(unused_expectations, 1):",
            "*<CaseControlledTestServer never started> closed with 1 unused expectation(s):",
            "*POST /token: used 0 time(s), expected 1 time(s)*",
        ]
    )
    assert "unclosed_resources" not in result.stdout.str()


def test_open_nowait_routes_the_clients_of_a_loop_that_is_not_running_yet() -> None:
    loop = asyncio.new_event_loop()
    getaddrinfo = loop.getaddrinfo
    try:
        sandbox = NetworkSandbox()
        sandbox.open_nowait(loop)  # no loop runs: a synchronous fixture's set-up
        assert NetworkSandbox.current() is sandbox
        with pytest.raises(RuntimeError, match="cannot be opened twice"):
            sandbox.open_nowait(loop)

        async def test_body() -> str:
            async with CaseControlledTestServer() as server:
                await sandbox.route("api.example.com", 443, server)
                async with aiohttp.ClientSession() as session:
                    task = asyncio.create_task(session.get("https://api.example.com/"))
                    request = await server.receive_request()
                    server.send_response(request, text="routed")
                    async with await task as response:
                        return await response.text()

        assert loop.run_until_complete(test_body()) == "routed"
        loop.run_until_complete(sandbox.close())
        assert NetworkSandbox.current() is None
        assert loop.getaddrinfo == getaddrinfo  # restored
    finally:
        loop.close()
