"""The case-controlled stream server over real TCP, TLS and Unix sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from aiotestkit import (
    CaseControlledStreamServer,
    ClientClosedConnection,
    ReceiveTimeout,
    SendTimeout,
    UnfinishedConnectionsWarning,
    default_certificate_authority,
)
from aiotestkit._core import TRANSPORT_NAMES

pytestmark = pytest.mark.asyncio

# STARTTLS needs StreamWriter.start_tls, new in Python 3.11, on both sides.
needs_start_tls = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="StreamWriter.start_tls is new in Python 3.11"
)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
OpenClient = Callable[..., Awaitable[Streams]]


def exists(path: str) -> bool:
    return os.path.exists(path)


@pytest_asyncio.fixture
async def open_client() -> AsyncIterator[OpenClient]:
    """Connect test clients to a server; close them after the test."""
    writers: list[asyncio.StreamWriter] = []

    async def connect(server: CaseControlledStreamServer, **kwargs: object) -> Streams:
        if server.transport == "unix":
            assert server.path is not None
            reader, writer = await asyncio.open_unix_connection(server.path)
        else:
            if server.transport == "tls":
                kwargs.setdefault("ssl", default_certificate_authority().client_context())
            reader, writer = await asyncio.open_connection(server.host, server.port, **kwargs)
        writers.append(writer)
        return reader, writer

    yield connect
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


@pytest.fixture(params=TRANSPORT_NAMES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_line_protocol_round_trip(kind: str, open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport=kind) as server:
        reader, writer = await open_client(server)
        connection = await server.receive_connection()
        assert connection.tls == (kind == "tls")
        writer.write(b"PING\r\n")
        assert await connection.receive_line() == b"PING\r\n"
        await connection.send(b"+PONG\r\n")
        assert await reader.readline() == b"+PONG\r\n"
        await connection.close()
        assert await reader.read() == b""
        assert connection.finished


async def test_receive_methods_share_one_buffer(kind: str, open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport=kind) as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"\x00\x05hello" + b"KEY value\r\n" + b"a;b;tail")
        assert await connection.receive_exactly(2) == b"\x00\x05"
        assert await connection.receive_exactly(5) == b"hello"
        assert await connection.receive_until(b" ") == b"KEY "
        assert await connection.receive_line() == b"value\r\n"
        assert await connection.receive_line(separator=b";") == b"a;"
        assert await connection.receive(2) == b"b;"
        assert await connection.receive_exactly(0) == b""
        assert await connection.receive() == b"tail"
        writer.close()
        assert await connection.receive() == b""
        assert connection.finished


async def test_receive_until_finds_a_separator_split_across_reads(
    open_client: OpenClient,
) -> None:
    async with CaseControlledStreamServer() as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"header\r")
        await writer.drain()
        receiving = asyncio.create_task(connection.receive_until(b"\r\n\r\n"))
        await asyncio.sleep(0.01)
        writer.write(b"\n\r")
        await writer.drain()
        await asyncio.sleep(0.01)
        assert not receiving.done()
        writer.write(b"\nbody")
        assert await receiving == b"header\r\n\r\n"
        assert connection.buffered == b"" or connection.buffered == b"body"
        await connection.close()


async def test_receive_connection_timeout_says_where_clients_should_connect(kind: str) -> None:
    async with CaseControlledStreamServer(transport=kind) as server:
        with pytest.raises(ReceiveTimeout) as excinfo:
            await server.receive_connection(timeout=0.01)
    message = str(excinfo.value)
    assert f"{server.describe_address()}> received no connection within 0.01 s; " in message
    assert "0 connection(s) received before;" in message
    if kind == "unix":
        assert f"did the client connect to unix:{server.path}?" in message
    else:
        assert f"did the client connect to {kind}://127.0.0.1:{server.port}?" in message


async def test_receive_timeout_shows_the_bytes_received_so_far(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"EHLO client.exa")
        with pytest.raises(ReceiveTimeout) as excinfo:
            await connection.receive_line(timeout=0.05)
        assert str(excinfo.value) == (
            f"{connection!r} waited 0.05 s for receive_until(b'\\n'): data ending with "
            "b'\\n'; received and not returned yet: b'EHLO client.exa' (15 bytes); returned "
            "by earlier receive calls: 0 bytes. Did the client send it? Raise the timeout "
            "if it is slow."
        )
        with pytest.raises(ReceiveTimeout, match=r"waited 0\.02 s for receive_exactly\(20\)"):
            await connection.receive_exactly(20, timeout=0.02)
        assert await connection.receive_exactly(5) == b"EHLO "
        with pytest.raises(ReceiveTimeout) as excinfo:
            await connection.receive_until(b"\r\n", timeout=0.02)
        assert "received and not returned yet: b'client.exa' (10 bytes)" in str(excinfo.value)
        assert "returned by earlier receive calls: 5 bytes" in str(excinfo.value)
        assert await connection.receive(100) == b"client.exa"
        with pytest.raises(ReceiveTimeout, match=r"waited 0\.02 s for receive\(100\): any data"):
            await connection.receive(100, timeout=0.02)
        await connection.close()


async def test_long_data_is_shortened_in_messages(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"a" * 1000 + b"z")
        with pytest.raises(ReceiveTimeout) as excinfo:
            await connection.receive_exactly(2000, timeout=0.05)
        assert "…" in str(excinfo.value)
        assert "(1001 bytes)" in str(excinfo.value)
        await connection.close()


async def test_client_closing_early_raises_with_what_it_sent(
    kind: str, open_client: OpenClient
) -> None:
    async with CaseControlledStreamServer(transport=kind) as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"\x00\x10partial")
        await writer.drain()
        writer.close()
        with pytest.raises(ClientClosedConnection) as excinfo:
            await connection.receive_exactly(18)
        assert str(excinfo.value) == (
            f"the client closed {connection!r} while the test waited for receive_exactly(18): "
            "18 bytes; received and not returned yet: b'\\x00\\x10partial' (9 bytes); "
            "returned by earlier receive calls: 0 bytes"
        )
        with pytest.raises(ClientClosedConnection, match=r"receive_until\(b'\\n'\)"):
            await connection.receive_line()
        assert await connection.receive(100) == b"\x00\x10partial"
        assert await connection.receive() == b""


async def test_abort_resets_a_tcp_client(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        reader, _ = await open_client(server)
        connection = await server.receive_connection()
        connection.abort()
        with pytest.raises(ConnectionResetError):
            await reader.read()
        with pytest.raises(RuntimeError, match="cannot receive: the test closed"):
            await connection.receive()
        with pytest.raises(RuntimeError, match="cannot send b'x' \\(1 bytes\\): the test closed"):
            await connection.send(b"x")
        connection.abort()  # again: nothing
        await connection.close()  # after abort: nothing


async def test_abort_over_a_unix_socket_ends_the_stream(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport="unix") as server:
        reader, _ = await open_client(server)
        connection = await server.receive_connection()
        connection.abort()
        assert await reader.read() == b""


async def test_send_eof_half_closes(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        reader, writer = await open_client(server)
        connection = await server.receive_connection()
        await connection.send(b"bye")
        await connection.send_eof()
        assert await reader.read() == b"bye"
        writer.write(b"still here")
        assert await connection.receive_exactly(10) == b"still here"
        await connection.close()


async def test_send_eof_is_refused_over_tls(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport="tls") as server:
        await open_client(server)
        connection = await server.receive_connection()
        with pytest.raises(RuntimeError, match="TLS connections cannot send EOF"):
            await connection.send_eof()
        await connection.close()


async def test_send_times_out_when_the_client_does_not_read(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        await open_client(server)
        connection = await server.receive_connection()
        with pytest.raises(SendTimeout) as excinfo:
            await connection.send(b"x" * 64_000_000, timeout=0.05)
        assert "could not send b'xxx" in str(excinfo.value)
        assert "(64000000 bytes) within 0.05 s: the client does not read" in str(excinfo.value)
        connection.abort()


async def test_tls_serves_the_name_the_client_asks_for(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport="tls") as server:
        reader, writer = await open_client(server, server_hostname="mail.example.com")
        connection = await server.receive_connection()
        names = [value for _, value in writer.get_extra_info("peercert")["subjectAltName"]]
        assert names == ["mail.example.com"]
        await connection.send(b"220 mail.example.com ESMTP\r\n")
        assert await reader.readline() == b"220 mail.example.com ESMTP\r\n"
        await connection.close()


async def test_tls_client_without_the_test_ca_fails(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport="tls") as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await open_client(server, ssl=ssl.create_default_context())
        await asyncio.sleep(0.01)
    # The failed handshake never became a connection for the test.
    assert server.connections == []


@needs_start_tls
async def test_starttls(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        reader, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"STARTTLS\r\n")
        assert await connection.receive_line() == b"STARTTLS\r\n"
        await connection.send(b"220 Ready to start TLS\r\n")
        assert await reader.readline() == b"220 Ready to start TLS\r\n"
        client_tls = asyncio.create_task(
            writer.start_tls(
                default_certificate_authority().client_context(), server_hostname="smtp.example"
            )
        )
        await connection.start_tls()
        await client_tls
        assert connection.tls
        assert writer.get_extra_info("ssl_object") is not None
        names = [value for _, value in writer.get_extra_info("peercert")["subjectAltName"]]
        assert names == ["smtp.example"]
        writer.write(b"EHLO secure\r\n")
        assert await connection.receive_line() == b"EHLO secure\r\n"
        await connection.send(b"250 OK\r\n")
        assert await reader.readline() == b"250 OK\r\n"
        with pytest.raises(RuntimeError, match="it runs TLS already"):
            await connection.start_tls()
        await connection.close()
        assert await reader.read() == b""


@needs_start_tls
async def test_starttls_refuses_unreceived_bytes(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        writer.write(b"STARTTLS\r\nEXTRA")
        assert await connection.receive_line() == b"STARTTLS\r\n"
        with pytest.raises(RuntimeError, match=r"the client sent b'EXTRA' \(5 bytes\) that"):
            await connection.start_tls()
        await connection.close()


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="Python 3.10 only")
async def test_start_tls_explains_it_needs_python_3_11(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        await open_client(server)
        connection = await server.receive_connection()
        with pytest.raises(RuntimeError, match=r"start_tls\(\) needs Python 3\.11 or later"):
            await connection.start_tls()
        await connection.close()


@needs_start_tls
async def test_starttls_handshake_failure_raises(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        _, writer = await open_client(server)
        connection = await server.receive_connection()
        untrusting = ssl.create_default_context()
        client_tls = asyncio.create_task(writer.start_tls(untrusting, server_hostname="x.example"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await connection.start_tls()
        with pytest.raises(ssl.SSLCertVerificationError):
            await client_tls
        connection.abort()


async def test_connections_are_received_in_order(kind: str, open_client: OpenClient) -> None:
    async with CaseControlledStreamServer(transport=kind) as server:
        for number in range(3):
            _, writer = await open_client(server)
            writer.write(str(number).encode())
            await writer.drain()
            await asyncio.sleep(0.01)
        received = [await server.receive_connection() for _ in range(3)]
        assert [c.number for c in received] == [1, 2, 3]
        assert [await c.receive_exactly(1) for c in received] == [b"0", b"1", b"2"]
        assert server.connections == received
        for connection in received:
            await connection.close()
        with pytest.raises(ReceiveTimeout, match="has no connection waiting to be received"):
            server.receive_connection_nowait()


async def test_receive_connection_nowait(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        await open_client(server)
        await asyncio.sleep(0.01)
        connection = server.receive_connection_nowait()
        await connection.close()


@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_unfinished_connections_are_reported_and_closed(
    kind: str, open_client: OpenClient
) -> None:
    server = CaseControlledStreamServer(transport=kind)
    await server.start_server()
    first_reader, first_writer = await open_client(server)
    received = await server.receive_connection()
    first_writer.write(b"unread")
    await first_writer.drain()
    second_reader, _ = await open_client(server)
    await asyncio.sleep(0.02)
    with pytest.warns(UnfinishedConnectionsWarning) as record:
        await server.close()
    message = str(record[0].message)
    closed_with = f"<CaseControlledStreamServer {server.describe_address()}> closed with"
    assert f"{closed_with} 2 unfinished connection(s): #1 from " in message
    assert "(left open, unread b'unread' (6 bytes))" in message
    assert "#2 from " in message
    assert "(never received by the test)" in message
    assert "end it with close() or abort()" in message
    assert received.finished
    assert await first_reader.read() == b""
    assert await second_reader.read() == b""


async def test_close_leaves_no_task_and_no_socket_file(kind: str, open_client: OpenClient) -> None:
    before = asyncio.all_tasks()
    server = CaseControlledStreamServer(transport=kind)
    await server.start_server()
    await open_client(server)
    connection = await server.receive_connection()
    await connection.close()
    path = server.path
    await server.close()
    await server.close()  # again: nothing
    assert asyncio.all_tasks() == before
    assert server.closed
    if kind == "unix":
        assert path is not None
        assert not exists(path)
    with pytest.raises(RuntimeError, match="is closed"):
        await server.receive_connection()


async def test_given_unix_path_is_removed() -> None:
    directory = tempfile.mkdtemp(prefix="atk-test-")
    path = os.path.join(directory, "sock")
    try:
        async with CaseControlledStreamServer(transport="unix", path=path) as server:
            assert server.address == path
            assert exists(path)
        assert not exists(path)
    finally:
        os.rmdir(directory)


async def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown transport 'udp'"):
        CaseControlledStreamServer(transport="udp")
    with pytest.raises(ValueError, match="path is for transport='unix', not 'tcp'"):
        CaseControlledStreamServer(path="/tmp/x")
    with pytest.raises(ValueError, match="ssl is for transport='tls', not 'unix'"):
        CaseControlledStreamServer(transport="unix", ssl=ssl.create_default_context())
    server = CaseControlledStreamServer()
    assert repr(server) == "<CaseControlledStreamServer not started>"
    with pytest.raises(RuntimeError, match="is not started; use 'async with server:'"):
        await server.receive_connection()
    with pytest.raises(RuntimeError, match="has no address before start_server"):
        _ = server.address
    async with server:
        with pytest.raises(RuntimeError, match="it was started before"):
            await server.start_server()
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            await server.receive_connection(timeout=0)


async def test_receive_arguments_are_checked(open_client: OpenClient) -> None:
    async with CaseControlledStreamServer() as server:
        await open_client(server)
        connection = await server.receive_connection()
        with pytest.raises(ValueError, match="max_bytes must be a positive number"):
            await connection.receive(0)
        with pytest.raises(ValueError, match="n must be a number of bytes >= 0"):
            await connection.receive_exactly(-1)
        with pytest.raises(ValueError, match="separator must not be empty"):
            await connection.receive_until(b"")
        with pytest.raises(TypeError, match="timeout must be a number of seconds"):
            await connection.receive(timeout="1")  # type: ignore[arg-type]
        await connection.close()
