"""python-kraken-sdk's SpotAsyncClient, unmodified, against the test's own api.kraken.com.

The client builds its own aiohttp session from ``https://api.kraken.com`` and takes
none: the network sandbox routes that host to a case-controlled server, over TLS
with a certificate for api.kraken.com, with the client's verification on.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

if sys.version_info < (3, 11):  # pyproject.toml installs python-kraken-sdk on 3.11+ only
    pytest.skip("python-kraken-sdk requires Python 3.11 or newer", allow_module_level=True)

from kraken.exceptions import KrakenApiLimitExceededError, KrakenServiceUnavailableError
from kraken.spot import SpotAsyncClient

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def kraken(
    network_sandbox: NetworkSandbox, case_controlled_server: CaseControlledTestServer
) -> AsyncIterator[CaseControlledTestServer]:
    await network_sandbox.route("api.kraken.com", 443, case_controlled_server)
    yield case_controlled_server
    network_sandbox.assert_tls_verified()


async def test_server_time(kraken: CaseControlledTestServer) -> None:
    client = SpotAsyncClient()
    try:
        task = asyncio.create_task(client.request("GET", "/0/public/Time", auth=False))
        request = await kraken.receive_request()
        assert request.secure
        assert request.host == "api.kraken.com"
        assert (request.method, request.path) == ("GET", "/0/public/Time")
        kraken.send_json(
            request,
            {"error": [], "result": {"unixtime": 1700000000, "rfc1123": "Tue, 14 Nov 23"}},
        )
        assert await task == {"unixtime": 1700000000, "rfc1123": "Tue, 14 Nov 23"}
    finally:
        await client.close()


async def test_ticker(kraken: CaseControlledTestServer) -> None:
    client = SpotAsyncClient()
    try:
        task = asyncio.create_task(
            client.request("GET", "/0/public/Ticker?pair=XBTUSD", auth=False)
        )
        request = await kraken.receive_request()
        assert request.path == "/0/public/Ticker"
        assert request.query["pair"] == "XBTUSD"
        ticker = {"XXBTZUSD": {"c": ["37000.10000", "0.0012"], "v": ["120.5", "980.1"]}}
        kraken.send_json(request, {"error": [], "result": ticker})
        assert await task == ticker
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("error", "exception"),
    [
        ("EAPI:Rate limit exceeded", KrakenApiLimitExceededError),
        ("EService:Unavailable", KrakenServiceUnavailableError),
    ],
)
async def test_error_list_maps_to_the_sdks_exception(
    kraken: CaseControlledTestServer, error: str, exception: type[Exception]
) -> None:
    client = SpotAsyncClient()
    try:
        task = asyncio.create_task(client.request("GET", "/0/public/Time", auth=False))
        request = await kraken.receive_request()
        kraken.send_json(request, {"error": [error]})
        with pytest.raises(exception, match=error):
            await task
    finally:
        await client.close()
