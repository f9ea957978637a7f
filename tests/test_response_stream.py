"""Case-controlled streaming responses, over real sockets, with aiohttp and httpx clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
import pytest_asyncio

from aiotestkit import (
    CaseControlledTestServer,
    ClientClosedConnection,
    RequestNotPending,
    ResponseStream,
    UnansweredRequestsWarning,
    default_certificate_authority,
)
from aiotestkit._servers._response_stream import format_event

pytestmark = pytest.mark.asyncio


# -- framing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "framed"),
    [
        ({"data": "hello"}, b"data: hello\n\n"),
        ({"data": "a\nb\r\nc\rd"}, b"data: a\ndata: b\ndata: c\ndata: d\n\n"),
        ({"data": ""}, b"data: \n\n"),
        ({"data": "x", "event": "delta"}, b"event: delta\ndata: x\n\n"),
        (
            {"data": "x", "event": "e", "id": "42", "retry": 1500},
            b"event: e\nid: 42\nretry: 1500\ndata: x\n\n",
        ),
        ({"data": "é"}, "data: é\n\n".encode()),
    ],
)
async def test_events_are_framed_as_the_html_standard_says(
    kwargs: dict[str, object], framed: bytes
) -> None:
    assert format_event(**kwargs) == framed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"data": b"x"}, TypeError, "data must be a str, got bytes"),
        ({"data": "x", "event": "a\nb"}, ValueError, "event='a\\nb' contains a line break"),
        ({"data": "x", "id": "1\r"}, ValueError, "id='1\\r' contains a line break"),
        ({"data": "x", "id": "1\0"}, ValueError, "contains NUL"),
        ({"data": "x", "retry": -1}, ValueError, "retry must be >= 0 milliseconds, got -1"),
        ({"data": "x", "retry": 1.5}, TypeError, "retry is a number of milliseconds"),
    ],
)
async def test_bad_event_fields_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("\\", "\\\\").replace("(", r"\(")):
        format_event(**kwargs)  # type: ignore[arg-type]


# -- delivery ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_events_reach_an_aiohttp_client_one_by_one(session: aiohttp.ClientSession) -> None:
    async with CaseControlledTestServer() as server:
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def client() -> tuple[int, str, str]:
            async with session.get(server.make_url("/events")) as response:
                while not response.content.at_eof():
                    event = await response.content.readuntil(b"\n\n")
                    if event:
                        received.put_nowait(event)
                return response.status, response.content_type, response.headers["X-Run"]

        task = asyncio.create_task(client())
        stream = await server.start_stream(await server.receive_request(), headers={"X-Run": "7"})
        await stream.send_event("first")
        assert await received.get() == b"data: first\n\n"
        await stream.send_event("line 1\nline 2", event="delta", id="2", retry=250)
        assert (
            await received.get()
            == b"event: delta\nid: 2\nretry: 250\ndata: line 1\ndata: line 2\n\n"
        )
        assert received.empty()
        await stream.finish()
        assert await task == (200, "text/event-stream", "7")
        assert stream.finished
        assert stream.bytes_sent == len(b"data: first\n\n") + len(
            b"event: delta\nid: 2\nretry: 250\ndata: line 1\ndata: line 2\n\n"
        )


async def test_chunks_reach_an_httpx_client_one_by_one_over_tls() -> None:
    authority = default_certificate_authority()
    async with (
        CaseControlledTestServer(scheme="https") as server,
        httpx.AsyncClient(verify=authority.client_context()) as client,
    ):
        lines: asyncio.Queue[str] = asyncio.Queue()

        async def read() -> str:
            url = f"https://localhost:{server.port}/download"
            async with client.stream("GET", url) as response:
                async for line in response.aiter_lines():
                    lines.put_nowait(line)
                return response.headers["transfer-encoding"]

        task = asyncio.create_task(read())
        stream = await server.start_stream(
            await server.receive_request(), content_type="application/x-ndjson"
        )
        for number in range(3):
            await stream.write(f'{{"n": {number}}}\n'.encode())
            assert await lines.get() == f'{{"n": {number}}}'
        await stream.finish()
        assert await task == "chunked"


async def test_abort_mid_body_is_a_truncated_body_for_aiohttp(
    session: aiohttp.ClientSession,
) -> None:
    async with CaseControlledTestServer() as server:
        first: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def client() -> None:
            async with session.get(server.make_url("/events")) as response:
                first.set_result(await response.content.readuntil(b"\n\n"))
                await response.read()

        task = asyncio.create_task(client())
        stream = await server.start_stream(await server.receive_request())
        await stream.send_event("partial")
        assert await first == b"data: partial\n\n"
        stream.abort()
        with pytest.raises(aiohttp.ClientPayloadError):
            await task
        assert stream.finished
        with pytest.raises(RuntimeError, match="cannot write to <ResponseStream GET /events 200"):
            await stream.write(b"more")


async def test_abort_mid_body_is_a_truncated_body_for_httpx() -> None:
    async with CaseControlledTestServer() as server, httpx.AsyncClient() as client:
        task = asyncio.create_task(client.get(str(server.make_url("/events"))))
        stream = await server.start_stream(await server.receive_request())
        await stream.send_event("partial")
        stream.abort()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await task


async def test_finishing_before_the_content_length_truncates_the_body(
    session: aiohttp.ClientSession,
) -> None:
    async with CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/file")))
        stream = await server.start_stream(
            await server.receive_request(),
            headers={"Content-Length": "10"},
            content_type="application/octet-stream",
        )
        await stream.write(b"01234")
        await stream.finish()
        async with await task as response:
            assert response.headers["Content-Length"] == "10"
            with pytest.raises(aiohttp.ClientPayloadError, match="Not enough data"):
                await response.read()


async def test_httpx_sees_a_body_shorter_than_its_content_length() -> None:
    async with CaseControlledTestServer() as server, httpx.AsyncClient() as client:
        task = asyncio.create_task(client.get(str(server.make_url("/file"))))
        stream = await server.start_stream(
            await server.receive_request(), headers={"Content-Length": "10"}
        )
        await stream.write(b"01234")
        await stream.finish()
        with pytest.raises(httpx.RemoteProtocolError, match="peer closed connection"):
            await task


async def test_a_full_content_length_body_is_complete(session: aiohttp.ClientSession) -> None:
    async with CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/file")))
        stream = await server.start_stream(
            await server.receive_request(), headers={"Content-Length": "6"}, content_type=None
        )
        await stream.write(b"abc")
        with pytest.raises(ValueError, match="past the Content-Length of 6 bytes"):
            await stream.write(b"defg")
        await stream.write(b"def")
        await stream.finish()
        await stream.finish()  # again: nothing more
        async with await task as response:
            assert await response.read() == b"abcdef"
            assert "Transfer-Encoding" not in response.headers


async def test_a_request_takes_one_stream_and_no_other_answer(
    session: aiohttp.ClientSession,
) -> None:
    async with CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/events")))
        request = await server.receive_request()
        stream = await server.start_stream(request)
        with pytest.raises(RequestNotPending, match="GET /events has a response stream already"):
            await server.start_stream(request)
        with pytest.raises(RequestNotPending, match="GET /events has a response stream already"):
            server.send_response(request, text="no")
        await stream.finish()
        with pytest.raises(RequestNotPending, match="GET /events was answered already"):
            await server.start_stream(request)
        async with await task as response:
            assert await response.text() == ""

        answered = asyncio.create_task(session.get(server.make_url("/plain")))
        plain = await server.receive_request()
        server.send_response(plain, text="done")
        with pytest.raises(RequestNotPending, match="was answered already"):
            await server.start_stream(plain)
        async with await answered as response:
            assert await response.text() == "done"


async def test_bad_writes_are_refused_with_the_fix(session: aiohttp.ClientSession) -> None:
    async with CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/")))
        stream = await server.start_stream(await server.receive_request())
        with pytest.raises(TypeError, match="write\\(\\) takes bytes, got str; encode text"):
            await stream.write("text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="use finish\\(\\) to end the body"):
            await stream.write(b"")
        await stream.finish()
        with pytest.raises(RuntimeError, match="the test finished it"):
            await stream.send_event("late")
        async with await task as response:
            assert response.status == 200


async def test_writing_to_a_client_that_left_raises(session: aiohttp.ClientSession) -> None:
    async with CaseControlledTestServer() as server:
        task = asyncio.create_task(session.get(server.make_url("/events")))
        stream = await server.start_stream(await server.receive_request())
        response = await task
        response.close()  # the client drops the connection mid-stream

        async def write_until_refused() -> None:
            for _ in range(100):  # the first writes may still fit in the kernel's buffers
                await stream.send_event("x" * 65536)

        with pytest.raises(ClientClosedConnection, match="its client closed the connection"):
            await write_until_refused()


@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_an_unfinished_stream_is_an_unanswered_request(
    session: aiohttp.ClientSession,
) -> None:
    server = CaseControlledTestServer()
    await server.start_server()
    task = asyncio.create_task(session.get(server.make_url("/events")))
    stream = await server.start_stream(await server.receive_request())
    response = await task
    await stream.send_event("one")
    assert server.pending_requests != []
    with pytest.warns(UnansweredRequestsWarning) as warned:
        await server.close()
    assert (
        "closed with 1 unanswered request(s): GET /events (response stream started, "
        "11 bytes sent, neither finished nor aborted)"
    ) in str(warned[0].message)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    response.release()


async def test_response_stream_repr() -> None:
    async with CaseControlledTestServer() as server, httpx.AsyncClient() as client:
        task = asyncio.create_task(client.post(str(server.make_url("/v1/chat?x=1"))))
        stream = await server.start_stream(await server.receive_request(), status=201)
        assert isinstance(stream, ResponseStream)
        assert repr(stream) == "<ResponseStream POST /v1/chat?x=1 201: 0 bytes sent, open>"
        await stream.finish()
        assert repr(stream).endswith("0 bytes sent, finished>")
        assert (await task).status_code == 201
