"""What the three case-controlled servers share: leftovers, reprs, warnings, waits, big bodies.

Over real sockets; the reports users read are asserted through pytester.
"""

from __future__ import annotations

import asyncio
import io
import textwrap
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiotestkit import (
    CaseControlledStreamServer,
    CaseControlledTestServer,
    CaseControlledWebSocketServer,
    RequestNotPending,
    UnansweredRequestsWarning,
    UnfinishedConnectionsWarning,
)

PROMPTLY = 5.0
"""Seconds a close may take: below aiohttp's 10 s lingering and its 60 s shutdown wait."""

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

HEADER = """
import asyncio

import aiohttp
import pytest

from aiotestkit import (
    CaseControlledStreamServer,
    CaseControlledTestServer,
    CaseControlledWebSocketServer,
)

pytestmark = pytest.mark.asyncio
"""


def run_case(pytester: pytest.Pytester, body: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(test_case=HEADER + textwrap.dedent(body))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def assert_left_unfinished(result: pytest.RunResult, *lines: str) -> None:
    """The one report format: an error at teardown, the check's section, the server's line."""
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_it*",
            "*HygieneError: test_case.py::test_leaves_it left 1 hygiene problem(s) behind:",
            "*requests and connections the test never answered (unanswered_requests, 1):",
            *lines,
        ]
    )


def test_an_unanswered_http_request_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run_case(
        pytester,
        """
        async def test_leaves_it():
            async with aiohttp.ClientSession() as session:
                async with CaseControlledTestServer() as server:
                    task = asyncio.create_task(session.post(server.make_url("/quote")))
                    await server.receive_request()
                with pytest.raises(aiohttp.ServerDisconnectedError):
                    await task
        """,
    )
    assert_left_unfinished(
        result,
        "*- <CaseControlledTestServer http://127.0.0.1:*> closed with 1 unanswered request(s):"
        " POST /quote. Their clients saw the connection drop. Answer each request with"
        " send_response() or send_json(), and finish() or abort() each response stream, before"
        " the server closes. (at test_case.py:16)",
    )


def test_an_unfinished_stream_connection_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run_case(
        pytester,
        """
        async def test_leaves_it():
            async with CaseControlledStreamServer() as server:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(b"PING\\r\\n")
                await server.receive_connection()
            assert await reader.read() == b""
            writer.close()
            await writer.wait_closed()
        """,
    )
    assert_left_unfinished(
        result,
        "*- <CaseControlledStreamServer tcp://127.0.0.1:*> closed with 1 unfinished"
        " connection(s): #1 from ('127.0.0.1', *) (left open, unread b'PING\\r\\n' (6 bytes))."
        " Their clients read the end of stream. Receive each connection and end it with"
        " close() or abort(), or receive until the client's end of stream"
        " (receive() returns b''). (at test_case.py:15)",
    )


def test_an_unfinished_websocket_connection_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run_case(
        pytester,
        """
        async def test_leaves_it():
            async with aiohttp.ClientSession() as session:
                async with CaseControlledWebSocketServer() as server:
                    task = asyncio.create_task(session.ws_connect(server.make_ws_url("/feed")))
                    await (await server.receive_connection()).accept()
                    client = await task
                assert (await client.receive()).type is aiohttp.WSMsgType.CLOSE
        """,
    )
    assert_left_unfinished(
        result,
        "*- <CaseControlledWebSocketServer ws://127.0.0.1:*> closed with 1 unfinished"
        " WebSocket connection(s): #1 /feed (left open). The open ones got a close frame"
        " (1001, going away), the undecided ones saw the connection drop. Receive each"
        " connection, then refuse() it, close() it, or receive until the client closed."
        " (at test_case.py:16)",
    )


def test_an_unfinished_response_stream_fails_the_test(pytester: pytest.Pytester) -> None:
    result = run_case(
        pytester,
        """
        async def test_leaves_it():
            async with aiohttp.ClientSession() as session:
                async with CaseControlledTestServer() as server:
                    task = asyncio.create_task(session.get(server.make_url("/events")))
                    stream = await server.start_stream(await server.receive_request())
                    response = await task
                    await stream.send_event("hi")
                response.close()
        """,
    )
    assert_left_unfinished(
        result,
        "*- <CaseControlledTestServer http://127.0.0.1:*> closed with 1 unanswered request(s):"
        " GET /events (response stream started, 10 bytes sent, neither finished nor aborted)."
        " Their clients saw the connection drop. Answer each request with send_response() or"
        " send_json(), and finish() or abort() each response stream, before the server closes."
        " (at test_case.py:16)",
    )


