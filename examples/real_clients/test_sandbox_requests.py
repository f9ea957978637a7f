"""``requests`` called from async code through ``asyncio.to_thread``, against a routed HTTPS host.

The client below is ordinary blocking code, as many SDKs are: a ``requests.Session``
with certificate verification on (``requests`` trusts ``certifi``'s bundle). The async
service calls it in a worker thread. Inside the network sandbox, the thread's lookups,
connections and TLS handshakes follow the same routes as the loop's: the request
reaches the test's server under its real host name, over verified TLS, with no
change to the client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytestmark = pytest.mark.asyncio


class RatesClient:
    """Client code under test: a blocking SDK for an exchange-rates API."""

    def __init__(self, token: str) -> None:
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def latest(self, base: str) -> dict[str, Any]:
        with self._session.get(
            "https://rates.example.com/v2/latest", params={"base": base}, timeout=10
        ) as response:
            response.raise_for_status()
            rates: dict[str, Any] = response.json()["rates"]
            return rates

    def close(self) -> None:
        self._session.close()


async def convert(client: RatesClient, amount: float, base: str, quote: str) -> float:
    """Async code under test: it runs the blocking client in a worker thread."""
    rates = await asyncio.to_thread(client.latest, base)
    return amount * float(rates[quote])


async def test_convert_in_a_thread_over_verified_tls(network_sandbox: NetworkSandbox) -> None:
    async with CaseControlledTestServer() as server:
        await network_sandbox.route("rates.example.com", 443, server)
        client = RatesClient(token="t0ken")
        try:
            task = asyncio.create_task(convert(client, 10, "EUR", "USD"))
            request = await server.receive_request()
            assert request.secure
            assert request.host == "rates.example.com"
            assert request.path_qs == "/v2/latest?base=EUR"
            assert request.headers["Authorization"] == "Bearer t0ken"
            server.send_json(request, {"base": "EUR", "rates": {"USD": "1.25"}})
            assert await task == 12.5
        finally:
            client.close()
    network_sandbox.assert_tls_verified()


async def test_a_forgotten_route_fails_in_the_thread_with_the_sandboxs_message(
    network_sandbox: NetworkSandbox,
) -> None:
    client = RatesClient(token="t0ken")
    try:
        with pytest.raises(requests.ConnectionError) as caught:
            await convert(client, 10, "EUR", "USD")
    finally:
        client.close()
    assert (
        "name resolution of rates.example.com refused by the network sandbox: no test server "
        "is routed for it; route a test server for it with "
        "`await sandbox.route('rates.example.com', 443, server)`"
    ) in str(caught.value)
    network_sandbox.expect_blocked("rates.example.com")  # the fixture checks the rest
