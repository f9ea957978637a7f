"""The case-controlled HTTP server, over real sockets."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from aiotestkit import (
    CaseControlledTestServer,
    ReceiveTimeout,
    RequestNotPending,
    UnansweredRequestsWarning,
)

pytestmark = pytest.mark.asyncio


async def test_request_is_handed_to_the_test_which_answers_it() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/0/public/Ticker?pair=XBTUSD")))
        request = await server.receive_request()
        assert request.method == "GET"
        assert request.path_qs == "/0/public/Ticker?pair=XBTUSD"
        assert not task.done()
        server.send_response(request, status=201, text="hello", headers={"X-Test": "yes"})
        async with await task as response:
            assert response.status == 201
            assert response.headers["X-Test"] == "yes"
            assert await response.text() == "hello"


async def test_request_body_can_be_read_by_the_test() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(server.make_url("/orders"), json={"qty": 2}))
        request = await server.receive_request()
        assert await request.json() == {"qty": 2}
        server.send_response(request, status=204)
        async with await task as response:
            assert response.status == 204


async def test_send_json_sets_the_content_type() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/")))
        server.send_json(await server.receive_request(), {"a": [1, 2]}, status=202)
        async with await task as response:
            assert response.status == 202
            assert response.content_type == "application/json"
            assert await response.json() == {"a": [1, 2]}


async def test_send_response_accepts_a_ready_stream_response() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/")))
        request = await server.receive_request()
        server.send_response(request, web.Response(status=418, text="teapot"))
        async with await task as response:
            assert (response.status, await response.text()) == (418, "teapot")


async def test_send_response_refuses_a_response_mixed_with_arguments() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/")))
        request = await server.receive_request()
        with pytest.raises(TypeError, match="either a ready response object alone"):
            server.send_response(request, web.Response(), status=200)
        server.send_response(request)
        (await task).release()


async def test_requests_are_received_in_arrival_order_and_listed_while_pending() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        first = asyncio.create_task(session.get(server.make_url("/first")))
        one = await server.receive_request()
        second = asyncio.create_task(session.get(server.make_url("/second")))
        two = await server.receive_request()
        assert [r.path for r in server.pending_requests] == ["/first", "/second"]
        server.send_response(two, text="2")
        async with await second as response:
            assert await response.text() == "2"
        assert server.pending_requests == [one]
        server.send_response(one, text="1")
        async with await first as response:
            assert await response.text() == "1"
        assert server.pending_requests == []


async def test_receive_request_times_out_naming_the_server_and_the_wait() -> None:
    async with CaseControlledTestServer() as server:
        with pytest.raises(ReceiveTimeout) as excinfo:
            await server.receive_request(timeout=0.05)
    message = str(excinfo.value)
    assert "received no request within 0.05 s" in message
    assert "CaseControlledTestServer http://127.0.0.1:" in message
    assert isinstance(excinfo.value, TimeoutError)


@pytest.mark.parametrize(
    ("timeout", "error"), [(0, ValueError), (-1, ValueError), ("1", TypeError)]
)
async def test_receive_request_rejects_a_bad_timeout(timeout: object, error: type) -> None:
    async with CaseControlledTestServer() as server:
        with pytest.raises(error, match="timeout must be"):
            await server.receive_request(timeout=timeout)  # type: ignore[arg-type]


async def test_receive_request_nowait() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        with pytest.raises(ReceiveTimeout, match="has no request waiting"):
            server.receive_request_nowait()
        task = asyncio.create_task(session.get(server.make_url("/x")))
        request = await server.receive_request()
        server.send_response(request)
        (await task).release()


async def test_receive_request_on_a_server_not_started_says_how_to_start_it() -> None:
    server = CaseControlledTestServer()
    with pytest.raises(RuntimeError, match="is not started; use 'async with server:'"):
        await server.receive_request()


async def test_receive_request_on_a_closed_server_raises() -> None:
    async with CaseControlledTestServer() as server:
        pass
    with pytest.raises(RuntimeError, match="is closed"):
        await server.receive_request()


async def test_answering_twice_raises() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/once")))
        request = await server.receive_request()
        server.send_response(request)
        with pytest.raises(RequestNotPending, match="GET /once was answered already"):
            server.send_json(request, {})
        (await task).release()
        with pytest.raises(RequestNotPending, match=r"GET /once.*answered already"):
            server.send_response(request)


async def test_answering_a_request_of_another_server_raises() -> None:
    async with (
        CaseControlledTestServer() as server,
        CaseControlledTestServer() as other,
        aiohttp.ClientSession() as session,
    ):
        task = asyncio.create_task(session.get(server.make_url("/mine")))
        request = await server.receive_request()
        with pytest.raises(RequestNotPending, match="is not holding GET /mine"):
            other.send_response(request)
        server.send_response(request)
        (await task).release()


async def test_answering_something_that_is_not_a_request_raises() -> None:
    async with CaseControlledTestServer() as server:
        with pytest.raises(TypeError, match="needs the request returned by receive_request"):
            server.send_response("GET /", text="x")  # type: ignore[arg-type]


async def test_answering_after_the_client_went_away_raises() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/gone")))
        request = await server.receive_request()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await session.close()
        for _ in range(100):
            if not server.pending_requests:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(RequestNotPending, match="client closed the connection"):
            server.send_response(request)


@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_close_drops_pending_requests_and_warns_naming_them() -> None:
    async with aiohttp.ClientSession() as session:
        server = CaseControlledTestServer()
        await server.start_server()
        # POST: aiohttp retries an idempotent GET on a fresh connection after a drop.
        task = asyncio.create_task(session.post(server.make_url("/never")))
        request = await server.receive_request()
        with pytest.warns(
            UnansweredRequestsWarning, match=r"1 unanswered request\(s\): POST /never"
        ):
            await server.close()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await task
        with pytest.raises(RequestNotPending, match="closed before it was answered"):
            server.send_response(request)
        assert server.pending_requests == []


@pytest.mark.hygiene(allow=["unanswered_requests"], reason="checks the warning of close()")
async def test_close_leaves_no_task_behind() -> None:
    before = asyncio.all_tasks()
    async with aiohttp.ClientSession() as session:
        server = CaseControlledTestServer()
        await server.start_server()
        tasks = [asyncio.create_task(session.get(server.make_url(f"/{i}"))) for i in range(3)]
        for _ in tasks:
            await server.receive_request()
        with pytest.warns(UnansweredRequestsWarning, match="3 unanswered"):
            await server.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, aiohttp.ClientError) for r in results)
    assert asyncio.all_tasks() - before == set()


async def test_close_is_idempotent_and_quiet_when_everything_was_answered() -> None:
    server = CaseControlledTestServer()
    await server.start_server()
    await server.close()
    await server.close()


async def test_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scheme must be 'http' or 'https'"):
        CaseControlledTestServer(scheme="ftp")
    with pytest.raises(TypeError, match=r"ssl must be an ssl.SSLContext"):
        CaseControlledTestServer(ssl=True)  # type: ignore[arg-type]


async def test_json_encoder_can_be_replaced() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/")))
        server.send_json(
            await server.receive_request(),
            {"b": 1, "a": 2},
            dumps=lambda d: json.dumps(d, sort_keys=True),
        )
        async with await task as response:
            assert await response.text() == '{"a": 2, "b": 1}'


async def test_abort_disconnects_the_client_without_an_answer() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.post(server.make_url("/crash")))
        request = await server.receive_request()
        server.abort(request)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await task
        with pytest.raises(RequestNotPending, match="the test aborted it"):
            server.send_response(request)
        assert server.pending_requests == []


async def test_wait_for_disconnect_returns_once_the_client_gives_up() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            # Only the wait for the answer is bounded (a garbage collection while
            # connecting must not make the client give up before it sends).
            session.get(server.make_url("/slow"), timeout=aiohttp.ClientTimeout(sock_read=0.05))
        )
        request = await server.receive_request()
        with pytest.raises(asyncio.TimeoutError):
            await task
        await server.wait_for_disconnect(request)
        assert server.pending_requests == []
        await server.wait_for_disconnect(request)  # already gone: returns at once


async def test_wait_for_disconnect_times_out_while_the_client_waits() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        task = asyncio.create_task(session.get(server.make_url("/held")))
        request = await server.receive_request()
        with pytest.raises(
            ReceiveTimeout, match=r"client of GET /held kept its connection .* open for 0.05 s"
        ):
            await server.wait_for_disconnect(request, timeout=0.05)
        server.send_response(request)
        (await task).release()
        with pytest.raises(RequestNotPending, match="answered already"):
            await server.wait_for_disconnect(request)