def test_a_server_left_open_reports_what_it_holds_in_the_same_format(
    pytester: pytest.Pytester,
) -> None:
    result = run_case(
        pytester,
        """
        async def test_leaves_it():
            server = CaseControlledStreamServer()
            await server.start_server()
            reader, writer = await asyncio.open_connection(server.host, server.port)
            pytest.leak = (server, reader, writer)
        """,
    )
    result.stdout.fnmatch_lines(
        [
            "*<CaseControlledStreamServer tcp://127.0.0.1:*> was never closed; use 'async with'*",
            "*- <CaseControlledStreamServer tcp://127.0.0.1:*> was still open at the end of the"
            " test with 1 unfinished connection(s): #1 from ('127.0.0.1', *) (never received by"
            " the test). Receive each connection*",
        ]
    )


def test_a_request_whose_client_gave_up_is_not_unanswered(pytester: pytest.Pytester) -> None:
    result = run_case(
        pytester,
        """
        @pytest.mark.parametrize("scheme", ["http", "https"])
        async def test_client_times_out(scheme):
            async with aiohttp.ClientSession() as session:
                async with CaseControlledTestServer(scheme=scheme) as server:
                    task = asyncio.create_task(
                        session.get(
                            server.make_url("/slow"),
                            # Only the wait for the answer is bounded: a garbage
                            # collection of the whole heap (~0.1 s here) while the
                            # client connects must not make it give up before sending.
                            timeout=aiohttp.ClientTimeout(sock_read=0.05),
                            ssl=False,
                        )
                    )
                    request = await server.receive_request()
                    assert request.path == "/slow"
                    with pytest.raises(asyncio.TimeoutError):
                        await task

        async def test_client_is_cancelled():
            async with aiohttp.ClientSession() as session:
                async with CaseControlledTestServer() as server:
                    task = asyncio.create_task(session.get(server.make_url("/cancelled")))
                    await server.receive_request()
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
        """,
    )
    result.assert_outcomes(passed=3)


@pytest.mark.asyncio
@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_a_request_with_a_live_client_is_still_unanswered() -> None:
    async with aiohttp.ClientSession() as session:
        server = CaseControlledTestServer()
        await server.start_server()
        task = asyncio.create_task(session.post(server.make_url("/a")))
        await server.receive_request()
        assert [r.path for r in server.pending_requests] == ["/a"]
        with pytest.warns(UnansweredRequestsWarning, match=r"1 unanswered request\(s\): POST /a"):
            await server.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await task


@pytest.mark.asyncio
async def test_reprs_keep_the_address_after_close() -> None:
    http = CaseControlledTestServer()
    stream = CaseControlledStreamServer(transport="tls")
    websocket = CaseControlledWebSocketServer(scheme="https")
    for server in (http, stream, websocket):
        assert repr(server) == f"<{type(server).__name__} not started>"
    async with http, stream, websocket:
        addresses = {
            http: f"http://127.0.0.1:{http.port}",
            stream: f"tls://127.0.0.1:{stream.port}",
            websocket: f"wss://127.0.0.1:{websocket.port}",
        }
        for server, address in addresses.items():
            assert repr(server) == f"<{type(server).__name__} {address}>"
    for server, address in addresses.items():
        assert server.closed
        assert repr(server) == f"<{type(server).__name__} {address} (closed)>"


