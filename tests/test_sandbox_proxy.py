"""The sandbox's HTTP proxy: CONNECT tunnels, forwarding, refusals and proxy auth."""

from __future__ import annotations

import asyncio
from base64 import b64encode
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from aiotestkit import (
    BlockedConnection,
    CaseControlledStreamServer,
    CaseControlledTestServer,
    NetworkSandbox,
)

pytestmark = pytest.mark.asyncio


async def answered(server: CaseControlledTestServer, call: Any, text: str = "ok") -> Any:
    task = asyncio.ensure_future(call)
    request = await server.receive_request()
    server.send_response(request, text=text)
    return request, await task


async def test_httpx_tunnels_to_a_routed_https_host_with_tls_end_to_end(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
    assert proxy.url == "http://proxy.corp.example:3128"
    async with httpx.AsyncClient(proxy=proxy.url, timeout=5) as client:
        request, response = await answered(server, client.get("https://api.example.com/v1/me"))
        stream = response.extensions["network_stream"]
        peer = stream.get_extra_info("ssl_object").getpeercert()
    assert response.text == "ok"
    assert (request.host, request.path, request.secure) == ("api.example.com", "/v1/me", True)
    # the client verified the target's certificate itself: the tunnel carried its TLS
    assert [value for _, value in peer["subjectAltName"]] == ["api.example.com"]
    assert proxy.tunnels == [("api.example.com", 443)]
    assert proxy.forwarded == []
    assert sandbox.blocked == []
    sandbox.assert_tls_verified()


async def test_https_proxy_from_the_environment_with_proxy_auth(
    sandbox: NetworkSandbox, server: CaseControlledTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sandbox.route("api.example.com", 443, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 8080, auth=("alice", "s3cret"))
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s3cret@proxy.corp.example:8080")
    async with httpx.AsyncClient(timeout=5) as client:  # trust_env is on by default
        request, response = await answered(server, client.get("https://api.example.com/"))
    assert response.status_code == 200
    assert "Proxy-Authorization" not in request.headers  # it stays with the proxy
    assert proxy.tunnels == [("api.example.com", 443)]


async def test_without_credentials_the_proxy_answers_407_and_refuses_nothing(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 8080, auth=("alice", "s3cret"))
    async with aiohttp.ClientSession() as session:
        async with session.get("http://api.example.com/", proxy=proxy.url) as response:
            assert response.status == 407
            assert response.headers["Proxy-Authenticate"] == 'Basic realm="aiotestkit"'
            assert await response.text() == (
                "aiotestkit proxy proxy.corp.example:8080: the request has no "
                "Proxy-Authorization header. Give the client the user and password of "
                "route_proxy(auth=...), e.g. in its proxy URL: "
                "http://user:password@proxy.corp.example:8080\n"
            )
        with pytest.raises(aiohttp.ClientHttpProxyError) as caught:
            await session.get(
                "https://api.example.com/",
                proxy=proxy.url,
                proxy_headers={
                    "Proxy-Authorization": "Basic " + b64encode(b"alice:wrong").decode()
                },
            )
    assert caught.value.status == 407
    assert proxy.tunnels == []
    assert sandbox.blocked == []


async def test_connect_to_an_unrouted_host_is_forbidden_and_recorded(
    sandbox: NetworkSandbox,
) -> None:
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
    async with httpx.AsyncClient(proxy=proxy.url, timeout=5) as client:
        with pytest.raises(httpx.ProxyError, match="403 Forbidden"):
            await client.get("https://telemetry.example.com/v1/events")
    message = (
        "connection to telemetry.example.com:443 refused by the network sandbox: no test "
        "server is routed there; route a test server there with "
        "`await sandbox.route('telemetry.example.com', 443, server)`"
    )
    assert sandbox.blocked == [BlockedConnection("telemetry.example.com", 443, "connect", message)]
    assert proxy.tunnels == []

    reader, writer = await asyncio.open_connection("proxy.corp.example", 3128)
    writer.write(b"CONNECT telemetry.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert (await reader.readexactly(length)).decode() == (
        f"aiotestkit proxy proxy.corp.example:3128: {message}\n"
    )
    writer.close()
    await writer.wait_closed()


async def test_plain_http_requests_are_forwarded_to_routed_hosts(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 80, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128, auth=("alice", "s3cret"))
    async with httpx.AsyncClient(
        proxy="http://alice:s3cret@proxy.corp.example:3128", timeout=5
    ) as client:
        task = asyncio.create_task(
            client.post("http://api.example.com/orders?dry=1", json={"qty": 2})
        )
        request = await server.receive_request()
        assert (request.method, request.path_qs, request.host) == (
            "POST",
            "/orders?dry=1",
            "api.example.com",
        )
        assert await request.json() == {"qty": 2}
        assert "Proxy-Authorization" not in request.headers
        assert "Accept-Encoding" in request.headers  # the client's own, not aiohttp's
        server.send_response(request, status=201, text="created", headers={"X-Id": "7"})
        response = await task
    assert (response.status_code, response.text, response.headers["X-Id"]) == (
        201,
        "created",
        "7",
    )
    assert proxy.forwarded == [("POST", "http://api.example.com/orders?dry=1")]
    assert proxy.tunnels == []


async def test_plain_http_to_an_unrouted_host_is_forbidden(sandbox: NetworkSandbox) -> None:
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
    async with httpx.AsyncClient(proxy=proxy.url, timeout=5) as client:
        response = await client.get("http://telemetry.example.com/ping")
    assert response.status_code == 403
    assert "connection to telemetry.example.com:80 refused by the network sandbox" in (
        response.text
    )
    assert [(b.host, b.port, b.stage) for b in sandbox.blocked] == [
        ("telemetry.example.com", 80, "connect")
    ]
    assert proxy.forwarded == []


async def test_a_request_that_is_not_for_a_proxy_gets_400(sandbox: NetworkSandbox) -> None:
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/status") as response,
    ):
        assert response.status == 400
        assert await response.text() == (
            "aiotestkit proxy proxy.corp.example:3128: a proxy takes absolute http:// "
            "URLs (or CONNECT for https), got GET '/status'\n"
        )


async def test_requests_in_a_thread_through_the_proxy(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128, auth=("bob", "pw"))

    def fetch() -> tuple[int, str]:
        with requests.Session() as session:
            proxy_url = "http://bob:pw@proxy.corp.example:3128"
            response = session.get(
                "https://api.example.com/x", proxies={"https": proxy_url}, timeout=5
            )
            return response.status_code, response.text

    request, answer = await answered(server, asyncio.to_thread(fetch), text="via proxy")
    assert answer == (200, "via proxy")
    assert request.secure
    assert proxy.tunnels == [("api.example.com", 443)]


async def test_a_tunnel_relays_server_first_protocols_both_ways(
    sandbox: NetworkSandbox, case_controlled_stream_server_factory: Any
) -> None:
    stream_server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    await sandbox.route("smtp.example.com", 25, stream_server.address)
    proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
    reader, writer = await asyncio.open_connection("proxy.corp.example", 3128)
    writer.write(b"CONNECT smtp.example.com:25 HTTP/1.1\r\nHost: smtp.example.com:25\r\n\r\n")
    connection = await stream_server.receive_connection()
    await connection.send(b"220 smtp.example.com ready\r\n")  # before the client speaks
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 Connection established\r\n")
    assert b"Content-Length" not in head
    assert b"Transfer-Encoding" not in head
    assert await reader.readline() == b"220 smtp.example.com ready\r\n"
    writer.write(b"QUIT\r\n")
    assert await connection.receive_line() == b"QUIT\r\n"
    await connection.send(b"221 bye\r\n")
    assert await reader.readline() == b"221 bye\r\n"
    writer.close()
    await writer.wait_closed()
    assert await connection.receive() == b""
    await connection.close()
    assert proxy.tunnels == [("smtp.example.com", 25)]


async def test_the_proxy_closes_its_tunnels_with_the_sandbox(
    case_controlled_stream_server_factory: Any,
) -> None:
    stream_server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    async with NetworkSandbox() as sandbox:
        await sandbox.route("db.example.com", 5432, stream_server.address)
        proxy = await sandbox.route_proxy("proxy.corp.example", 3128)
        reader, writer = await asyncio.open_connection("proxy.corp.example", 3128)
        writer.write(b"CONNECT db.example.com:5432 HTTP/1.1\r\nHost: db.example.com\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        connection = await stream_server.receive_connection()
        tasks_with_tunnel = asyncio.all_tasks()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the tunnel closed
    assert await connection.receive() == b""
    await connection.close()
    writer.close()
    await writer.wait_closed()
    assert len(tasks_with_tunnel) > len(asyncio.all_tasks()) == 1  # only this test's
    assert repr(proxy) == "<HTTPProxy proxy.corp.example:3128, 1 tunnel(s)>"


async def test_route_proxy_checks_its_arguments(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    with pytest.raises(TypeError, match=r"auth must be a \(user, password\) pair of str"):
        await sandbox.route_proxy("proxy.corp.example", 3128, auth="alice:pw")  # type: ignore[arg-type]
    await sandbox.route("proxy.corp.example", 3128, server)
    with pytest.raises(ValueError, match=r"proxy\.corp\.example:3128 is routed already"):
        await sandbox.route_proxy("proxy.corp.example", 3128)


async def test_route_proxy_needs_an_open_sandbox() -> None:
    sandbox = NetworkSandbox()
    with pytest.raises(RuntimeError, match=r"cannot start a proxy: .* is not open"):
        await sandbox.route_proxy("proxy.corp.example", 3128)


async def test_aiohttp_with_trust_env_tunnels_through_the_proxy(
    sandbox: NetworkSandbox, server: CaseControlledTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sandbox.route("api.example.com", 443, server)
    proxy = await sandbox.route_proxy("proxy.corp.example", 8080, auth=("alice", "s3cret"))
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s3cret@proxy.corp.example:8080")
    async with aiohttp.ClientSession(trust_env=True) as session:

        async def get() -> str:
            async with session.get("https://api.example.com/v1/ping") as response:
                return await response.text()

        request, text = await answered(server, get(), text="pong")
    assert (request.secure, request.path, text) == (True, "/v1/ping", "pong")
    assert proxy.tunnels == [("api.example.com", 443)]
    sandbox.assert_tls_verified()
