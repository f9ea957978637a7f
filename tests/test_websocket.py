"""The case-controlled WebSocket server, with aiohttp's client over real sockets and TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from aiotestkit import (
    AiohttpRedirector,
    CaseControlledWebSocketServer,
    ClientClosedConnection,
    ReceiveTimeout,
    UnexpectedMessage,
    UnfinishedConnectionsWarning,
    WebSocketConnection,
)

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def connect(
    server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
    path: str = "/",
    **kwargs: object,
) -> tuple[aiohttp.ClientWebSocketResponse, WebSocketConnection]:
    task = asyncio.create_task(session.ws_connect(server.make_ws_url(path), **kwargs))  # type: ignore[arg-type]
    connection = await server.receive_connection()
    await connection.accept()
    return await task, connection


async def test_upgrade_request_is_handed_to_the_test(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    task = asyncio.create_task(
        session.ws_connect(server.make_ws_url("/v2?token=abc"), headers={"X-Client": "test"})
    )
    connection = await server.receive_connection()
    assert (connection.path, connection.query["token"]) == ("/v2", "abc")
    assert connection.headers["X-Client"] == "test"
    assert not task.done()  # the handshake waits for the test
    await connection.accept(headers={"X-Server": "case"})
    client = await task
    assert client._response.headers["X-Server"] == "case"
    await client.send_str("hello")
    assert await connection.receive_str() == "hello"
    await connection.send_str("world")
    assert await client.receive_str() == "world"
    await client.send_bytes(b"\x00\x01")
    assert await connection.receive_bytes() == b"\x00\x01"
    await connection.send_bytes(b"\x02")
    assert await client.receive_bytes() == b"\x02"
    await client.send_json({"method": "ping"})
    assert await connection.receive_json() == {"method": "ping"}
    await connection.send_json({"method": "pong"})
    assert await client.receive_json() == {"method": "pong"}
    await connection.close()
    assert (await client.receive()).type is aiohttp.WSMsgType.CLOSE


async def test_receiving_accepts_the_upgrade(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    task = asyncio.create_task(session.ws_connect(server.make_ws_url("/")))
    connection = await server.receive_connection()
    receiving = asyncio.create_task(connection.receive_str())
    client = await task
    await client.send_str("implicit")
    assert await receiving == "implicit"
    with pytest.raises(RuntimeError, match="the test accepted the upgrade already"):
        connection.refuse(403)
    await client.close()


async def test_subprotocol_is_agreed(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    task = asyncio.create_task(
        session.ws_connect(server.make_ws_url("/"), protocols=("v1.chat", "v2.chat"))
    )
    connection = await server.receive_connection()
    await connection.accept(protocols=["v2.chat"])
    client = await task
    assert client.protocol == "v2.chat"
    assert connection.protocol == "v2.chat"
    await connection.close()


async def test_refuse_answers_with_an_http_status(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    task = asyncio.create_task(session.ws_connect(server.make_ws_url("/private")))
    connection = await server.receive_connection()
    with pytest.raises(ValueError, match="status 101 accepts the upgrade"):
        connection.refuse(101)
    connection.refuse(401, text="invalid token", headers={"WWW-Authenticate": "Bearer"})
    with pytest.raises(aiohttp.WSServerHandshakeError) as excinfo:
        await task
    assert excinfo.value.status == 401
    assert connection.finished
    with pytest.raises(RuntimeError, match="the test refused the upgrade"):
        await connection.receive()


async def test_ping_reaches_the_client(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    client, connection = await connect(case_controlled_websocket_server, session, autoping=False)
    await connection.ping(b"are you there")
    message = await client.receive()
    assert (message.type, message.data) == (aiohttp.WSMsgType.PING, b"are you there")
    await client.pong(b"are you there")
    await client.send_str("after pong")  # the pong is consumed, not received by the test
    assert await connection.receive_str() == "after pong"
    await connection.close()


async def test_server_close_sends_code_and_reason(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    client, connection = await connect(case_controlled_websocket_server, session)
    await connection.close(4001, "maintenance")
    message = await client.receive()
    assert (message.type, message.data, message.extra) == (
        aiohttp.WSMsgType.CLOSE,
        4001,
        "maintenance",
    )
    assert connection.close_code == 4001
    assert connection.finished
    await connection.close()  # again: nothing
    with pytest.raises(RuntimeError, match=r"cannot send on .*: the test closed it"):
        await connection.send_str("late")


async def test_client_close_is_seen_by_receive(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    client, connection = await connect(case_controlled_websocket_server, session, "/feed")
    await client.send_str("last words")
    await client.close(code=4002, message=b"bye")
    assert await connection.receive_str() == "last words"
    with pytest.raises(ClientClosedConnection) as excinfo:
        await connection.receive_str()
    assert str(excinfo.value) == (
        f"{connection!r} ended (closed by the client with code 4002) while the test waited "
        "for a text message; 1 message(s) received before, the last: TEXT 'last words'"
    )
    message = await connection.receive()
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert connection.close_code == 4002
    assert connection.finished
    await connection.close(1000)  # after the client closed: nothing
    assert connection.close_code == 4002


async def test_receive_timeouts_say_what_was_awaited(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    with pytest.raises(ReceiveTimeout) as excinfo:
        await server.receive_connection(timeout=0.01)
    assert str(excinfo.value) == (
        f"{server!r} received no WebSocket connection within 0.01 s; 0 connection(s) "
        f"received before; did the client connect to ws://127.0.0.1:{server.port}? "
        "(pending HTTP requests: none)"
    )
    client, connection = await connect(server, session, "/v2")
    with pytest.raises(ReceiveTimeout) as excinfo:
        await connection.receive_json(timeout=0.02)
    assert str(excinfo.value) == (
        f"{connection!r} waited 0.02 s for a message from the client; no message received "
        "before. Did the client send it? Raise the timeout if it is slow."
    )
    await client.send_str('{"method": "ping"}')
    assert await connection.receive_json() == {"method": "ping"}
    with pytest.raises(ReceiveTimeout, match=r"1 message\(s\) received before, the last: TEXT"):
        await connection.receive_bytes(timeout=0.02)
    with pytest.raises(ReceiveTimeout, match="has no WebSocket connection waiting to be received"):
        server.receive_connection_nowait()
    await connection.close()
    await client.close()


async def test_unexpected_messages_fail_with_what_arrived(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    client, connection = await connect(case_controlled_websocket_server, session)
    await client.send_bytes(b"\x00binary")
    with pytest.raises(UnexpectedMessage) as excinfo:
        await connection.receive_str()
    assert str(excinfo.value) == (
        f"{connection!r}: the test waited for a text message, the client sent "
        "BINARY b'\\x00binary'"
    )
    await client.send_str("not json")
    with pytest.raises(
        UnexpectedMessage, match=r"the client sent text that is not JSON .*'not json'"
    ):
        await connection.receive_json()
    await client.send_str("text")
    with pytest.raises(
        UnexpectedMessage, match="waited for a binary message, the client sent TEXT"
    ):
        await connection.receive_bytes()
    await connection.close()
    await client.close()


async def test_plain_http_requests_go_to_its_http_server(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    server = case_controlled_websocket_server
    task = asyncio.create_task(session.get(server.make_url("/health")))
    request = await server.http.receive_request()
    assert request.path == "/health"
    server.http.send_json(request, {"ok": True})
    async with await task as response:
        assert await response.json() == {"ok": True}


async def test_wss_for_the_real_host_name_through_the_redirector(
    case_controlled_websocket_server_factory: object,
    aiohttp_redirector: AiohttpRedirector,
) -> None:
    factory = case_controlled_websocket_server_factory
    server: CaseControlledWebSocketServer = await factory(scheme="https")  # type: ignore[operator]
    assert str(server.make_ws_url("/v2")).startswith("wss://127.0.0.1:")
    aiohttp_redirector.add_server("ws.kraken.com", 443, server)
    task = asyncio.create_task(aiohttp_redirector.session.ws_connect("wss://ws.kraken.com/v2"))
    connection = await server.receive_connection()
    assert connection.headers["Host"] == "ws.kraken.com"
    await connection.accept()
    client = await task
    ssl_object = client.get_extra_info("ssl_object")
    names = [value for _, value in ssl_object.getpeercert()["subjectAltName"]]
    assert names == ["ws.kraken.com"]
    await connection.send_json({"channel": "status"})
    assert await client.receive_json() == {"channel": "status"}
    await connection.close()


@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_unfinished_connections_are_reported(session: aiohttp.ClientSession) -> None:
    before = asyncio.all_tasks()
    server = CaseControlledWebSocketServer()
    await server.start_server()
    open_client, _ = await connect(server, session, "/left-open")
    unread_client, unread = await connect(server, session, "/unread")
    await unread_client.send_str("never received")
    await unread_client.close()
    undecided = asyncio.create_task(session.ws_connect(server.make_ws_url("/undecided")))
    await server.receive_connection()
    never = asyncio.create_task(session.ws_connect(server.make_ws_url("/never")))
    for _ in range(500):  # until the fourth upgrade request reached the server
        if len(server.connections) == 4:
            break
        await asyncio.sleep(0.01)
    with pytest.warns(UnfinishedConnectionsWarning) as record:
        await server.close()
    message = str(record[0].message)
    assert "closed with 4 unfinished WebSocket connection(s): #1 /left-open (left open)" in message
    assert "#2 /unread (left open, 1 unread message(s): TEXT 'never received')" in message
    assert "#3 /undecided (upgrade neither accepted nor refused)" in message
    assert "#4 /never (never received by the test)" in message
    assert (await open_client.receive()).data == 1001  # going away
    for task in (undecided, never):
        with pytest.raises(aiohttp.ClientError):
            await task
    assert unread.finished is False
    assert asyncio.all_tasks() == before


async def test_accept_twice_is_refused(
    case_controlled_websocket_server: CaseControlledWebSocketServer,
    session: aiohttp.ClientSession,
) -> None:
    client, connection = await connect(case_controlled_websocket_server, session)
    with pytest.raises(RuntimeError, match="the test accepted the upgrade already"):
        await connection.accept()
    await client.close()
    assert (await connection.receive()).type is aiohttp.WSMsgType.CLOSE