@pytest.mark.asyncio
@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_close_warnings_point_at_the_line_of_the_test(
    recwarn: pytest.WarningsRecorder,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with CaseControlledTestServer() as http:
            task = asyncio.create_task(session.post(http.make_url("/held")))
            await http.receive_request()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await task
        stream = CaseControlledStreamServer()
        await stream.start_server()
        _, writer = await asyncio.open_connection(stream.host, stream.port)
        await stream.receive_connection()
        await stream.close()
        writer.close()
    http_warning = recwarn.pop(UnansweredRequestsWarning)
    assert http_warning.filename == __file__
    assert http_warning.lineno == _line_of("async with CaseControlledTestServer() as http:")
    stream_warning = recwarn.pop(UnfinishedConnectionsWarning)
    assert stream_warning.filename == __file__
    assert stream_warning.lineno == _line_of("await stream.close()")


def _line_of(code: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if line.strip() == code:
                return number
    raise AssertionError(f"{code!r} is not in {__file__}")


@pytest.mark.parametrize(
    ("server_class", "method"),
    [
        (CaseControlledTestServer, "receive_request"),
        (CaseControlledStreamServer, "receive_connection"),
        (CaseControlledWebSocketServer, "receive_connection"),
    ],
)
@pytest.mark.asyncio
async def test_timeout_is_keyword_only(server_class: Any, method: str) -> None:
    async with server_class() as server:
        with pytest.raises(TypeError, match="positional argument"):
            await getattr(server, method)(0.01)


@pytest.mark.asyncio
async def test_wait_for_disconnect_takes_timeout_by_keyword_only() -> None:
    async with aiohttp.ClientSession() as session, CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/")))
        request = await server.receive_request()
        with pytest.raises(TypeError, match="positional argument"):
            await server.wait_for_disconnect(request, 0.01)  # type: ignore[misc]
        server.send_response(request, text="ok")
        async with await task as response:
            assert response.status == 200


TWO_MIB = 2 * 1024 * 1024


@pytest.mark.parametrize("client_max_size", [None, 64 * 1024])
@pytest.mark.asyncio
async def test_an_oversize_body_gets_413_and_the_server_closes_promptly(
    client_max_size: int | None,
) -> None:
    kwargs = {} if client_max_size is None else {"client_max_size": client_max_size}
    limit = client_max_size or 1024 * 1024
    async with aiohttp.ClientSession() as session:
        server = CaseControlledTestServer(**kwargs)
        assert server.client_max_size == limit
        async with server:
            async with session.post(
                server.make_url("/upload"), data=io.BytesIO(b"x" * TWO_MIB)
            ) as response:
                assert response.status == 413
                assert f"Maximum request body size {limit} exceeded" in await response.text()
            request = server.receive_request_nowait()  # the test still sees it
            assert request.content_length == TWO_MIB
            assert server.pending_requests == []
            with pytest.raises(RequestNotPending, match="the server answered it 413"):
                server.send_response(request, text="too late")
            closing = asyncio.ensure_future(server.close())
        await asyncio.wait_for(closing, PROMPTLY)  # no hang guard needed


@pytest.mark.asyncio
async def test_a_body_within_the_limit_can_be_answered_without_reading_it() -> None:
    async with aiohttp.ClientSession() as session:
        server = CaseControlledTestServer(client_max_size=4 * 1024 * 1024)
        async with server:
            task = asyncio.create_task(
                session.post(server.make_url("/up"), data=io.BytesIO(b"x" * TWO_MIB))
            )
            request = await server.receive_request()
            server.send_response(request, status=201)
            async with await task as response:
                assert response.status == 201
            closing = asyncio.ensure_future(server.close())
        await asyncio.wait_for(closing, PROMPTLY)  # aiohttp's lingering would hold 10 s


@pytest.mark.asyncio
async def test_an_oversize_chunked_body_raises_413_when_read() -> None:
    async def chunks() -> Any:
        for _ in range(4):
            yield b"y" * (64 * 1024)

    async with (
        aiohttp.ClientSession() as session,
        CaseControlledTestServer(client_max_size=100 * 1024) as server,
    ):
        task = asyncio.create_task(session.post(server.make_url("/chunked"), data=chunks()))
        request = await server.receive_request()
        assert request.content_length is None
        with pytest.raises(web.HTTPRequestEntityTooLarge) as excinfo:
            await request.read()
        server.send_response(request, excinfo.value)
        async with await task as response:
            assert response.status == 413


@pytest.mark.parametrize("client_max_size", [0, -1, 1.5, True])
def test_client_max_size_is_checked(client_max_size: Any) -> None:
    error = TypeError if isinstance(client_max_size, (bool, float)) else ValueError
    with pytest.raises(error, match="client_max_size must be"):
        CaseControlledTestServer(client_max_size=client_max_size)
