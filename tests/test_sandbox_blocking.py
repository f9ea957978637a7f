"""Blocking clients in the network sandbox: worker threads, real sockets, real TLS."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

import certifi
import httpx
import pytest
import requests
import urllib3
from aiohttp import web

from aiotestkit import (
    BlockedConnection,
    BlockedWhileWaiting,
    CaseControlledStreamServer,
    CaseControlledTestServer,
    NameResolutionDenied,
    NetworkAccessDenied,
    NetworkSandbox,
    UnverifiedTLSConnection,
    VirtualClock,
)

pytestmark = pytest.mark.asyncio


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def in_thread_answered(
    server: CaseControlledTestServer, call: Callable[[], Any], text: str = "ok"
) -> tuple[web.BaseRequest, Any]:
    """Run ``call`` in a worker thread, answer the request it makes, return both."""
    task = asyncio.create_task(asyncio.to_thread(call))
    request = await server.receive_request()
    server.send_response(request, text=text)
    return request, await task


def requests_get(url: str, **kwargs: Any) -> tuple[int, str]:
    with requests.Session() as session:
        response = session.get(url, timeout=5, **kwargs)
        return response.status_code, response.text


# -- routed hosts -----------------------------------------------------------------------


async def test_requests_in_a_thread_reaches_the_routed_https_host_with_verification_on(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    request, answer = await in_thread_answered(
        server, lambda: requests_get("https://api.example.com/v1/time?tz=utc"), text="noon"
    )
    assert answer == (200, "noon")
    assert (request.method, request.path_qs, request.host) == (
        "GET",
        "/v1/time?tz=utc",
        "api.example.com",
    )
    assert request.secure
    assert request.headers["User-Agent"].startswith("python-requests/")
    assert sandbox.blocked == []
    assert sandbox.unverified == []
    sandbox.assert_tls_verified()


@pytest.mark.parametrize("status", [404, 500])
async def test_an_http_error_the_test_keeps_leaves_no_server_connection_open(
    sandbox: NetworkSandbox, status: int
) -> None:
    """raise_for_status() in the thread; the test keeps the HTTPError (pytest.raises).

    The error holds the response, whose pool holds the client's socket open after
    session.close() (urllib3 2 leaves pools to the garbage collector): the client never
    answers the server's TLS close_notify. The server still closes its side when it
    closes, so the hygiene check at teardown finds no unclosed transport.
    """

    def latest(session: requests.Session) -> Any:
        with session.get("https://rates.example.com/v2/latest", timeout=5) as response:
            response.raise_for_status()
            return response.json()

    async with CaseControlledTestServer() as server:
        await sandbox.route("rates.example.com", 443, server)
        with requests.Session() as session:
            task = asyncio.create_task(asyncio.to_thread(latest, session))
            request = await server.receive_request()
            server.send_response(request, status=status, text="no rates")
            with pytest.raises(requests.HTTPError) as caught:
                await task
    assert caught.value.response is not None
    assert caught.value.response.status_code == status
    assert request.secure


async def test_urllib3_with_certifis_bundle_trusts_the_test_authority_for_routed_hosts(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("files.example.com", 443, server)

    def fetch() -> tuple[int, bytes]:
        with urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=certifi.where()) as pool:
            response = pool.request("GET", "https://files.example.com/report.csv")
            return response.status, response.data

    request, answer = await in_thread_answered(server, fetch, text="a,b")
    assert answer == (200, b"a,b")
    assert (request.host, request.path, request.secure) == (
        "files.example.com",
        "/report.csv",
        True,
    )
    sandbox.assert_tls_verified()


async def test_a_verifying_client_still_rejects_a_host_the_sandbox_does_not_route(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    # The test authority is trusted for routed host names only: a client that connects
    # by address and checks for another name fails verification, as it should.
    await sandbox.route("api.example.com", 443, server)
    address = socket.getaddrinfo("api.example.com", 443)[0][4]

    def handshake() -> None:
        context = ssl.create_default_context()
        with socket.create_connection(address, timeout=5) as raw:
            context.wrap_socket(raw, server_hostname="other.example.com").close()

    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        await asyncio.to_thread(handshake)


async def test_httpx_sync_client_in_a_thread_reaches_routed_https_and_plain_hosts(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    await sandbox.route("api.example.com", 80, server)

    def fetch(url: str) -> str:
        with httpx.Client(timeout=5) as client:
            return client.get(url).text

    secure, answer = await in_thread_answered(server, lambda: fetch("https://api.example.com/s"))
    plain, answer2 = await in_thread_answered(server, lambda: fetch("http://api.example.com/p"))
    assert (secure.secure, secure.path, answer) == (True, "/s", "ok")
    assert (plain.secure, plain.path, answer2) == (False, "/p", "ok")


async def test_ssl_wrap_socket_presents_the_routed_hosts_certificate(
    sandbox: NetworkSandbox, case_controlled_stream_server_factory: Any
) -> None:
    stream_server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    await sandbox.route("mail.example.com", 465, stream_server.address, tls=True)

    def exchange() -> tuple[list[str], bytes]:
        context = ssl.create_default_context()
        with (
            socket.create_connection(("mail.example.com", 465), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="mail.example.com") as tls,
        ):
            tls.sendall(b"EHLO client\r\n")
            reply = tls.recv(100)
            names = [value for _, value in tls.getpeercert()["subjectAltName"]]
            return names, reply

    task = asyncio.create_task(asyncio.to_thread(exchange))
    connection = await stream_server.receive_connection()
    assert await connection.receive_line() == b"EHLO client\r\n"
    await connection.send(b"250 hello\r\n")
    assert await task == (["mail.example.com"], b"250 hello\r\n")
    assert await connection.receive() == b""
    await connection.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
async def test_a_client_with_verification_off_is_recorded_from_a_thread(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    await in_thread_answered(
        server, lambda: requests_get("https://api.example.com/", verify=False)
    )
    assert sandbox.unverified == [UnverifiedTLSConnection("api.example.com", ssl.CERT_NONE, False)]
    with pytest.raises(AssertionError, match=r"api\.example\.com: verify_mode=CERT_NONE"):
        sandbox.assert_tls_verified()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
async def test_blocking_connect_by_fake_address_reaches_the_route_over_ipv4_and_ipv6(
    family: socket.AddressFamily,
    sandbox: NetworkSandbox,
    case_controlled_stream_server_factory: Any,
) -> None:
    stream_server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    await sandbox.route("cache.example.com", 6379, stream_server.address)

    def ping() -> tuple[str, bytes]:
        info = socket.getaddrinfo("cache.example.com", 6379, family, socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            assert sock.connect_ex(info[4]) == 0
            sock.sendall(b"PING\r\n")
            return info[4][0], sock.recv(100)

    task = asyncio.create_task(asyncio.to_thread(ping))
    connection = await stream_server.receive_connection()
    assert await connection.receive_line() == b"PING\r\n"
    await connection.send(b"+PONG\r\n")
    address, reply = await task
    assert reply == b"+PONG\r\n"
    if family == socket.AF_INET:
        assert address.startswith("127.")
    else:
        assert address.startswith("::ffff:127.")
    assert (
        address
        == (
            await asyncio.get_running_loop().getaddrinfo("cache.example.com", 6379, family=family)
        )[0][4][0]
    )
    assert await connection.receive() == b""
    await connection.close()


async def test_gethostbyname_answers_the_fake_address_of_a_routed_host(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    address = await asyncio.to_thread(socket.gethostbyname, "api.example.com")
    assert address == socket.getaddrinfo("api.example.com", 443)[0][4][0]
    assert await asyncio.to_thread(socket.gethostbyname_ex, "api.example.com") == (
        "api.example.com",
        [],
        [address],
    )
    assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"


async def test_loopback_connections_to_the_tests_own_servers_work_from_a_thread(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    request, answer = await in_thread_answered(
        server, lambda: requests_get(str(server.make_url("/direct")))
    )
    assert (request.path, answer) == ("/direct", (200, "ok"))
    assert sandbox.blocked == []


async def test_another_event_loop_in_a_thread_is_routed_too(
    sandbox: NetworkSandbox, case_controlled_stream_server_factory: Any
) -> None:
    stream_server: CaseControlledStreamServer = await case_controlled_stream_server_factory()
    await sandbox.route("queue.example.com", 5672, stream_server.address)

    async def client() -> bytes:
        reader, writer = await asyncio.open_connection("queue.example.com", 5672)
        writer.write(b"AMQP\r\n")
        reply = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return reply

    task = asyncio.create_task(asyncio.to_thread(asyncio.run, client()))
    connection = await stream_server.receive_connection()
    assert await connection.receive_line() == b"AMQP\r\n"
    await connection.send(b"OK\r\n")
    assert await task == b"OK\r\n"
    assert await connection.receive() == b""
    await connection.close()


async def test_requests_in_a_thread_under_the_virtual_clock(
    clock: VirtualClock, sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    _, answer = await in_thread_answered(server, lambda: requests_get("https://api.example.com/"))
    assert answer == (200, "ok")
    assert clock.time() == 0.0


# -- refusals -----------------------------------------------------------------------------


async def test_unrouted_name_is_refused_in_a_thread_and_recorded(sandbox: NetworkSandbox) -> None:
    with pytest.raises(socket.gaierror) as caught:
        await asyncio.to_thread(socket.getaddrinfo, "telemetry.example.com", 443)
    error = caught.value
    assert isinstance(error, NameResolutionDenied)
    assert str(error) == (
        "name resolution of telemetry.example.com refused by the network sandbox: no test "
        "server is routed for it; route a test server for it with "
        "`await sandbox.route('telemetry.example.com', 443, server)`"
    )
    assert sandbox.blocked == [
        BlockedConnection("telemetry.example.com", 443, "resolve", str(error))
    ]


async def test_requests_to_an_unrouted_host_fails_with_the_sandboxs_message(
    sandbox: NetworkSandbox,
) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        await asyncio.to_thread(requests_get, "https://telemetry.example.com/v1/events")
    assert "name resolution of telemetry.example.com refused by the network sandbox" in str(
        caught.value
    )
    assert [(b.host, b.port, b.stage) for b in sandbox.blocked] == [
        ("telemetry.example.com", 443, "resolve")
    ]


async def test_create_connection_to_a_routed_host_on_another_port_is_refused(
    sandbox: NetworkSandbox, server: CaseControlledTestServer
) -> None:
    await sandbox.route("api.example.com", 443, server)
    with pytest.raises(NetworkAccessDenied) as caught:
        await asyncio.to_thread(socket.create_connection, ("api.example.com", 8443), 5)
    assert caught.value.errno == errno.ECONNREFUSED
    assert str(caught.value) == (
        "connection to api.example.com:8443 refused by the network sandbox: api.example.com "
        "is routed on port(s) 443 only; route a test server there with "
        "`await sandbox.route('api.example.com', 8443, server)`"
    )
    assert sandbox.blocked[-1].stage == "connect"


async def test_connect_and_connect_ex_refuse_a_loopback_port_nobody_listens_on(
    sandbox: NetworkSandbox,
) -> None:
    port = free_loopback_port()

    def attempt() -> tuple[int, str]:
        with socket.socket() as sock:
            code = sock.connect_ex(("127.0.0.1", port))
        with socket.socket() as sock:
            try:
                sock.connect(("127.0.0.1", port))
            except NetworkAccessDenied as error:
                return code, str(error)
        raise AssertionError("connect() was not refused")

    code, message = await asyncio.to_thread(attempt)
    assert code == errno.ECONNREFUSED
    assert message == (
        f"connection to 127.0.0.1:{port} refused by the network sandbox: no socket of this "
        "test process listens on that loopback port; route a test server there with "
        f"`await sandbox.route('127.0.0.1', {port}, server)`"
    )
    assert [(b.host, b.port, b.stage) for b in sandbox.blocked] == [
        ("127.0.0.1", port, "connect"),
        ("127.0.0.1", port, "connect"),
    ]


async def test_refusals_from_many_threads_at_once_are_all_recorded(
    sandbox: NetworkSandbox,
) -> None:
    threads, attempts = 4, 50  # fewer threads than the default executor has
    start = threading.Barrier(threads)

    def refused(index: int) -> int:
        start.wait(timeout=5)
        count = 0
        for attempt in range(attempts):
            try:
                socket.getaddrinfo(f"host{index}.example.com", 1000 + attempt)
            except NameResolutionDenied:
                count += 1
        return count

    counts = await asyncio.gather(*(asyncio.to_thread(refused, i) for i in range(threads)))
    assert counts == [attempts] * threads
    recorded = {(b.host, b.port) for b in sandbox.blocked}
    assert len(sandbox.blocked) == len(recorded) == threads * attempts


async def test_refusals_in_threads_reach_the_sandboxs_report() -> None:
    async with NetworkSandbox() as sandbox:
        with pytest.raises(NameResolutionDenied):
            await asyncio.to_thread(socket.getaddrinfo, "telemetry.example.com", 443)
        with pytest.raises(AssertionError) as caught:
            sandbox.assert_nothing_blocked()
        assert "  - name resolution of telemetry.example.com refused" in str(caught.value)
        sandbox.expect_blocked("telemetry.example.com")
        sandbox.assert_nothing_blocked()


# -- restoration ----------------------------------------------------------------------------


def blocking_entry_points() -> dict[str, object]:
    return {
        "getaddrinfo": socket.getaddrinfo,
        "gethostbyname": socket.gethostbyname,
        "gethostbyname_ex": socket.gethostbyname_ex,
        "connect": vars(socket.socket).get("connect"),
        "connect_ex": vars(socket.socket).get("connect_ex"),
        "wrap_socket": vars(ssl.SSLContext)["wrap_socket"],
    }


async def test_blocking_entry_points_are_restored_when_the_test_fails_inside() -> None:
    before = blocking_entry_points()

    async def fail_inside_a_sandbox() -> None:
        async with NetworkSandbox():
            assert blocking_entry_points() != before
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside_a_sandbox()
    assert blocking_entry_points() == before


async def test_blocking_entry_points_are_restored_when_the_test_is_cancelled() -> None:
    before = blocking_entry_points()
    inside = asyncio.Event()

    async def sandboxed() -> None:
        async with NetworkSandbox():
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(sandboxed())
    await inside.wait()
    assert socket.getaddrinfo is not before["getaddrinfo"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blocking_entry_points() == before


async def test_wrap_socket_keeps_the_clients_alpn_protocols(sandbox: NetworkSandbox) -> None:
    # A TLS server of the test's own (the route passes its TLS through) that offers
    # HTTP/1.1 only: the client's list is negotiated with it honestly.
    server_context = sandbox.certificate_authority.server_context("api.example.com")
    server_context.set_alpn_protocols(["http/1.1"])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\n")
        await writer.drain()
        writer.close()

    tls_server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    async with tls_server:
        await sandbox.route("api.example.com", 443, tls_server.sockets[0].getsockname())

        def negotiate(connect_first: bool) -> tuple[str | None, bytes]:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["h2", "http/1.1"])
            if connect_first:
                raw = socket.create_connection(("api.example.com", 443), timeout=5)
                tls = context.wrap_socket(raw, server_hostname="api.example.com")
            else:
                tls = context.wrap_socket(socket.socket(), server_hostname="api.example.com")
                tls.settimeout(5)
                tls.connect(("api.example.com", 443))
            with tls:
                return tls.selected_alpn_protocol(), tls.recv(100)

        assert await asyncio.to_thread(negotiate, True) == ("http/1.1", b"hello\n")
        # a socket wrapped before it connects gets the test authority's context as it is
        assert await asyncio.to_thread(negotiate, False) == (None, b"hello\n")
    sandbox.assert_tls_verified()


async def test_a_refusal_in_a_thread_ends_the_tests_wait_at_once(
    server: CaseControlledTestServer,
) -> None:
    async with NetworkSandbox() as sandbox:
        task = asyncio.create_task(
            asyncio.to_thread(requests_get, "https://api.example.com/forgot-the-route")
        )
        with pytest.raises(BlockedWhileWaiting) as caught:
            await server.receive_request(timeout=30)
        assert "name resolution of api.example.com refused by the network sandbox" in str(
            caught.value
        )
        assert "`await sandbox.route('api.example.com', 443, server)`" in str(caught.value)
        with pytest.raises(requests.ConnectionError):
            await task
        sandbox.expect_blocked("api.example.com")
