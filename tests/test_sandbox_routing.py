"""Routes of the network sandbox: closed targets, relay targets, every aiotestkit server,
fail-fast waits, the client's own TLS and IPv6; real sockets and real TLS handshakes."""

from __future__ import annotations

import asyncio
import socket
import ssl

import aiohttp
import aiosmtplib
import httpx
import pytest

from aiotestkit import (
    AiohttpRedirector,
    BlockedWhileWaiting,
    CaseControlledStreamServer,
    CaseControlledTestServer,
    CaseControlledWebSocketServer,
    NetworkAccessDenied,
    NetworkSandbox,
    ReceiveTimeout,
    VirtualClock,
    default_certificate_authority,
)

pytestmark = pytest.mark.asyncio

CA = default_certificate_authority()


# -- 1. a closed target is a host that is down -----------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_closed_target_is_refused_at_once_naming_host_port_and_the_cause(
    sandbox: NetworkSandbox, scheme: str
) -> None:
    server = CaseControlledTestServer(scheme=scheme)
    await server.start_server()
    port = 443 if scheme == "https" else 80
    await sandbox.route("api.example.com", port, server)
    described = repr(server)
    await server.close()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as caught:
            await session.get(f"{scheme}://api.example.com/v1")
    message = str(caught.value)
    assert f"connection to api.example.com:{port} refused by the network sandbox" in message
    assert f"the route's target {described} has closed, so the host is down" in message
    assert f"`await sandbox.route('api.example.com', {port}, server)`" in message
    assert "[None]" not in message
    assert caught.value.os_error.errno == 111  # ECONNREFUSED, as from a host that is down
    # A dual-stack client gets one address for the routed name: one attempt, one refusal.
    assert [(a.host, a.port, a.stage, a.message) for a in sandbox.blocked] == [
        ("api.example.com", port, "connect", caught.value.os_error.strerror)
    ]


