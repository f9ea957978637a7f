# ruff: noqa: PT009, UP032  # the docs' code kept verbatim: unittest asserts, str.format
"""Every example of aiohttp's testing docs (seed 001), run with aiotestkit active.

Every async test runs in the network sandbox (``@pytest.mark.network_sandbox``) and,
as every async test, under the hygiene checks in strict mode; warnings are errors.
The examples are kept as the docs write them; a test differs only where strict
settings demand (``@pytest.mark.asyncio`` in strict mode) or where the documented
form cannot work, and then the test shows the failure first and the working form
after it. docs/migration/aiohttp-test-utils.md says why for each.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import (
    AioHTTPTestCase,
    BaseTestServer,
    RawTestServer,
    TestClient,
    TestServer,
    loop_context,
    make_mocked_coro,
    make_mocked_request,
    setup_test_loop,
    teardown_test_loop,
    unused_port,
)

# --- pytest: aiohttp_client with the ``loop`` fixture --------------------------------


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_hello(aiohttp_client: Any, loop: asyncio.AbstractEventLoop) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    client = await aiohttp_client(app)
    resp = await client.get("/")
    assert resp.status == 200
    text = await resp.text()
    assert "Hello, world" in text
    assert loop is asyncio.get_running_loop()


# --- pytest: the ``cli`` fixture built with loop.run_until_complete --------------------

value = web.AppKey("value", str)


async def previous(request: web.Request) -> web.Response:
    if request.method == "POST":
        request.app[value] = str((await request.post())["value"])
        return web.Response(body=b"thanks for the data")
    return web.Response(body="value: {}".format(request.app[value]).encode("utf-8"))


@pytest.fixture
def cli(loop: asyncio.AbstractEventLoop, aiohttp_client: Any) -> Any:
    app = web.Application()
    app.router.add_get("/", previous)
    app.router.add_post("/", previous)
    return loop.run_until_complete(aiohttp_client(app))


CHANGING_STATE = "Changing state of started or joined application is deprecated"


# The documented handler and test assign to a started app, which aiohttp deprecates:
# with warnings as errors the handler would raise (a 500, and a server error the
# hygiene checks report), so the tests expect the warning where it is raised.
@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_set_value(cli: Any) -> None:
    with pytest.warns(DeprecationWarning, match=CHANGING_STATE):
        resp = await cli.post("/", data={"value": "foo"})
    assert resp.status == 200
    assert await resp.text() == "thanks for the data"
    assert cli.server.app[value] == "foo"


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_get_value(cli: Any) -> None:
    with pytest.warns(DeprecationWarning, match=CHANGING_STATE):
        cli.server.app[value] = "bar"
    resp = await cli.get("/")
    assert resp.status == 200
    assert await resp.text() == "value: bar"


# The same tests without the deprecated pattern: the app holds a mutable box, set
# before the app starts, so they pass with every warning an error.
box = web.AppKey("box", dict)


async def previous_boxed(request: web.Request) -> web.Response:
    if request.method == "POST":
        request.app[box]["value"] = (await request.post())["value"]
        return web.Response(body=b"thanks for the data")
    return web.Response(text="value: {}".format(request.app[box]["value"]))


@pytest.fixture
def boxed_cli(loop: asyncio.AbstractEventLoop, aiohttp_client: Any) -> Any:
    app = web.Application()
    app[box] = {}
    app.router.add_get("/", previous_boxed)
    app.router.add_post("/", previous_boxed)
    return loop.run_until_complete(aiohttp_client(app))


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_set_value_boxed(boxed_cli: Any) -> None:
    resp = await boxed_cli.post("/", data={"value": "foo"})
    assert resp.status == 200
    assert await resp.text() == "thanks for the data"
    assert boxed_cli.server.app[box]["value"] == "foo"


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_get_value_boxed(boxed_cli: Any) -> None:
    boxed_cli.server.app[box]["value"] = "bar"
    resp = await boxed_cli.get("/")
    assert resp.status == 200
    assert await resp.text() == "value: bar"


# --- pytest: aiohttp_server, aiohttp_raw_server, aiohttp_unused_port --------------------


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_aiohttp_server(aiohttp_server: Any, aiohttp_client: Any) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app)
    assert isinstance(server, TestServer)
    assert server.host == "127.0.0.1"
    client = await aiohttp_client(server)
    resp = await client.get("/")
    assert await resp.text() == "Hello, world"


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_aiohttp_server_over_tls_from_the_test_ca(
    aiohttp_server: Any,
    aiohttp_client: Any,
    ssl_ctx: ssl.SSLContext,
    client_ssl_ctx: ssl.SSLContext,
) -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    server = await aiohttp_server(app, ssl=ssl_ctx)
    assert server.scheme == "https"
    client = await aiohttp_client(server, connector=aiohttp.TCPConnector(ssl=client_ssl_ctx))
    resp = await client.get("/")
    assert resp.status == 200
    assert str(resp.url).startswith("https://127.0.0.1:")


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_aiohttp_raw_server(aiohttp_raw_server: Any, aiohttp_client: Any) -> None:
    async def handler(request: web.BaseRequest) -> web.Response:
        return web.Response(text="OK")

    raw_server = await aiohttp_raw_server(handler)
    assert isinstance(raw_server, RawTestServer)
    client = await aiohttp_client(raw_server)
    resp = await client.get("/")
    assert await resp.text() == "OK"


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_aiohttp_unused_port(
    aiohttp_client: Any, aiohttp_unused_port: Callable[[], int]
) -> None:
    port = aiohttp_unused_port()
    app = web.Application()
    app.router.add_get("/", hello)
    client = await aiohttp_client(app, server_kwargs={"port": port})
    assert client.port == port
    resp = await client.get("/")
    assert resp.status == 200


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_aiohttp_unused_port_is_racy_where_a_bound_socket_is_not(
    aiohttp_unused_port: Callable[[], int],
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    # The number is free when returned, and anyone may take it before the server does.
    port = aiohttp_unused_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(OSError, match="address already in use"):
            await asyncio.start_server(serve, "127.0.0.1", port)
    # A bound socket handed over leaves no such window.
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    server = TestServer(web.Application(), socket_factory=lambda host, port, family: bound)
    async with server:
        assert server.port == bound.getsockname()[1]


# --- unittest: AioHTTPTestCase -------------------------------------------------------


class MyAppTestCase(AioHTTPTestCase):
    async def get_application(self) -> web.Application:
        """Override the get_app method to return your application."""

        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="Hello, world")

        app = web.Application()
        app.router.add_get("/", hello)
        return app

    async def asyncSetUp(self) -> None:
        await super().asyncSetUp()
        self.set_up_ran = True

    async def test_example(self) -> None:
        async with self.client.request("GET", "/") as resp:
            self.assertEqual(resp.status, 200)
            text = await resp.text()
        self.assertIn("Hello, world", text)
        self.assertTrue(self.set_up_ran)
        self.assertIsInstance(self.server, TestServer)
        self.assertIs(self.app, self.client.app)


# --- make_mocked_request and make_mocked_coro --------------------------------------


def handler(request: web.Request) -> web.Response:
    assert request.headers.get("token") == "x"
    return web.Response(body=b"data")


def test_handler() -> None:
    req = make_mocked_request("GET", "/", headers={"token": "x"})
    resp = handler(req)
    assert resp.body == b"data"


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_make_mocked_coro() -> None:
    mocked = make_mocked_coro(1)
    assert await mocked(1, 2) == 1
    mocked.assert_called_with(1, 2)


# --- framework agnostic: TestClient/TestServer with loop_context --------------------


def _create_example_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    return app


def test_loop_context_with_test_client_as_sync_context_manager_fails() -> None:
    # The docs' first form: TestClient refuses plain `with` (use `async with`).
    with loop_context() as loop:
        app = _create_example_app()
        client = TestClient(TestServer(app), loop=loop)
        with pytest.raises(TypeError, match="Use async with instead"), client:
            pass
        loop.run_until_complete(client.close())


def test_loop_context_with_test_client_as_async_context_manager() -> None:
    with loop_context() as loop:
        app = _create_example_app()

        async def test_get_route() -> None:
            async with TestClient(TestServer(app), loop=loop) as client:
                resp = await client.get("/")
                assert resp.status == 200
                text = await resp.text()
                assert "Hello, world" in text

        loop.run_until_complete(test_get_route())


def test_loop_context_granular() -> None:
    with loop_context() as loop:
        app = _create_example_app()
        client = TestClient(TestServer(app), loop=loop)
        loop.run_until_complete(client.start_server())
        root = f"http://127.0.0.1:{client.port}"  # the docs' undefined `port`

        async def test_get_route() -> None:
            resp = await client.get("/")
            assert resp.status == 200
            text = await resp.text()
            assert "Hello, world" in text
            assert str(resp.url) == root + "/"

        loop.run_until_complete(test_get_route())
        loop.run_until_complete(client.close())


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_loop_context_inside_a_running_loop_cannot_run() -> None:
    # An async test already runs in a loop, and a thread runs one loop at a time:
    # neither the test's run_until_complete() nor loop_context's own teardown
    # (which runs the loop once to stop it) can run. Use `await` instead.
    running = asyncio.get_running_loop()
    context = loop_context()
    loop = context.__enter__()
    try:
        coroutine = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="another loop is running"):
            loop.run_until_complete(coroutine)
        coroutine.close()
        with pytest.raises(RuntimeError, match="another loop is running"):
            context.__exit__(None, None, None)
    finally:
        loop.close()
        asyncio.set_event_loop(running)


def test_setup_and_teardown_test_loop() -> None:
    loop = setup_test_loop()
    try:
        assert asyncio.get_event_loop_policy().get_event_loop() is loop
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        teardown_test_loop(loop)
    assert loop.is_closed()


def test_unused_port_and_base_test_server() -> None:
    port = unused_port()
    assert 0 < port < 65536
    assert issubclass(TestServer, BaseTestServer)
    assert issubclass(RawTestServer, BaseTestServer)


# --- the other TestClient methods of the reference ------------------------------------


@pytest.mark.asyncio
@pytest.mark.network_sandbox
async def test_test_client_methods_and_ws_connect(aiohttp_client: Any) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                await ws.send_str(message.data.upper())
            return ws
        return web.Response(text=request.method)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    client = await aiohttp_client(app)
    for method in ("get", "post", "options", "put", "patch", "delete"):
        resp = await getattr(client, method)("/")
        assert await resp.text() == method.upper()
    assert (await client.head("/")).status == 200
    assert client.make_url("/x") == client.server.make_url("/x")
    assert client.session.closed is False
    ws = await client.ws_connect("/ws")
    await ws.send_str("ping")
    assert (await ws.receive_str()) == "PING"
    await ws.close()


def test_aiohttp_test_case_runs_under_python_m_unittest() -> None:
    import subprocess
    import sys
    from pathlib import Path

    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unittest", "-v", f"{__name__}.MyAppTestCase"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # unittest names the test "(module.Class)" before Python 3.11, "(module.Class.test)" since.
    # Its "ok" may come on a later line: on 3.10 the test's loop runs in debug mode, whose
    # slow-callback warning (a callback over 0.1 s, on a loaded machine) can come between.
    name = r"^test_example \(test_aiohttp_compat\.MyAppTestCase(\.test_example)?\) \.\.\. "
    assert re.search(name, result.stderr, re.MULTILINE), result.stderr
    assert re.search(r"^Ran 1 test in .*\n\nOK$", result.stderr, re.MULTILINE), result.stderr
