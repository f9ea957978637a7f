"""An httpx client behind a corporate proxy (``HTTPS_PROXY``), tested through ``route_proxy``.

The client code reads its proxy from the environment, as httpx does by default. The
test starts an HTTP proxy inside the network sandbox at the host and port that
``HTTPS_PROXY`` names, with proxy authentication; the proxy tunnels the client's TLS
to the routed API host, so the client verifies that host's certificate itself, as
it would behind a real proxy.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from aiotestkit import CaseControlledTestServer, NetworkSandbox

pytestmark = pytest.mark.asyncio

PROXY = "http://build-bot:hunter2@proxy.corp.example:3128"


async def fetch_release(tag: str) -> str:
    """Client code under test: its proxy comes from the environment."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"https://downloads.example.com/releases/{tag}.json")
        response.raise_for_status()
        version: str = response.json()["version"]
        return version


async def test_the_client_reaches_the_api_through_the_proxy(
    network_sandbox: NetworkSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    async with CaseControlledTestServer() as server:
        await network_sandbox.route("downloads.example.com", 443, server)
        proxy = await network_sandbox.route_proxy(
            "proxy.corp.example", 3128, auth=("build-bot", "hunter2")
        )
        task = asyncio.create_task(fetch_release("v2.1"))
        request = await server.receive_request()
        assert request.secure
        assert request.host == "downloads.example.com"
        assert request.path == "/releases/v2.1.json"
        server.send_json(request, {"version": "2.1.0"})
        assert await task == "2.1.0"
    assert proxy.tunnels == [("downloads.example.com", 443)]
    network_sandbox.assert_tls_verified()


async def test_wrong_proxy_credentials_get_407(
    network_sandbox: NetworkSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://build-bot:stale@proxy.corp.example:3128")
    await network_sandbox.route("downloads.example.com", 443, lambda request: None)
    proxy = await network_sandbox.route_proxy(
        "proxy.corp.example", 3128, auth=("build-bot", "hunter2")
    )
    with pytest.raises(httpx.ProxyError, match="407 Proxy Authentication Required"):
        await fetch_release("v2.1")
    assert proxy.tunnels == []
