"""The retrying SDK against a case-controlled server: a dropped connection is retried,
and a server that is gone makes the SDK fail fast, with the sandbox saying why.

Both run in virtual time (the ``clock`` fixture), so the back-off costs no real
time. The sandbox refuses connections to a route whose server has closed at once,
as a host that is down would: the SDK's retries end in milliseconds instead of a
hang, and the refusal names the host, the port and the closed server.
"""

from __future__ import annotations

import asyncio

import pytest
from weather_sdk import WeatherClient, WeatherUnavailable

from aiotestkit import CaseControlledTestServer, NetworkSandbox, VirtualClock

pytestmark = pytest.mark.asyncio

SUNNY = {"city": "Lisbon", "sky": "clear", "celsius": 24}


async def test_a_dropped_connection_is_retried_after_one_second(
    network_sandbox: NetworkSandbox, clock: VirtualClock
) -> None:
    async with CaseControlledTestServer() as server:
        await network_sandbox.route("api.weather.example", 443, server)
        async with WeatherClient() as client:
            task = asyncio.create_task(client.current("Lisbon"))
            request = await server.receive_request()
            while clock.time() == 0:  # aiohttp may retry a dropped GET once by itself
                server.abort(request)  # the connection drops before any answer
                request = await server.receive_request()
            retry = request
            assert clock.time() == 1.0  # the SDK's own retry, after its 1 s back-off
            assert retry.query["city"] == "Lisbon"
            server.send_json(retry, SUNNY)
            assert await task == SUNNY


async def test_a_server_that_is_gone_fails_the_sdk_fast_with_the_reason(
    network_sandbox: NetworkSandbox, clock: VirtualClock
) -> None:
    server = CaseControlledTestServer()
    await network_sandbox.route("api.weather.example", 443, server)
    async with WeatherClient() as client:
        task = asyncio.create_task(client.current("Lisbon"))
        request = await server.receive_request()
        server.abort(request)
        await server.close()  # the service goes down while the client retries
        with pytest.raises(WeatherUnavailable, match="failed 4 times") as caught:
            await task
    assert clock.time() == 1.0 + 2.0 + 4.0  # the back-off only: no try hung
    message = str(caught.value.__cause__)
    assert "connection to api.weather.example:443 refused by the network sandbox" in message
    assert "has closed, so the host is down" in message
    # Each retry was refused like any connection the test did not route: declare them.
    assert {(a.host, a.port) for a in network_sandbox.blocked} == {("api.weather.example", 443)}
    network_sandbox.expect_blocked("api.weather.example", 443)