async def test_a_plain_connection_served_after_its_target_closed_is_dropped(
    sandbox: NetworkSandbox,
) -> None:
    # Connected while the server was up; its first byte, which decides TLS or plain,
    # comes after the server closed: the gateway drops it, as a server going down.
    server = CaseControlledTestServer()
    await server.start_server()
    await sandbox.route("api.example.com", 80, server)
    reader, writer = await asyncio.open_connection("api.example.com", 80)
    await server.close()
    writer.write(b"GET /late HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
    # Closed with the request unread (the gateway only peeked at it): a reset.
    with pytest.raises(ConnectionResetError):
        await reader.read()
    writer.close()
    assert server.requests == []


async def test_plain_connections_reach_the_server_one_after_another_and_together(
    sandbox: NetworkSandbox,
) -> None:
    # Plain clients are handed to the HTTP server's own protocol: keep-alive requests on
    # one connection and concurrent connections are all served, each in its order.
    async with CaseControlledTestServer() as server:
        await sandbox.route("api.example.com", 80, server)
        async with aiohttp.ClientSession() as session:

            async def fetch(path: str) -> str:
                async with session.get(f"http://api.example.com{path}") as response:
                    return await response.text()

            for number in range(3):  # one keep-alive connection, reused
                task = asyncio.create_task(fetch(f"/seq/{number}"))
                request = await server.receive_request()
                assert (request.path, request.host) == (f"/seq/{number}", "api.example.com")
                server.send_response(request, text=f"seq {number}")
                assert await task == f"seq {number}"
            tasks = [asyncio.create_task(fetch(f"/par/{number}")) for number in range(3)]
            requests = [await server.receive_request() for _ in tasks]
            assert sorted(r.path for r in requests) == ["/par/0", "/par/1", "/par/2"]
            for request in requests:
                server.send_response(request, text=request.path)
            assert await asyncio.gather(*tasks) == ["/par/0", "/par/1", "/par/2"]
    assert sandbox.blocked == []


async def test_a_closed_stream_server_refuses_raw_clients(sandbox: NetworkSandbox) -> None:
    server = CaseControlledStreamServer()
    await server.start_server()
    await sandbox.route("redis.example.com", 6379, server)
    await server.close()
    with pytest.raises(NetworkAccessDenied, match=r"redis\.example\.com:6379 .* has closed"):
        await asyncio.open_connection("redis.example.com", 6379)


async def test_an_sdk_that_retries_fails_fast_when_its_server_is_gone(
    sandbox: NetworkSandbox,
) -> None:
    server = CaseControlledTestServer()
    await server.start_server()
    await sandbox.route("api.example.com", 80, server)
    attempts = 0
    async with aiohttp.ClientSession() as session:

        async def fetch_with_retries() -> str:
            nonlocal attempts
            for _ in range(3):
                attempts += 1
                try:
                    async with session.get("http://api.example.com/") as response:
                        return await response.text()
                except aiohttp.ClientConnectionError:
                    continue
            raise RuntimeError("gave up after 3 attempts")

        task = asyncio.create_task(fetch_with_retries())
        request = await server.receive_request()
        server.abort(request)
        await server.close()
        with pytest.raises(RuntimeError, match="gave up after 3 attempts"):
            await task
    assert attempts == 3
    assert {(a.host, a.port) for a in sandbox.blocked} == {("api.example.com", 80)}


# -- 2. relay targets are local only ---------------------------------------------------


@pytest.mark.parametrize(
    "address", [("10.0.0.1", 80), ("8.8.8.8", 53), ("example.com", 443), ("2001:db8::1", 80)]
)
async def test_a_relay_target_off_loopback_is_refused_at_route(
    sandbox: NetworkSandbox, address: tuple[str, int]
) -> None:
    with pytest.raises(ValueError, match="is not on this machine's loopback") as caught:
        await sandbox.route("api.example.com", 443, address)
    assert str(caught.value).startswith(
        f"relay target ({address[0]!r}, {address[1]}) is not on this machine's loopback: "
        "the network sandbox relays only to loopback addresses (127.0.0.0/8, ::1)"
    )
    assert sandbox.routes.get("api.example.com", 443) is None


async def test_loopback_relay_targets_ipv4_ipv6_and_localhost_work(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledStreamServer(host="::1") as server:
        await sandbox.route("a.example.com", 7000, ("::1", server.port))
        await sandbox.route("b.example.com", 7000, server)
        for host in ("a.example.com", "b.example.com"):
            reader, writer = await asyncio.open_connection(host, 7000)
            connection = await server.receive_connection()
            writer.write(b"hello\n")
            assert await connection.receive_line() == b"hello\n"
            await connection.send(b"bye\n")
            assert await reader.readline() == b"bye\n"
            writer.close()
            await connection.close()


# -- 3. every aiotestkit server is a target ----------------------------------------------


async def test_a_line_protocol_client_reaches_a_routed_stream_server_by_host_name(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledStreamServer() as server:
        returned = await sandbox.route("lines.example.com", 7000, server)
        assert returned is server
        reader, writer = await asyncio.open_connection("lines.example.com", 7000)
        connection = await server.receive_connection()
        writer.write(b"GET key\n")
        assert await connection.receive_line() == b"GET key\n"
        await connection.send(b"VALUE 42\n")
        assert await reader.readline() == b"VALUE 42\n"
        writer.close()
        assert await connection.receive() == b""
        await connection.close()
    assert sandbox.hints == []


async def test_a_unix_stream_server_is_a_target(sandbox: NetworkSandbox) -> None:
    async with CaseControlledStreamServer(transport="unix") as server:
        await sandbox.route("queue.example.com", 5672, server)
        reader, writer = await asyncio.open_connection("queue.example.com", 5672)
        connection = await server.receive_connection()
        await connection.send(b"AMQP?\n")
        assert await reader.readline() == b"AMQP?\n"
        writer.close()
        await connection.close()


async def test_an_smtps_client_over_implicit_tls_reaches_a_plain_stream_server(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledStreamServer() as server:
        await sandbox.route("smtp.example.com", 465, server, tls=True)
        # local_hostname: aiosmtplib's default, socket.getfqdn(), asks the system resolver
        # about this machine's own name (the DNS, wherever /etc/hosts does not list it).
        client = aiosmtplib.SMTP(
            hostname="smtp.example.com",
            port=465,
            use_tls=True,
            timeout=30,
            local_hostname="client.example.com",
        )

        async def session() -> tuple[int, int]:
            await client.connect()
            noop = await client.noop()
            quit_ = await client.quit()
            return noop.code, quit_.code

        task = asyncio.create_task(session())
        connection = await server.receive_connection()
        assert not connection.tls  # the sandbox ended TLS in front of the plain server
        await connection.send(b"220 smtp.example.com ESMTP ready\r\n")
        assert await connection.receive_line() == b"EHLO client.example.com\r\n"
        await connection.send(b"250 smtp.example.com\r\n")
        assert await connection.receive_line() == b"NOOP\r\n"
        await connection.send(b"250 OK\r\n")
        assert await connection.receive_line() == b"QUIT\r\n"
        await connection.send(b"221 Bye\r\n")
        assert await task == (250, 221)
        await connection.close()
    assert sandbox.unverified == []  # aiosmtplib verified the certificate for smtp.example.com


async def test_a_websocket_server_is_a_target_of_the_sandbox_and_the_redirector(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledWebSocketServer() as server:
        await sandbox.route("stream.example.com", 443, server)
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(session.ws_connect("wss://stream.example.com/feed"))
            connection = await server.receive_connection()
            await connection.accept()
            websocket = await task
            await connection.send_str("tick")
            assert await websocket.receive_str() == "tick"
            await websocket.close()
        async with AiohttpRedirector() as redirector:
            redirector.add_server("stream.example.org", 80, server)
            task = asyncio.create_task(
                redirector.session.ws_connect("ws://stream.example.org/feed")
            )
            connection = await server.receive_connection()
            await connection.accept()
            websocket = await task
            await websocket.send_str("hello")
            assert await connection.receive_str() == "hello"
            await websocket.close()


# -- 4. fail fast, say why ------------------------------------------------------------


async def test_a_forgotten_route_ends_receive_request_at_once() -> None:
    async with NetworkSandbox() as sandbox, CaseControlledTestServer() as server:
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(session.get("https://api.example.com/v1/time"))
            with pytest.raises(BlockedWhileWaiting) as caught:
                await server.receive_request(timeout=60)
            with pytest.raises(aiohttp.ClientConnectorError):
                await task
        sandbox.expect_blocked("api.example.com")  # seen; keep the report clean
    assert str(caught.value) == (
        "the wait for a test server's client (at most 60 s) ended at once: name resolution "
        "of api.example.com refused by the network sandbox: no test server is routed for it; "
        "route a test server for it with `await sandbox.route('api.example.com', 443, server)`. "
        "The client the test waits for most likely got this refusal instead of reaching the "
        "server"
    )
    assert isinstance(caught.value, ConnectionRefusedError)


async def test_a_forgotten_route_ends_receive_connection_at_once() -> None:
    async with NetworkSandbox() as sandbox, CaseControlledStreamServer() as server:
        await sandbox.route("redis.example.com", 6379, server)
        task = asyncio.create_task(asyncio.open_connection("redis.example.com", 6380))
        with pytest.raises(
            BlockedWhileWaiting,
            match=r"redis\.example\.com:6380 refused .* "
            r"port\(s\) 6379 only",
        ):
            await server.receive_connection(timeout=60)
        with pytest.raises(NetworkAccessDenied):
            await task
        sandbox.expect_blocked("redis.example.com", 6380)


@pytest.mark.parametrize("declared", ["expect_blocked", "allow_blocked"])
async def test_expected_refusals_do_not_end_waits(declared: str) -> None:
    async with (
        NetworkSandbox(allow_blocked=declared == "allow_blocked") as sandbox,
        CaseControlledTestServer() as server,
    ):
        if declared == "expect_blocked":
            sandbox.expect_blocked("telemetry.example.com")
        await sandbox.route("api.example.com", 443, server)
        async with aiohttp.ClientSession() as session:

            async def client() -> str:
                with pytest.raises(aiohttp.ClientConnectorError):
                    await session.get("https://telemetry.example.com/beacon")
                async with session.get("https://api.example.com/") as response:
                    return await response.text()

            task = asyncio.create_task(client())
            request = await server.receive_request(timeout=60)
            server.send_response(request, text="ok")
            assert await task == "ok"
        assert [attempt.host for attempt in sandbox.blocked] == ["telemetry.example.com"]


async def test_receive_timeouts_list_refusals_and_say_the_seconds_are_virtual() -> None:
    clock = VirtualClock()
    loop = asyncio.get_running_loop()
    async with NetworkSandbox() as sandbox, CaseControlledTestServer() as server:
        sandbox.expect_blocked("telemetry.example.com")
        with pytest.raises(NetworkAccessDenied):
            await asyncio.open_connection("telemetry.example.com", 443)
        clock.attach(loop)
        try:
            with pytest.raises(ReceiveTimeout) as caught:
                await server.receive_request(timeout=30)
        finally:
            clock.detach(loop)
        described = repr(server)
    message = str(caught.value)
    assert message.startswith(f"{described} received no request within 30 s; did the client")
    assert (
        "(30 s of virtual time: the virtual clock runs this loop and jumps ahead when every "
        "task waits, so real time may have been much shorter)" in message
    )
    assert message.endswith(
        "The network sandbox refused, so far in this test:\n"
        "  - connection to telemetry.example.com:443 refused by the network sandbox: no test "
        "server is routed there; route a test server there with "
        "`await sandbox.route('telemetry.example.com', 443, server)` (expected)"
    )


async def test_tls_sent_to_a_plain_stream_route_is_named_in_receive_timeouts(
    sandbox: NetworkSandbox, clock: VirtualClock
) -> None:
    async with CaseControlledStreamServer() as server:
        await sandbox.route("redis.example.com", 6380, server)
        task = asyncio.create_task(
            asyncio.open_connection("redis.example.com", 6380, ssl=ssl.create_default_context())
        )
        connection = await server.receive_connection()
        assert (await connection.receive())[:1] == b"\x16"  # a ClientHello, raw
        with pytest.raises(ReceiveTimeout) as caught:
            await connection.receive(timeout=5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await connection.close()
        described = repr(server)
    hint = (
        f"a client sent a TLS ClientHello to {described}, which expects plain bytes: the "
        "client speaks TLS here; route with tls=True"
    )
    assert sandbox.hints == [hint]
    assert f"The network sandbox saw:\n  - {hint}" in str(caught.value)


async def test_plain_text_sent_to_a_tls_route_is_named(
    sandbox: NetworkSandbox, clock: VirtualClock
) -> None:
    async with CaseControlledStreamServer() as server:
        await sandbox.route("redis.example.com", 6380, server, tls=True)
        reader, writer = await asyncio.open_connection("redis.example.com", 6380)
        writer.write(b"PING\r\n")
        assert await reader.read() == b""  # the handshake failed: the gateway closed it
        writer.close()
        with pytest.raises(ReceiveTimeout) as caught:
            await server.receive_connection(timeout=5)
        described = repr(server)
    hint = (
        f"a client sent plain text to a route to {described} with tls=True, which expects a "
        "TLS handshake: the client speaks plain text here; route with tls=False (or None)"
    )
    assert sandbox.hints == [hint]
    assert hint in str(caught.value)


# -- 5. the client's own TLS -----------------------------------------------------------


def client_context(*alpn: str) -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system's trust store: the sandbox swaps it
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


async def test_alpn_is_negotiated_with_the_target_an_http_server_gets_http_1_1(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledTestServer() as server:
        await sandbox.route("api.example.com", 443, server)
        reader, writer = await asyncio.open_connection(
            "api.example.com", 443, ssl=client_context("h2", "http/1.1")
        )
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        writer.write(b"GET / HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
        server.send_response(await server.receive_request(), text="raw")
        assert (await reader.read()).endswith(b"raw")
        writer.close()

        async with httpx.AsyncClient(http2=True) as client:
            task = asyncio.create_task(client.get("https://api.example.com/"))
            request = await server.receive_request()
            server.send_response(request, text="ok")
            response = await task
        assert (response.http_version, response.text) == ("HTTP/1.1", "ok")


async def test_alpn_reaches_a_tls_target_end_to_end(sandbox: NetworkSandbox) -> None:
    server_context = CA.server_context("grpc.example.com")
    server_context.set_alpn_protocols(["h2"])
    async with CaseControlledStreamServer(transport="tls", ssl=server_context) as server:
        await sandbox.route("grpc.example.com", 443, server)
        _, writer = await asyncio.open_connection(
            "grpc.example.com", 443, ssl=client_context("h2", "http/1.1")
        )
        connection = await server.receive_connection()
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        writer.close()
        await connection.close()


async def test_the_server_sees_the_client_certificate_mutual_tls(
    sandbox: NetworkSandbox,
) -> None:
    server_context = CA.sni_server_context(require_client_certificate=True)
    async with CaseControlledTestServer(ssl=server_context) as server:
        await sandbox.route("mtls.example.com", 443, server)
        context = client_context()
        CA.client_certificate("billing-service").configure_cert(context)
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(session.get("https://mtls.example.com/", ssl=context))
            request = await server.receive_request()
            peer = request.transport.get_extra_info("peercert")  # type: ignore[union-attr]
            server.send_response(request, text="hello billing-service")
            async with await task as response:
                assert await response.text() == "hello billing-service"
            assert ((("commonName", "billing-service"),)) in peer["subject"]

            with pytest.raises(aiohttp.ClientError):  # no certificate: the handshake fails
                await session.get("https://mtls.example.com/", ssl=client_context())
    assert CA.client_certificate("billing-service") is CA.client_certificate("billing-service")


async def test_stream_connections_show_the_client_certificate(sandbox: NetworkSandbox) -> None:
    server_context = CA.sni_server_context(require_client_certificate=True)
    async with CaseControlledStreamServer(transport="tls", ssl=server_context) as server:
        await sandbox.route("mq.example.com", 5671, server)
        context = client_context()
        CA.client_certificate("worker-7").configure_cert(context)
        task = asyncio.create_task(asyncio.open_connection("mq.example.com", 5671, ssl=context))
        connection = await server.receive_connection()
        _, writer = await task
        subject = connection.get_extra_info("peercert")["subject"]
        assert (("commonName", "worker-7"),) in subject
        writer.close()
        await connection.close()


# -- 9. IPv6 -------------------------------------------------------------------------


async def test_ipv6_lookups_get_fake_addresses_consistent_with_ipv4(
    sandbox: NetworkSandbox,
) -> None:
    async with CaseControlledStreamServer() as server:
        await sandbox.route("v6.example.com", 7000, server)
        loop = asyncio.get_running_loop()
        [v4] = await loop.getaddrinfo("v6.example.com", 7000, family=socket.AF_INET)
        [v6] = await loop.getaddrinfo("v6.example.com", 7000, family=socket.AF_INET6)
        assert v6[0] == socket.AF_INET6
        assert v6[4] == (f"::ffff:{v4[4][0]}", 7000, 0, 0)
        for family in (socket.AF_INET6, socket.AF_UNSPEC):
            reader, writer = await asyncio.open_connection("v6.example.com", 7000, family=family)
            connection = await server.receive_connection()
            await connection.send(b"hi\n")
            assert await reader.readline() == b"hi\n"
            writer.close()
            await connection.close()


async def test_an_ipv6_only_aiohttp_client_is_routed_over_tls(sandbox: NetworkSandbox) -> None:
    async with CaseControlledTestServer() as server:
        await sandbox.route("api.example.com", 443, server)
        connector = aiohttp.TCPConnector(family=socket.AF_INET6)
        async with aiohttp.ClientSession(connector=connector) as session:
            task = asyncio.create_task(session.get("https://api.example.com/"))
            request = await server.receive_request()
            server.send_response(request, text="over v6")
            async with await task as response:
                assert await response.text() == "over v6"
        assert request.host == "api.example.com"


# -- gateway sockets are kept for later sandboxes ------------------------------------------


async def test_a_later_sandbox_refuses_an_earlier_gateway_address_and_routes() -> None:
    async with CaseControlledTestServer() as server:
        async with NetworkSandbox() as first:
            await first.route("api.example.com", 80, server)
            [route] = first.routes.routes()
            old_host, old_port = route.address
        async with NetworkSandbox(allow_blocked=True) as second:
            with pytest.raises(NetworkAccessDenied) as caught:
                await asyncio.open_connection(old_host, old_port)
            assert "no socket of this test process listens on that loopback port" in str(
                caught.value
            )
            await second.route("api.example.com", 80, server)
            async with aiohttp.ClientSession() as session:
                task = asyncio.create_task(session.get("http://api.example.com/item"))
                request = await server.receive_request()
                assert request.path == "/item"
                server.send_json(request, {"ok": True})
                async with await task as response:
                    assert await response.json() == {"ok": True}
