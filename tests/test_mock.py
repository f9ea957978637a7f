"""aiotestkit.mock: async_patch, awaitable/context/iterator mocks, assert_all_awaited."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import unittest
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest

from aiotestkit import CaseControlledTestServer, MockNotAwaited
from aiotestkit.mock import (
    AsyncPatch,
    AwaitableContextMock,
    assert_all_awaited,
    async_context_mock,
    async_iterator_mock,
    async_patch,
    async_patch_object,
    awaitable_context_mock,
)


async def send_to_client(packet_type: str, packet_data: str) -> None:
    raise AssertionError("the real send_to_client must not run in these tests")


async def trigger_event(event_name: str, event_data: str) -> str:
    raise AssertionError("the real trigger_event must not run in these tests")


async def notify(data: str) -> str:
    await send_to_client("MESSAGE", data)
    return await trigger_event("sent", data)


class Connection:
    async def fetch(self, path: str) -> bytes:
        raise AssertionError("the real fetch must not run in these tests")


THIS = __name__


# --- async_patch as a decorator under pytest -------------------------------------------


@pytest.mark.asyncio
@async_patch(f"{THIS}.trigger_event", return_value="my response")
@async_patch(f"{THIS}.send_to_client")
async def test_async_patch_passes_mocks_first_and_fixtures_after(
    send_to_client: mock.AsyncMock, trigger_event: mock.AsyncMock, request: pytest.FixtureRequest
) -> None:
    assert isinstance(send_to_client, mock.AsyncMock)
    assert request.node.name.startswith("test_async_patch")  # a fixture, after the mocks
    assert await notify("data") == "my response"
    send_to_client.assert_awaited_once_with("MESSAGE", "data")
    trigger_event.assert_awaited_once_with("sent", "data")


@async_patch(f"{THIS}.send_to_client")
def test_async_patch_decorates_a_sync_test(send_to_client: mock.AsyncMock) -> None:
    asyncio.run(notify_without_event("x"))
    send_to_client.assert_awaited_once_with("MESSAGE", "x")


async def notify_without_event(data: str) -> None:
    await send_to_client("MESSAGE", data)


@pytest.mark.asyncio
@mock.patch(f"{THIS}.Connection")
@async_patch(f"{THIS}.send_to_client")
async def test_async_patch_stacks_with_unittest_mock_patch(
    send_to_client: mock.AsyncMock, connection_class: mock.MagicMock
) -> None:
    assert isinstance(connection_class, mock.MagicMock)
    assert isinstance(send_to_client, mock.AsyncMock)
    await notify_without_event("y")
    send_to_client.assert_awaited_once()


def test_async_patch_restores_the_target_after_the_test() -> None:
    original = send_to_client

    @async_patch(f"{THIS}.send_to_client")
    def patched(mocked: mock.AsyncMock) -> None:
        assert globals()["send_to_client"] is mocked
        raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        patched()
    assert globals()["send_to_client"] is original


# --- as context managers, start/stop ----------------------------------------------------


@pytest.mark.asyncio
async def test_async_patch_as_async_context_manager_restores_on_error() -> None:
    original = send_to_client
    with pytest.raises(ValueError, match="inside"):  # noqa: PT012
        async with async_patch(f"{THIS}.send_to_client") as mocked:
            assert globals()["send_to_client"] is mocked
            await notify_without_event("z")
            mocked.assert_awaited_once_with("MESSAGE", "z")
            raise ValueError("inside")
    assert globals()["send_to_client"] is original


@pytest.mark.asyncio
async def test_async_patch_as_sync_context_manager_and_side_effect() -> None:
    with (
        async_patch(f"{THIS}.send_to_client", side_effect=ConnectionResetError("gone")) as m,
        pytest.raises(ConnectionResetError, match="gone"),
    ):
        await notify_without_event("z")
    assert m.await_count == 1
    assert globals()["send_to_client"] is not m


@pytest.mark.asyncio
async def test_async_patch_object_start_and_stop() -> None:
    patcher = async_patch_object(Connection, "fetch", return_value=b"{}")
    assert isinstance(patcher, AsyncPatch)
    fetch = patcher.start()
    try:
        assert await Connection().fetch("/") == b"{}"
        fetch.assert_awaited_once_with("/")
    finally:
        patcher.stop()
    assert not isinstance(Connection.fetch, mock.AsyncMock)


def test_async_patch_names_the_mock_after_the_target() -> None:
    with async_patch(f"{THIS}.send_to_client") as mocked:
        assert "send_to_client" in repr(mocked)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("new", "with 'new' the patcher passes no mock to the test"),
        ("new_callable", "async_patch always makes an AsyncMock"),
        ("autospec", "autospec makes a function, not an AsyncMock"),
    ],
)
def test_async_patch_refuses_arguments_that_break_its_promise(argument: str, message: str) -> None:
    with pytest.raises(TypeError, match=rf"async_patch\(\) does not take '{argument}': {message}"):
        async_patch(f"{THIS}.send_to_client", **{argument: mock.AsyncMock})
    with pytest.raises(TypeError, match=r"async_patch_object\(\) does not take"):
        async_patch_object(Connection, "fetch", **{argument: mock.AsyncMock})


# --- under unittest, both as decorators of methods and of a class -----------------------

UNITTEST_MODULE = """
import unittest
from unittest import mock

