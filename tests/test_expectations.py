"""Declarative expectations on the case-controlled HTTP server, over real sockets."""

from __future__ import annotations

import asyncio
import re
import textwrap

import aiohttp
import pytest
from aiohttp import web

from aiotestkit import (
    CaseControlledTestServer,
    VirtualClock,
)

pytestmark = pytest.mark.asyncio


def issues_of(server: CaseControlledTestServer) -> list[tuple[str, str]]:
    """What the open server would report at the end of the test, but its being open."""
    return [issue for issue in server.hygiene_issues() if issue[0] != "unclosed_resources"]


async def test_an_expectation_answers_the_requests_it_matches() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        items = server.expect("GET", "/items", times=2).respond(
            json={"items": [1]}, headers={"X-Page": "1"}
        )
        for _ in range(2):
            async with session.get(server.make_url("/items")) as response:
                assert response.status == 200
                assert response.headers["X-Page"] == "1"
                assert await response.json() == {"items": [1]}
        assert items.call_count == 2
        assert [r.path for r in items.requests] == ["/items", "/items"]


async def test_matching_method_path_query_headers_and_body() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("post", re.compile(r"/orders/\d+"), json={"qty": 2}).respond(status=201)
        server.expect("GET", "/search", query={"q": "btc", "n": 2}).respond(text="found")
        server.expect("PUT", "/raw", headers={"x-token": "t0k"}, data="raw body").respond(
            status=204
        )
        async with session.post(server.make_url("/orders/17"), json={"qty": 2}) as response:
            assert response.status == 201
        url = server.make_url("/search").with_query(n="2", q="btc", extra="1")
        async with session.get(url) as response:
            assert await response.text() == "found"
        async with session.put(
            server.make_url("/raw"), data=b"raw body", headers={"X-Token": "t0k"}
        ) as response:
            assert response.status == 204
        assert all(e.call_count == 1 for e in server.expectations)


async def test_a_request_no_expectation_matches_goes_to_the_test() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("POST", "/oauth/token").respond(json={"access_token": "t"})

        async def client() -> object:
            async with session.post(server.make_url("/oauth/token")) as token:
                assert (await token.json())["access_token"] == "t"
            async with session.get(server.make_url("/balance")) as response:
                return await response.json()

        task = asyncio.create_task(client())
        request = await server.receive_request()
        assert request.path == "/balance"
        server.send_json(request, {"balance": "1.5"})
        assert await task == {"balance": "1.5"}
        assert [f"{r.method} {r.path}" for r in server.requests] == [
            "POST /oauth/token",
            "GET /balance",
        ]


async def test_a_used_up_expectation_hands_further_requests_to_the_test() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("GET", "/price").respond(text="1")
        async with session.get(server.make_url("/price")) as response:
            assert await response.text() == "1"
        task = asyncio.create_task(session.get(server.make_url("/price")))
        request = await server.receive_request()
        server.send_response(request, text="2")
        async with await task as response:
            assert await response.text() == "2"


async def test_times_none_answers_any_number_and_expectations_are_tried_in_order() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        first = server.expect("GET", "/a", times=1).respond(text="first")
        rest = server.expect("GET", "/a", times=None).respond(text="rest")
        texts = []
        for _ in range(4):
            async with session.get(server.make_url("/a")) as response:
                texts.append(await response.text())
        assert texts == ["first", "rest", "rest", "rest"]
        first.assert_called_once()
        assert rest.call_count == 3


