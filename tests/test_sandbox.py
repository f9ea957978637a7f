"""The network sandbox, with real clients over real sockets and real TLS handshakes."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from pathlib import Path
from unittest import mock

import aiohttp
import httpx
import pytest
import websockets
from aiohttp import web
from aiohttp.resolver import AsyncResolver, ThreadedResolver

from aiotestkit import (
    BlockedConnection,
    CaseControlledTestServer,
    HygieneError,
    LoopInstrumentation,
    NameResolutionDenied,
    NetworkAccessDenied,
    NetworkSandbox,
    NetworkSandboxActive,
    UnverifiedTLSConnection,
    default_certificate_authority,
)

pytestmark = pytest.mark.asyncio


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def answer_one(server: CaseControlledTestServer, text: str = "ok") -> web.BaseRequest:
    request = await server.receive_request()
    server.send_response(request, text=text)
    return request


# -- each client library and entry point ---------------------------------------------


async def test_aiohttp_default_resolver_reaches_the_routed_server_over_tls(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get("https://api.example.com/v1/time"))
        request = await answer_one(server, "12:00")
        async with await task as response:
            assert await response.text() == "12:00"
    assert request.secure
    assert request.host == "api.example.com"
    assert request.path == "/v1/time"
    assert sandbox.blocked == []
    assert sandbox.unverified == []


@pytest.mark.parametrize("resolver_class", [ThreadedResolver, AsyncResolver])
async def test_aiohttp_threaded_and_aiodns_resolvers_reach_the_routed_server(
    sandbox: NetworkSandbox,
    server: CaseControlledTestServer,
    resolver_class: type[ThreadedResolver | AsyncResolver],
) -> None:
    await sandbox.route("api.example.com", 443, server)
    connector = aiohttp.TCPConnector(resolver=resolver_class())
    async with aiohttp.ClientSession(connector=connector) as session:
        task = asyncio.create_task(session.get("https://api.example.com/dns"))
        request = await answer_one(server)
        async with await task as response:
            assert response.status == 200
    assert request.secure
    assert request.host == "api.example.com"


@pytest.mark.parametrize("resolver_class", [ThreadedResolver, AsyncResolver])
async def test_aiohttp_resolvers_refuse_an_unrouted_host(
    sandbox: NetworkSandbox, resolver_class: type[ThreadedResolver | AsyncResolver]
) -> None:
    connector = aiohttp.TCPConnector(resolver=resolver_class())
    async with aiohttp.ClientSession(connector=connector) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get("https://unrouted.example.com/")
    assert "name resolution of unrouted.example.com refused" in str(caught.value)
    assert [(b.host, b.port, b.stage) for b in sandbox.blocked] == [
        ("unrouted.example.com", 443, "resolve")
    ]


async def test_httpx_on_anyio_reaches_the_routed_server_over_tls_and_plain(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    await sandbox.route("api.example.com", 80, server)
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(client.get("https://api.example.com/secure"))
        secure = await answer_one(server, "tls")
        assert (await task).text == "tls"
        task = asyncio.create_task(client.get("http://api.example.com/plain"))
        plain = await answer_one(server, "plain")
        assert (await task).text == "plain"
    assert (secure.secure, secure.host, secure.path) == (True, "api.example.com", "/secure")
    assert (plain.secure, plain.host, plain.path) == (False, "api.example.com", "/plain")


async def test_websockets_client_reaches_a_routed_application_over_wss(
    sandbox: NetworkSandbox,
) -> None:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"{request.secure}:{request.host}:{message.data}")
        return ws

    app = web.Application()
    app.router.add_get("/stream", echo)
    await sandbox.route("stream.example.com", 443, app)
    async with websockets.connect("wss://stream.example.com/stream") as ws:
        await ws.send("ping")
        assert await ws.recv() == "True:stream.example.com:ping"


async def test_open_connection_to_a_routed_host_over_tls(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    reader, writer = await asyncio.open_connection("api.example.com", 443, ssl=True)
    peer = writer.get_extra_info("ssl_object").getpeercert()
    writer.write(b"GET /raw HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
    request = await answer_one(server, "raw answer")
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert data.endswith(b"raw answer")
    assert request.secure
    assert request.host == "api.example.com"
    assert ("DNS", "api.example.com") in peer["subjectAltName"]


async def test_getaddrinfo_and_sock_connect_reach_the_routed_server(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 8080, server)
    loop = asyncio.get_running_loop()
    # A dual-stack lookup (AF_UNSPEC) gets the one IPv4 address, as a host with only an
    # A record; asked for AF_INET6, the same address IPv4-mapped.
    infos = await loop.getaddrinfo("api.example.com", 8080, type=socket.SOCK_STREAM)
    assert [info[0] for info in infos] == [socket.AF_INET]
    [v6] = await loop.getaddrinfo("api.example.com", 8080, family=socket.AF_INET6)
    assert v6[0] == socket.AF_INET6
    assert v6[4][:2] == (f"::ffff:{infos[0][4][0]}", 8080)
    family, _, _, _, address = infos[0]
    assert family == socket.AF_INET
    assert address[1] == 8080
    assert ipaddress.ip_address(address[0]) in ipaddress.ip_network("127.64.0.0/10")
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, address)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /sock HTTP/1.1\r\nHost: api.example.com:8080\r\nConnection: close\r\n\r\n")
    request = await answer_one(server, "via sock_connect")
    assert (await reader.read()).endswith(b"via sock_connect")
    writer.close()
    await writer.wait_closed()
    assert (request.secure, request.host) == (False, "api.example.com:8080")


async def test_create_connection_by_name_with_a_given_server_hostname(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(
        asyncio.Protocol, "api.example.com", 443, ssl=ssl.create_default_context()
    )
    try:
        assert transport.get_extra_info("ssl_object").server_hostname == "api.example.com"
    finally:
        transport.close()


# -- routes and targets ---------------------------------------------------------------


async def test_host_names_match_case_insensitively_in_bytes_and_idna(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route(b"API.Example.COM.", 443, server)
    await sandbox.route("bücher.example", 443, server)
    async with httpx.AsyncClient() as client:
        for url in ("https://api.example.com/a", "https://xn--bcher-kva.example/b"):
            task = asyncio.create_task(client.get(url))
            await answer_one(server)
            assert (await task).status_code == 200


async def test_application_and_handler_targets_are_served_and_closed_by_the_sandbox() -> None:
    async def hello(request: web.BaseRequest) -> web.Response:
        return web.Response(text=f"handler {request.host} {request.secure}")

    app = web.Application()
    app.router.add_get("/", hello)
    async with NetworkSandbox() as sandbox:
        app_server = await sandbox.route("app.example.com", 443, app)
        handler_server = await sandbox.route("handler.example.com", 80, hello)
        async with aiohttp.ClientSession() as session:
            async with session.get("https://app.example.com/") as response:
                assert await response.text() == "handler app.example.com True"
            async with session.get("http://handler.example.com/") as response:
                assert await response.text() == "handler handler.example.com False"
    assert app_server.closed
    assert handler_server.closed


async def test_one_target_serves_many_routes(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    assert await sandbox.route("a.example.com", 443, server) is server
    assert await sandbox.route("b.example.com", 443, server) is server
    async with aiohttp.ClientSession() as session:
        for host in ("a.example.com", "b.example.com"):
            task = asyncio.create_task(session.get(f"https://{host}/"))
            request = await answer_one(server)
            assert request.host == host
            (await task).release()


async def test_address_target_with_tls_true_ends_tls_in_front_of_a_plain_server(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    assert server.port is not None
    await sandbox.route("relay.example.com", 443, ("127.0.0.1", server.port), tls=True)
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(client.get("https://relay.example.com/relayed"))
        request = await answer_one(server, "relayed")
        assert (await task).text == "relayed"
    assert request.host == "relay.example.com"
    assert not request.secure  # the target itself got plain text from the relay


async def test_unix_socket_target_with_a_tls_server(
    sandbox: NetworkSandbox, tmp_path: Path
) -> None:
    async def hello(request: web.BaseRequest) -> web.Response:
        return web.Response(text=f"unix {request.host} {request.secure}")

    runner = web.ServerRunner(web.Server(hello))
    await runner.setup()
    path = str(tmp_path / "api.sock")
    site = web.UnixSite(
        runner, path, ssl_context=default_certificate_authority().sni_server_context()
    )
    await site.start()
    try:
        await sandbox.route("unix.example.com", 443, path)
        async with (
            aiohttp.ClientSession() as session,
            session.get("https://unix.example.com/") as response,
        ):
            assert await response.text() == "unix unix.example.com True"
    finally:
        await runner.cleanup()


async def test_https_server_target_gets_the_clients_tls_as_it_is(sandbox: NetworkSandbox) -> None:
    async with CaseControlledTestServer(scheme="https") as server:
        await sandbox.route("api.example.com", 443, server)
        async with httpx.AsyncClient() as client:
            task = asyncio.create_task(client.get("https://api.example.com/"))
            request = await answer_one(server)
            assert (await task).status_code == 200
        assert request.secure
        assert request.host == "api.example.com"


async def test_tls_false_serves_plain_text_even_to_a_tls_client(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server, tls=False)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get("https://api.example.com/")


async def test_tls_true_refuses_to_serve_a_plain_client(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 80, server, tls=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            await session.get("http://api.example.com/")
    assert server.pending_requests == []


async def test_route_rejects_bad_arguments(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    with pytest.raises(ValueError, match=r"api\.example\.com:443 is routed already"):
        await sandbox.route("API.example.com", 443, server)
    with pytest.raises(ValueError, match="port must be between 1 and 65535, got 0"):
        await sandbox.route("api.example.com", 0, server)
    with pytest.raises(TypeError, match="tls must be True, False or None, got 'yes'"):
        await sandbox.route("api.example.com", 444, server, tls="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"target must be an aiotestkit server.*got int"):
        await sandbox.route("api.example.com", 444, 8080)
    with pytest.raises(TypeError, match=r"must be a \(host, port\) pair, got \('127.0.0.1',\)"):
        await sandbox.route("api.example.com", 444, ("127.0.0.1",))
    async with CaseControlledTestServer(scheme="https") as https_server:
        with pytest.raises(ValueError, match="serves TLS itself"):
            await sandbox.route("api.example.com", 444, https_server, tls=False)


async def test_route_needs_an_open_sandbox(server: CaseControlledTestServer) -> None:
    sandbox = NetworkSandbox()
    with pytest.raises(RuntimeError, match=r"cannot add a route: .* is not open"):
        await sandbox.route("api.example.com", 443, server)
    async with sandbox:
        pass
    with pytest.raises(RuntimeError, match=r"cannot add a route: .* is closed"):
        await sandbox.route("api.example.com", 443, server)


# -- refusals -------------------------------------------------------------------------


async def test_unrouted_host_name_resolution_is_refused_as_gaierror(
    sandbox: NetworkSandbox,
) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(socket.gaierror) as caught:
        await loop.getaddrinfo("api.example.com", 443)
    error = caught.value
    assert isinstance(error, NameResolutionDenied)
    assert error.errno == socket.EAI_NONAME
    assert (error.host, error.port) == ("api.example.com", 443)
    assert str(error) == (
        "name resolution of api.example.com refused by the network sandbox: no test server "
        "is routed for it; route a test server for it with "
        "`await sandbox.route('api.example.com', 443, server)`"
    )
    assert sandbox.blocked == [BlockedConnection("api.example.com", 443, "resolve", str(error))]


async def test_resolution_without_a_port_shows_a_route_call_to_adapt(
    sandbox: NetworkSandbox,
) -> None:
    with pytest.raises(NameResolutionDenied) as caught:
        await asyncio.get_running_loop().getaddrinfo("db.example.com", None)
    assert str(caught.value).endswith(
        "`await sandbox.route('db.example.com', 443, server)` (with the port the client uses)"
    )


async def test_routed_host_on_another_port_is_refused_naming_the_routed_ports(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    with pytest.raises(NetworkAccessDenied) as caught:
        await asyncio.open_connection("api.example.com", 8443)
    assert not isinstance(caught.value, socket.gaierror)
    assert isinstance(caught.value, ConnectionRefusedError) or caught.value.errno == 111
    assert str(caught.value) == (
        "connection to api.example.com:8443 refused by the network sandbox: api.example.com "
        "is routed on port(s) 443 only; route a test server there with "
        "`await sandbox.route('api.example.com', 8443, server)`"
    )


async def test_loopback_port_nobody_in_the_process_listens_on_is_refused(
    sandbox: NetworkSandbox,
) -> None:
    port = free_loopback_port()
    with pytest.raises(NetworkAccessDenied) as caught:
        await asyncio.open_connection("127.0.0.1", port)
    assert str(caught.value) == (
        f"connection to 127.0.0.1:{port} refused by the network sandbox: no socket of this "
        "test process listens on that loopback port; route a test server there with "
        f"`await sandbox.route('127.0.0.1', {port}, server)`"
    )
    assert sandbox.blocked[0].stage == "connect"


async def test_loopback_connections_to_the_tests_own_servers_work_without_a_route(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/direct")))
        request = await answer_one(server)
        (await task).release()
        assert request.path == "/direct"
    async with CaseControlledTestServer() as late_server, httpx.AsyncClient() as client:
        task2 = asyncio.create_task(client.get(str(late_server.make_url("/late"))))
        await answer_one(late_server)
        assert (await task2).status_code == 200
    assert sandbox.blocked == []


async def test_aiohttp_wraps_the_refusal_and_keeps_its_message(sandbox: NetworkSandbox) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get("https://api.example.com/")
    assert "route a test server for it with `await sandbox.route('api.example.com', 443" in str(
        caught.value
    )


async def test_unrouted_host_reached_by_a_fake_address_on_an_unrouted_port_is_refused(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo("api.example.com", 80, type=socket.SOCK_STREAM)
    with socket.socket() as sock:
        sock.setblocking(False)
        with pytest.raises(NetworkAccessDenied, match=r"api\.example\.com:80 refused"):
            await loop.sock_connect(sock, infos[0][4])


# -- TLS trust and verification ---------------------------------------------------------


async def test_clients_own_context_is_trusted_for_the_connection_and_left_unchanged(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    context = ssl.create_default_context()
    before = context.get_ca_certs()
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get("https://api.example.com/", ssl=context))
        await answer_one(server)
        (await task).release()
    assert context.get_ca_certs() == before
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert sandbox.unverified == []


async def test_verification_stays_on_an_expired_certificate_is_rejected(
    sandbox: NetworkSandbox,
) -> None:
    expired = default_certificate_authority().expired_server_context("api.example.com")
    async with CaseControlledTestServer(ssl=expired) as server:
        await sandbox.route("api.example.com", 443, server)
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError, match="certificate has expired"):
                await client.get("https://api.example.com/")


async def test_verification_stays_on_an_untrusted_certificate_is_rejected(
    sandbox: NetworkSandbox,
) -> None:
    untrusted = default_certificate_authority().untrusted_server_context("api.example.com")
    async with CaseControlledTestServer(ssl=untrusted) as server:
        await sandbox.route("api.example.com", 443, server)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get("https://api.example.com/")


async def test_clients_with_verification_off_connect_and_are_recorded(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    await sandbox.route("other.example.com", 443, server)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get("https://api.example.com/", ssl=False))
        await answer_one(server)
        (await task).release()
    no_hostname_check = ssl.create_default_context()
    no_hostname_check.check_hostname = False
    async with httpx.AsyncClient(verify=no_hostname_check) as client:
        task2 = asyncio.create_task(client.get("https://other.example.com/"))
        await answer_one(server)
        assert (await task2).status_code == 200
    assert sandbox.unverified == [
        UnverifiedTLSConnection("api.example.com", ssl.CERT_NONE, False),
        UnverifiedTLSConnection("other.example.com", ssl.CERT_REQUIRED, False),
    ]
    with pytest.raises(AssertionError) as caught:
        sandbox.assert_tls_verified()
    assert str(caught.value) == (
        "2 TLS connection(s) did not verify the server's certificate:\n"
        "  - api.example.com: verify_mode=CERT_NONE, check_hostname=False\n"
        "  - other.example.com: verify_mode=CERT_REQUIRED, check_hostname=False\n"
        "A client that skips verification accepts any server; keep "
        "verify_mode=CERT_REQUIRED and check_hostname=True."
    )


async def test_assert_tls_verified_passes_for_verifying_clients(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(client.get("https://api.example.com/"))
        await answer_one(server)
        await task
    sandbox.assert_tls_verified()


# -- expectations, life cycle ---------------------------------------------------------


async def test_assert_nothing_blocked_lists_unexpected_attempts_only(
    sandbox: NetworkSandbox,
) -> None:
    loop = asyncio.get_running_loop()
    for host in ("telemetry.example.com", "api.example.com"):
        with pytest.raises(NameResolutionDenied):
            await loop.getaddrinfo(host, 443)
    sandbox.expect_blocked("Telemetry.Example.com")
    with pytest.raises(AssertionError) as caught:
        sandbox.assert_nothing_blocked()
    assert str(caught.value) == (
        "the network sandbox refused 1 attempt(s) to reach the network:\n"
        f"  - {sandbox.blocked[1].message}\n"
        "Route each host the code needs, or declare the refusals expected with "
        "sandbox.expect_blocked(host, port), or let them pass with allow_blocked=True "
        "(the sandbox's argument, fixture marker or class attribute)."
    )
    sandbox.expect_blocked("api.example.com", 443)
    sandbox.assert_nothing_blocked()


async def test_expect_blocked_with_a_port_matches_that_port_only(
    sandbox: NetworkSandbox,
) -> None:
    with pytest.raises(NameResolutionDenied):
        await asyncio.get_running_loop().getaddrinfo("api.example.com", 80)
    sandbox.expect_blocked("api.example.com", 443)
    with pytest.raises(AssertionError, match="refused 1 attempt"):
        sandbox.assert_nothing_blocked()


async def test_two_sandboxes_at_once_are_an_error(sandbox: NetworkSandbox) -> None:
    second = NetworkSandbox()
    with pytest.raises(NetworkSandboxActive) as caught:
        await second.open()
    assert str(caught.value) == (
        "cannot open a network sandbox while <NetworkSandbox open, 0 route(s)> is open: two "
        "sandboxes would mix their routes. Close the first one, or use its route() "
        "(the network_sandbox fixture yields the one open for the test)"
    )
    assert isinstance(caught.value, RuntimeError)


async def test_a_sandbox_cannot_be_opened_twice() -> None:
    sandbox = NetworkSandbox()
    async with sandbox:
        pass
    with pytest.raises(RuntimeError, match="cannot be opened twice"):
        await sandbox.open()


async def test_close_restores_everything_it_patched_and_closes_owned_servers() -> None:
    loop = asyncio.get_running_loop()
    before = (
        dict(vars(loop)),
        {
            name: getattr(loop, name)
            for name in ("getaddrinfo", "create_connection", "sock_connect")
        },
        ssl.SSLContext.__dict__["wrap_bio"],
        AsyncResolver.__dict__["resolve"],
    )
    handler_server = None

    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response()

    async def fail_inside_a_sandbox() -> None:
        nonlocal handler_server
        async with NetworkSandbox() as sandbox:
            assert loop.getaddrinfo.__func__ is not asyncio.BaseEventLoop.getaddrinfo
            handler_server = await sandbox.route("api.example.com", 443, handler)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside_a_sandbox()
    after = (
        dict(vars(loop)),
        {
            name: getattr(loop, name)
            for name in ("getaddrinfo", "create_connection", "sock_connect")
        },
        ssl.SSLContext.__dict__["wrap_bio"],
        AsyncResolver.__dict__["resolve"],
    )
    assert after == before
    assert handler_server is not None
    assert handler_server.closed
    # the next sandbox opens fine, and nothing is routed any more
    with pytest.raises(NameResolutionDenied):
        async with NetworkSandbox(allow_blocked=True):
            await loop.getaddrinfo("api.example.com", 443)


async def test_close_restores_instance_attributes_that_were_there_before() -> None:
    loop = asyncio.get_running_loop()
    sentinel_sock_connect = loop.sock_connect
    loop.sock_connect = sentinel_sock_connect  # type: ignore[method-assign]
    try:
        async with NetworkSandbox():
            assert vars(loop)["sock_connect"] is not sentinel_sock_connect
        assert vars(loop)["sock_connect"] is sentinel_sock_connect
    finally:
        del loop.sock_connect


async def test_a_mock_patched_in_a_sandbox_takes_over_and_the_sandbox_comes_back() -> None:
    loop = asyncio.get_running_loop()
    async with NetworkSandbox(allow_blocked=True):
        with mock.patch.object(loop, "getaddrinfo", mock.AsyncMock(return_value=[])) as lookup:
            assert await loop.getaddrinfo("api.example.com", 443) == []
        lookup.assert_awaited_once_with("api.example.com", 443)
        with pytest.raises(NameResolutionDenied):
            await loop.getaddrinfo("api.example.com", 443)
    assert loop.getaddrinfo.__func__ is asyncio.BaseEventLoop.getaddrinfo


async def test_the_sandbox_patches_the_running_loop_alone() -> None:
    loop = asyncio.get_running_loop()
    other = asyncio.new_event_loop()
    own = {
        name: getattr(other, name) for name in ("getaddrinfo", "create_connection", "sock_connect")
    }
    try:
        assert type(other) is type(loop)
        async with NetworkSandbox():
            assert loop.getaddrinfo.__func__ is not asyncio.BaseEventLoop.getaddrinfo
            assert {name: getattr(other, name) for name in own} == own
    finally:
        other.close()


async def test_patching_does_not_scale_with_routes(server: CaseControlledTestServer) -> None:
    async with NetworkSandbox() as sandbox:
        for index in range(50):
            await sandbox.route(f"host{index}.example.com", 443, server)
        assert len(sandbox._patches._undo) == 10  # the loop (one), aiohttp, socket and ssl


async def test_address_target_relays_server_first_protocols_and_closes_with_the_sandbox() -> None:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 smtp.example.com ready\r\n")
        line = await reader.readline()
        writer.write(b"250 " + line)
        await reader.read()  # until the relay closes
        writer.close()

    smtp = await asyncio.start_server(greet, "127.0.0.1", 0)
    port = smtp.sockets[0].getsockname()[1]
    try:
        async with NetworkSandbox() as sandbox:
            await sandbox.route("smtp.example.com", 25, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection("smtp.example.com", 25)
            assert await reader.readline() == b"220 smtp.example.com ready\r\n"
            writer.write(b"HELO client\r\n")
            assert await reader.readline() == b"250 HELO client\r\n"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed with the sandbox
        writer.close()
    finally:
        smtp.close()
        await smtp.wait_closed()


async def test_connection_by_an_unrouted_name_is_refused_before_any_lookup(
    sandbox: NetworkSandbox,
) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(NetworkAccessDenied) as caught:
        await loop.create_connection(asyncio.Protocol, "Cdn.Example.org", 8080)
    assert str(caught.value) == (
        "connection to cdn.example.org:8080 refused by the network sandbox: no test server "
        "is routed there; route a test server there with "
        "`await sandbox.route('cdn.example.org', 8080, server)`"
    )
    assert sandbox.blocked == [
        BlockedConnection("cdn.example.org", 8080, "connect", str(caught.value))
    ]


async def test_name_resolution_denied_survives_pickling() -> None:
    import pickle

    error = NameResolutionDenied("refused", host="api.example.com", port=443)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NameResolutionDenied
    assert (copy.errno, str(copy), copy.host, copy.port) == (
        socket.EAI_NONAME,
        "refused",
        "api.example.com",
        443,
    )


async def test_one_application_routed_with_different_tls_modes_gets_one_server(
    sandbox: NetworkSandbox,
) -> None:
    async def hello(request: web.BaseRequest) -> web.Response:
        return web.Response(text=str(request.secure))

    first = await sandbox.route("a.example.com", 443, hello, tls=True)
    second = await sandbox.route("a.example.com", 80, hello, tls=False)
    assert first is second
    async with aiohttp.ClientSession() as session:
        async with session.get("https://a.example.com/") as response:
            assert await response.text() == "True"
        async with session.get("http://a.example.com/") as response:
            assert await response.text() == "False"


async def test_a_host_keeps_its_address_so_a_cached_one_never_reaches_another_host(
    server: CaseControlledTestServer,
) -> None:
    loop = asyncio.get_running_loop()
    async with NetworkSandbox() as first:
        await first.route("cached.example.com", 443, server)
        cached = (await loop.getaddrinfo("cached.example.com", 443))[0][4]
    async with NetworkSandbox() as second:
        await second.route("other.example.com", 443, server)
        await second.route("cached.example.com", 80, server)
        second.expect_blocked("cached.example.com", 443)
        assert (await loop.getaddrinfo("cached.example.com", 443))[0][4] == cached
        # an address cached from the first sandbox still means cached.example.com:443
        with pytest.raises(NetworkAccessDenied, match=r"cached\.example\.com:443 refused"):
            await loop.create_connection(asyncio.Protocol, *cached)


async def test_sock_connect_by_host_name_reaches_the_routed_server(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 80, server)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("API.example.com", 80))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /named HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
    request = await answer_one(server, "by name")
    assert (await reader.read()).endswith(b"by name")
    writer.close()
    await writer.wait_closed()
    assert request.path == "/named"


async def test_refusals_go_into_the_hygiene_report_when_the_sandbox_closes() -> None:
    async with (
        LoopInstrumentation(name="refusals") as instrumentation,
        NetworkSandbox() as sandbox,
    ):
        sandbox.expect_blocked("expected.example.com")
        for host in ("expected.example.com", "unexpected.example.com"):
            with pytest.raises(NameResolutionDenied):
                await asyncio.get_running_loop().getaddrinfo(host, 443)
    messages = [issue.message for issue in instrumentation.report.issues]
    assert [issue.check for issue in instrumentation.report.issues] == ["refused_connections"]
    assert "name resolution of unexpected.example.com refused" in messages[0]
    with pytest.raises(HygieneError, match=r"unexpected\.example\.com"):
        instrumentation.check()