from aiotestkit.mock import assert_all_awaited, async_patch


async def send_to_client(packet_type, packet_data):
    raise AssertionError("real send_to_client ran")


async def ping(data):
    await send_to_client("PONG", data)


async def forgets_to_await(data):
    send_to_client("PONG", data)


class TestMethods(unittest.IsolatedAsyncioTestCase):
    @async_patch(__name__ + ".send_to_client")
    async def test_async_method(self, send_to_client):
        await ping("data")
        send_to_client.assert_awaited_once_with("PONG", "data")

    @async_patch(__name__ + ".send_to_client")
    def test_sync_method(self, send_to_client):
        self.assertIsInstance(send_to_client, mock.AsyncMock)

    async def test_context_manager(self):
        async with async_patch(__name__ + ".send_to_client") as send_to_client:
            await ping("x")
        send_to_client.assert_awaited_once_with("PONG", "x")

    @async_patch(__name__ + ".send_to_client")
    async def test_forgotten_await(self, send_to_client):
        with self.assertWarnsRegex(RuntimeWarning, "was never awaited"):
            await forgets_to_await("x")
        with self.assertRaisesRegex(AssertionError, "never awaited: send_to_client"):
            assert_all_awaited(send_to_client)


@async_patch(__name__ + ".send_to_client")
class TestDecoratedClass(unittest.IsolatedAsyncioTestCase):
    async def test_one(self, send_to_client):
        await ping("one")
        send_to_client.assert_awaited_once_with("PONG", "one")

    async def test_two(self, send_to_client):
        await ping("two")
        send_to_client.assert_awaited_once_with("PONG", "two")
"""


def test_async_patch_under_python_m_unittest(tmp_path: Path) -> None:
    (tmp_path / "test_unittest_patch.py").write_text(textwrap.dedent(UNITTEST_MODULE))
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unittest", "-v", "test_unittest_patch"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 6 tests" in result.stderr
    assert "OK" in result.stderr


def test_async_patch_unittest_module_under_pytest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_unittest_patch=textwrap.dedent(UNITTEST_MODULE))
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=6)


def test_async_patch_pytest_fixtures_are_not_confused(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_fixture_patch="""
        import pytest
        from aiotestkit.mock import async_patch

        async def fetch():
            raise AssertionError("real fetch ran")

        @pytest.fixture
        def token():
            return "t0k"

        @pytest.mark.asyncio
        @async_patch(__name__ + ".fetch", return_value=b"ok")
        async def test_it(fetch, token, case_controlled_server):
            assert token == "t0k"
            assert case_controlled_server.port
            assert await fetch() == b"ok"
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=1)


