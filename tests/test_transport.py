"""The transport fixture and TransportContext, over real TCP, TLS and Unix sockets."""

from __future__ import annotations

import asyncio
import os
import ssl

import pytest

from aiotestkit import (
    HandlerError,
    TransportContext,
    default_certificate_authority,
)
from aiotestkit._core import TRANSPORT_NAMES, select_transports

pytestmark = pytest.mark.asyncio


def exists(path: str) -> bool:
    return os.path.exists(path)


async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def test_round_trip_over_each_transport(transport: TransportContext) -> None:
    reader, writer = await transport.start_server_and_connect(echo_line)
    writer.write(b"ohai\n")
    assert await reader.readline() == b"OHAI\n"
    assert transport.name in TRANSPORT_NAMES
    assert (writer.get_extra_info("ssl_object") is not None) == (transport.name == "tls")


async def test_address_has_the_shape_of_the_transport(transport: TransportContext) -> None:
    if transport.name == "unix":
        assert isinstance(transport.address, str)
        assert len(os.fsencode(transport.address)) <= 100
        assert exists(os.path.dirname(transport.address))
    else:
        host, port = transport.address
        assert host == "127.0.0.1"
        assert 0 < port < 65536
    assert transport.address == transport.address  # fixed on first use


async def test_own_server_on_the_address_before_connecting(transport: TransportContext) -> None:
    """Code that starts its own server listens on transport.address (the seed's pattern)."""
    handled = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await echo_line(reader, writer)
        handled.set()

    address = transport.address
    if transport.name == "unix":
        assert isinstance(address, str)
        server = await asyncio.start_unix_server(handle, address)
    else:
        host, port = address
        server = await asyncio.start_server(handle, host, port, ssl=transport.server_ssl)
    async with server:
        reader, writer = await transport.connect()
        writer.write(b"own\n")
        assert await reader.readline() == b"OWN\n"
        writer.close()
        await asyncio.wait_for(handled.wait(), 5)


@pytest.mark.transports("unix")
async def test_marker_selects_the_transports(
    transport: TransportContext, request: pytest.FixtureRequest
) -> None:
    assert transport.name == "unix"
    assert request.node.callspec.id == "unix"


@pytest.mark.transports("tls")
async def test_tls_verifies_the_server_certificate(transport: TransportContext) -> None:
    await transport.start_server(echo_line)
    with pytest.raises(ssl.SSLCertVerificationError):
        await transport.connect(ssl=ssl.create_default_context())
    reader, writer = await transport.connect()
    assert writer.get_extra_info("peercert")["subjectAltName"]
    writer.write(b"x\n")
    assert await reader.readline() == b"X\n"


@pytest.mark.transports("tls")
async def test_tls_contexts_come_from_the_test_authority(transport: TransportContext) -> None:
    assert transport.client_ssl is not None
    assert transport.client_ssl.verify_mode == ssl.CERT_REQUIRED
    assert transport.client_ssl.check_hostname
    assert transport.server_ssl is not None


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data[::-1])


class ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.received.put_nowait(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def test_protocol_server_and_connection(transport: TransportContext) -> None:
    await transport.create_server(EchoProtocol)
    connection, protocol = await transport.create_connection(ClientProtocol)
    assert isinstance(connection, asyncio.Transport)
    assert isinstance(protocol, ClientProtocol)
    connection.write(b"abc")
    assert await asyncio.wait_for(protocol.received.get(), 5) == b"cba"


async def test_close_server_ends_the_clients_stream(transport: TransportContext) -> None:
    started = asyncio.Event()

    async def wait_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()
        await reader.read()

    reader, _ = await transport.start_server_and_connect(wait_forever)
    await asyncio.wait_for(started.wait(), 5)
    await transport.close_server()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    with pytest.raises(OSError, match=r"Connect call failed|No such file|Errno"):
        await transport.connect()


async def echo_lines(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()


class EchoProtocolServer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def test_close_server_ends_the_read_a_client_is_blocked_in(
    transport: TransportContext,
) -> None:
    """The client already reads when close_server() runs, the handler waits in readline()."""
    reader, writer = await transport.start_server_and_connect(echo_lines)
    writer.write(b"ohai\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"ohai\n"
    read = asyncio.create_task(reader.read())
    await transport.close_server()
    assert await asyncio.wait_for(read, 5) == b""


@pytest.mark.parametrize("server", ["stream handler", "protocol"])
async def test_close_server_ends_a_connection_its_server_has_not_handled_yet(
    transport: TransportContext, server: str
) -> None:
    """close_server() right after connect: the server side is not set up yet (its TLS
    handshake or its accept still running); the client's read still ends."""
    if server == "protocol":
        await transport.create_server(EchoProtocolServer)
        reader, _ = await transport.connect()
    else:
        reader, _ = await transport.start_server_and_connect(echo_lines)
    read = asyncio.create_task(reader.read())
    await transport.close_server()
    assert await asyncio.wait_for(read, 5) == b""


async def test_close_server_then_start_again(transport: TransportContext) -> None:
    await transport.start_server(echo_line)
    await transport.close_server()
    reader, writer = await transport.start_server_and_connect(echo_line)
    writer.write(b"again\n")
    assert await reader.readline() == b"AGAIN\n"


async def test_close_ends_everything_and_removes_the_socket_file() -> None:
    for name in TRANSPORT_NAMES:
        before = asyncio.all_tasks()
        async with TransportContext(name) as context:
            reader, writer = await context.start_server_and_connect(echo_line)
            writer.write(b"x\n")
            await reader.readline()
            await context.close_server()
            await context.create_server(EchoProtocol)
            connection, protocol = await context.create_connection(ClientProtocol)
            address = context.address
        assert writer.transport.is_closing()
        assert connection.is_closing()
        assert isinstance(protocol, ClientProtocol)
        assert protocol.lost.done()
        assert asyncio.all_tasks() == before
        if name == "unix":
            assert isinstance(address, str)
            assert not exists(address)
        with pytest.raises(RuntimeError, match="is closed"):
            await context.connect()


async def test_handler_exception_is_raised_at_close_with_its_traceback() -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        raise ValueError("bad frame from client")

    context = TransportContext("tcp")
    reader, writer = await context.start_server_and_connect(broken)
    writer.write(b"x\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the handler's connection closed
    with pytest.raises(HandlerError) as excinfo:
        await context.close()
    message = str(excinfo.value)
    assert "1 server handler failure(s)" in message
    assert "connection handler " in message
    assert "broken() raised ValueError('bad frame from client')" in message
    assert 'raise ValueError("bad frame from client")' in message  # the traceback
    assert isinstance(excinfo.value.__cause__, ValueError)


async def test_protocol_exception_is_raised_at_close() -> None:
    class Broken(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            raise KeyError(data)

    context = TransportContext("unix")
    await context.create_server(Broken)
    connection, protocol = await context.create_connection(ClientProtocol)
    connection.write(b"boom")
    assert isinstance(protocol, ClientProtocol)
    await asyncio.wait_for(protocol.lost, 5)
    with pytest.raises(HandlerError, match=r"server protocol .*Broken\.data_received\(\) raised"):
        await context.close()


async def test_hanging_handler_is_cancelled_and_reported() -> None:
    never = asyncio.Event()

    async def hangs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await never.wait()

    context = TransportContext("tcp", handler_timeout=0.05)
    await context.start_server_and_connect(hangs)
    await asyncio.sleep(0.01)
    with pytest.raises(HandlerError, match=r"still running 0\.05 s after the server stopped"):
        await context.close()


async def test_errors_caused_by_close_server_are_not_reported() -> None:
    async def reads_exactly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(10)

    context = TransportContext("tcp")
    await context.start_server_and_connect(reads_exactly)
    await asyncio.sleep(0.01)
    await context.close_server()
    await context.close()


async def test_handler_may_be_a_plain_function() -> None:
    seen: list[object] = []
    async with TransportContext("tcp") as context:
        await context.start_server_and_connect(lambda r, w: seen.append(w))
        await asyncio.sleep(0.01)
    assert len(seen) == 1


async def test_select_transports_checks_names() -> None:
    assert select_transports(["unix", "tcp", "unix"]) == ["unix", "tcp"]
    with pytest.raises(ValueError, match="unknown transport 'udp'; choose from tcp, tls, unix"):
        select_transports(["udp"])
    with pytest.raises(ValueError, match="no transport selected"):
        select_transports([])
    with pytest.raises(TypeError, match="transport names are str"):
        select_transports([1])  # type: ignore[list-item]


async def test_context_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="TransportContext: unknown transport 'quic'"):
        TransportContext("quic")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        TransportContext("tcp", handler_timeout=0)
    assert repr(TransportContext("tls")) == (
        "<TransportContext tls tls://127.0.0.1:(port not chosen yet)>"
    )
    context = TransportContext("tls", certificate_authority=default_certificate_authority())
    assert context.server_ssl is not None