async def test_respond_with_a_handler_gets_the_request_with_its_body() -> None:
    async def echo(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response(body=await request.read(), status=202)

    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("POST", "/echo").respond_with(echo)
        async with session.post(server.make_url("/echo"), data=b"ping") as response:
            assert response.status == 202
            assert await response.read() == b"ping"


async def test_drop_closes_the_connection_without_an_answer() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        flaky = server.expect("GET", "/flaky", times=None).drop()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(server.make_url("/flaky"))
        flaky.assert_called()  # aiohttp may retry a GET once on a dropped connection


@pytest.mark.hygiene(allow=["unexpected_requests"], reason="the report is asserted here")
async def test_unmatched_abort_drops_requests_no_expectation_matches() -> None:
    async with CaseControlledTestServer(unmatched="abort") as server:
        server.expect("GET", "/known", optional=True).respond(text="ok")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.get(server.make_url("/unknown"))
        [(check, message)] = issues_of(server)
        assert check == "unexpected_requests"
        assert "\nGET /unknown; closest expectations:\n" in message


async def test_the_assert_helpers_check_the_requests_an_expectation_answered() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        pages = server.expect("GET", "/items", times=None).respond(json=[])
        token = server.expect("POST", "/token", optional=True).respond(json={})
        pages.assert_not_called()
        for page in ("1", "2"):
            async with session.get(server.make_url("/items").with_query(page=page)):
                pass
        pages.assert_called()
        pages.assert_any_call(query={"page": "1"})
        pages.assert_called_with(query={"page": "2"})
        with pytest.raises(AssertionError, match=r"expected to answer 1 request, answered 2"):
            pages.assert_called_once()
        with pytest.raises(
            AssertionError,
            match=re.escape(
                "GET /items: the last request differs: query 'page': expected '3', got '2'"
            ),
        ):
            pages.assert_called_with(query={"page": "3"})
        with pytest.raises(AssertionError, match=r"request 1: query 'page'.*\| request 2:"):
            pages.assert_any_call(query={"page": "9"})
        with pytest.raises(AssertionError, match=r"expected to answer a request, answered none"):
            token.assert_called()
        async with session.post(server.make_url("/token"), json={"grant": "refresh"}):
            pass
        token.assert_called_once_with(json={"grant": "refresh"})
        with pytest.raises(
            AssertionError, match=re.escape("json $.grant: expected 'x', got 'refresh'")
        ):
            token.assert_called_once_with(json={"grant": "x"})


async def test_bad_arguments_fail_at_declaration() -> None:
    server = CaseControlledTestServer()
    with pytest.raises(ValueError, match="path must start with '/'"):
        server.expect("GET", "http://example.com/x")
    with pytest.raises(ValueError, match="holds a query string; give it as query="):
        server.expect("GET", "/x?a=1")
    with pytest.raises(ValueError, match="times must be at least 1"):
        server.expect("GET", "/x", times=0)
    with pytest.raises(ValueError, match="json= or data=, not both"):
        server.expect("POST", "/x", json={}, data=b"")
    with pytest.raises(TypeError, match="not JSON serializable"):
        server.expect("POST", "/x", json=object())
    with pytest.raises(ValueError, match="one of json=, text= and body="):
        server.expect("GET", "/x").respond(json={}, text="")
    with pytest.raises(ValueError, match="needs 'data'"):
        server.expect("GET", "/x").respond_events([{"event": "tick"}])
    expectation = server.expect("GET", "/x", optional=True).respond()
    with pytest.raises(RuntimeError, match="has its answer already"):
        expectation.drop()
    with pytest.raises(ValueError, match="unmatched must be"):
        CaseControlledTestServer(unmatched="ignore")  # type: ignore[arg-type]


@pytest.mark.hygiene(allow=["unused_expectations"], reason="the report is asserted here")
async def test_an_unused_expectation_is_reported() -> None:
    server = CaseControlledTestServer()
    await server.start_server()
    server.expect("GET", "/items", times=3).respond(json=[])
    server.expect("GET", "/health", optional=True).respond()
    server.expect("GET", "/never-answered")
    port = server.port
    async with aiohttp.ClientSession() as session, session.get(server.make_url("/items")):
        pass
    [(check, message)] = issues_of(server)
    await server.close()
    assert check == "unused_expectations"
    assert message == (
        f"<CaseControlledTestServer http://127.0.0.1:{port}> was still open at the end of "
        "the test with 2 unused "
        "expectation(s):\n"
        "GET /items: used 1 time(s), expected 3 time(s)\n"
        "GET /never-answered: never given an answer (respond(), ...)"
    )


@pytest.mark.hygiene(allow=["unexpected_requests"], reason="the report is asserted here")
async def test_an_unmatched_request_is_reported_with_the_closest_expectations() -> None:
    async with CaseControlledTestServer(unmatched="abort") as server:
        server.expect("POST", "/items", query={"page": "2"}, times=None).respond(json=[])
        server.expect(
            "POST",
            "/orders",
            headers={"Authorization": "Bearer t"},
            json={"qty": 2, "side": "buy"},
            optional=True,
        ).respond(status=201)
        server.expect("DELETE", "/orders/1", optional=True).respond(status=204)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(
                    server.make_url("/orders"),
                    json={"qty": 3, "side": "buy", "tif": "gtc"},
                    headers={"Authorization": "Bearer u"},
                )
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(server.make_url("/items").with_query(page=3))
        [(check, report)] = issues_of(server)
    assert check == "unexpected_requests"
    assert report == textwrap.dedent(
        f"""\
        <CaseControlledTestServer http://127.0.0.1:{server_port(report)}> was still open at \
the end of the test with 2 request(s) that matched no expectation and that the test never \
received:
        POST /orders (39 bytes of body); closest expectations:
          POST /orders headers={{'Authorization': 'Bearer t'}} json={{'qty': 2, 'side': \
'buy'}}: header 'Authorization': expected 'Bearer t', got 'Bearer u'; json $.qty: expected \
2, got 3; json $.tif: not expected, got 'gtc'
          POST /items query={{'page': '2'}}: path: expected '/items', got '/orders'; query \
'page': missing, expected '2'
          DELETE /orders/1: method: expected DELETE, got POST; path: expected '/orders/1', \
got '/orders'
        POST /items?page=3; closest expectations:
          POST /items query={{'page': '2'}}: query 'page': expected '2', got '3'
          POST /orders headers={{'Authorization': 'Bearer t'}} json={{'qty': 2, 'side': \
'buy'}}: path: expected '/orders', got '/items'; header 'Authorization': missing, expected \
'Bearer t'; json: expected {{'qty': 2, 'side': 'buy'}}, got a body that is not JSON: b''
          DELETE /orders/1: method: expected DELETE, got POST; path: expected '/orders/1', \
got '/items'"""
    )


def server_port(report: str) -> str:
    return report.split("127.0.0.1:", 1)[1].split(">", 1)[0]


async def test_a_request_the_test_received_is_not_unexpected() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("GET", "/a").respond()
        task = asyncio.create_task(session.get(server.make_url("/b")))
        server.send_response(await server.receive_request(), text="b")
        async with await task as response:
            assert await response.text() == "b"
        async with session.get(server.make_url("/a")):
            pass


async def test_server_requests_have_their_body_read() -> None:
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        server.expect("POST", "/a").respond()
        async with session.post(server.make_url("/a"), data=b"one"):
            pass
        task = asyncio.create_task(session.post(server.make_url("/b"), json={"n": 2}))
        server.send_response(await server.receive_request())
        await (await task).release()
        assert [await r.read() for r in server.requests] == [b"one", b'{"n": 2}']


async def test_server_sent_events_follow_the_virtual_clock(clock: VirtualClock) -> None:
    async with CaseControlledTestServer() as server:
        server.expect("GET", "/stream").respond_events(
            ["hello", {"event": "tick", "id": "2", "data": "a\nb"}, {"data": "{}", "retry": 10}],
            delay=30.0,
        )
        start = clock.time()
        received: list[tuple[float, bytes]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/stream")) as response,
        ):
            assert response.headers["Content-Type"] == "text/event-stream"
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    received.append((clock.time() - start, event))
    assert [event for _, event in received] == [
        b"data: hello",
        b"event: tick\nid: 2\ndata: a\ndata: b",
        b"retry: 10\ndata: {}",
    ]
    assert [round(at) for at, _ in received] == [0, 30, 60]