def test_async_patch_in_auto_mode_with_parametrize(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_auto_patch="""
        import pytest
        from aiotestkit.mock import async_patch

        async def fetch(path):
            raise AssertionError("real fetch ran")

        @pytest.mark.parametrize("path", ["/a", "/b"])
        @async_patch(__name__ + ".fetch", return_value=b"ok")
        async def test_it(fetch, path, case_controlled_server_factory):
            assert await globals()["fetch"](path) == b"ok"
            fetch.assert_awaited_once_with(path)
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=2)


# --- awaitable and async context manager mocks --------------------------------------


async def fetch_text_with(session: Any, url: str) -> str:
    async with session.get(url) as response:
        return str(await response.text())


async def fetch_status_awaiting(session: Any, url: str) -> int:
    response = await session.get(url)
    try:
        return int(response.status)
    finally:
        response.release()


@pytest.mark.asyncio
async def test_awaitable_context_mock_stands_in_for_a_real_aiohttp_session() -> None:
    # First the real thing, over a real socket: both client styles work.
    async with CaseControlledTestServer() as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("/"))
        task = asyncio.create_task(fetch_text_with(session, url))
        server.send_response(await server.receive_request(), text="real")
        assert await task == "real"
        task2 = asyncio.create_task(fetch_status_awaiting(session, url))
        server.send_response(await server.receive_request(), status=204)
        assert await task2 == 204

    # Then the mock, for both styles.
    response = mock.MagicMock(status=204)
    response.text = mock.AsyncMock(return_value="mocked")
    fake_session = mock.MagicMock()
    fake_session.get.return_value = awaitable_context_mock(response)
    assert await fetch_text_with(fake_session, "https://api.example.com/") == "mocked"
    assert await fetch_status_awaiting(fake_session, "https://api.example.com/") == 204
    got = fake_session.get.return_value
    assert isinstance(got, AwaitableContextMock)
    got.__aenter__.assert_awaited_once()
    got.__aexit__.assert_awaited_once()
    got.on_await.assert_awaited_once()
    response.release.assert_called_once()


@pytest.mark.asyncio
async def test_plain_async_mock_fails_where_awaitable_context_mock_works() -> None:
    fake_session = mock.AsyncMock()
    # pytest-asyncio issue 794: session.get() returns a coroutine, which has no
    # __aenter__; the coroutine is then dropped unawaited, and Python warns.
    with pytest.warns(RuntimeWarning, match="was never awaited"):  # noqa: PT031
        # Python 3.11 says "does not support the asynchronous context manager protocol";
        # 3.10 looks up __aenter__ and raises AttributeError.
        no_protocol = (TypeError, "asynchronous context manager")
        if sys.version_info < (3, 11):
            no_protocol = (AttributeError, "__aenter__")
        with pytest.raises(no_protocol[0], match=no_protocol[1]):
            await fetch_text_with(fake_session, "https://api.example.com/")
        gc.collect()
    assert fake_session.get.call_count == 1
    assert fake_session.get.await_count == 0


@pytest.mark.asyncio
async def test_awaitable_context_mock_side_effect_raises_for_both_styles() -> None:
    fake_session = mock.MagicMock()
    fake_session.get.return_value = awaitable_context_mock(
        side_effect=aiohttp.ClientConnectionError("refused")
    )
    with pytest.raises(aiohttp.ClientConnectionError, match="refused"):
        await fetch_text_with(fake_session, "https://x.example/")
    with pytest.raises(aiohttp.ClientConnectionError, match="refused"):
        await fetch_status_awaiting(fake_session, "https://x.example/")


@pytest.mark.asyncio
async def test_awaitable_context_mock_default_value_and_errors_propagate() -> None:
    obj = awaitable_context_mock()
    assert await obj is obj.__aenter__.return_value
    with pytest.raises(KeyError):
        async with obj:
            raise KeyError("inside the block")
    assert isinstance(obj.anything, mock.MagicMock)
    assert not isinstance(obj.anything, AwaitableContextMock)


@pytest.mark.asyncio
async def test_async_context_mock_gives_itself_or_the_value() -> None:
    session = async_context_mock()
    async with session as got:
        assert got is session
    reader = object()
    async with async_context_mock(reader) as got:
        assert got is reader
    with pytest.raises(OSError, match="boom"):
        async with async_context_mock():
            raise OSError("boom")
    session.__aenter__.assert_awaited_once()
    session.__aexit__.assert_awaited_once()


@pytest.mark.asyncio
async def test_async_iterator_mock_yields_items_then_raises_an_exception_item() -> None:
    assert [x async for x in async_iterator_mock([1, 2, 3])] == [1, 2, 3]
    stream = async_iterator_mock([b"a", ConnectionResetError("peer reset")])
    received = []
    with pytest.raises(ConnectionResetError, match="peer reset"):  # noqa: PT012
        async for chunk in stream:
            received.append(chunk)
    assert received == [b"a"]
    assert stream.__anext__.await_count == 2
    exhausted = async_iterator_mock([])
    assert [x async for x in exhausted] == []
    with pytest.raises(StopAsyncIteration):
        await exhausted.__anext__()


# --- assert_all_awaited ---------------------------------------------------------------


async def forgets_to_await(data: str) -> None:
    send_to_client("PONG", data)  # type: ignore[unused-coroutine]  # the bug under test


@pytest.mark.asyncio
async def test_assert_all_awaited_passes_when_every_call_was_awaited() -> None:
    with async_patch(f"{THIS}.send_to_client") as mocked:
        await notify_without_event("a")
        await notify_without_event("b")
    assert_all_awaited(mocked)


@pytest.mark.asyncio
async def test_assert_all_awaited_names_the_calls_never_awaited() -> None:
    with async_patch(f"{THIS}.send_to_client") as mocked:
        await notify_without_event("awaited")
        # CPython drops the coroutine at once, so the warning comes here, deterministically
        with pytest.warns(RuntimeWarning, match="was never awaited"):
            await forgets_to_await("forgotten")
    mocked.assert_called_with("PONG", "forgotten")  # the usual check passes: the bug hides
    with pytest.raises(MockNotAwaited) as caught:
        assert_all_awaited(mocked)
    assert isinstance(caught.value, AssertionError)
    assert str(caught.value).startswith(
        "send_to_client was called 2 time(s) but awaited 1 time(s); "
        "never awaited: send_to_client('PONG', 'forgotten'). "
    )
    assert "missing an 'await'" in str(caught.value)


def test_assert_all_awaited_finds_async_children_of_a_magic_mock() -> None:
    client = mock.MagicMock(name="client")
    client.fetch = mock.AsyncMock()
    client.connect().send = mock.AsyncMock()
    client.close()
    coroutines = [client.fetch("/a", timeout=5), client.connect().send(b"x")]
    try:
        with pytest.raises(MockNotAwaited) as caught:
            assert_all_awaited(client)
    finally:
        for coroutine in coroutines:
            coroutine.close()  # never started: closing it keeps it from warning
    message = str(caught.value)
    assert "client.fetch was called 1 time(s) but awaited 0 time(s)" in message
    assert "client.fetch('/a', timeout=5)" in message
    assert "client.connect().send(b'x')" in message


def test_assert_all_awaited_refuses_what_is_not_a_mock() -> None:
    with pytest.raises(TypeError, match=r"takes unittest.mock mocks, got function as argument 2"):
        assert_all_awaited(mock.AsyncMock(), send_to_client)  # type: ignore[arg-type]


def test_assert_all_awaited_under_unittest_assert_raises() -> None:
    class Case(unittest.TestCase):
        def runTest(self) -> None:
            fetch = mock.AsyncMock(name="fetch")
            fetch("/").close()
            with self.assertRaisesRegex(AssertionError, r"fetch\('/'\)"):  # noqa: PT027
                assert_all_awaited(fetch)

    result = unittest.TestResult()
    Case().run(result)
    assert result.wasSuccessful(), result.failures + result.errors
