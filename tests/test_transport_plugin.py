"""The transport fixture, marker and ini option, through pytester."""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
{extra}
"""

ECHO = """
import asyncio
import os
import pytest

pytestmark = pytest.mark.asyncio

async def echo(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()
"""


def run(pytester: pytest.Pytester, source: str, extra_ini: str = "") -> pytest.RunResult:
    pytester.makeini(INI.format(extra=extra_ini))
    pytester.makepyfile(test_it=ECHO + source)
    return pytester.runpytest("-v", "-p", "no:cacheprovider")


def test_each_test_runs_once_per_transport(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
async def test_echo(transport):
    reader, writer = await transport.start_server_and_connect(echo)
    writer.write(b"hi\\n")
    assert await reader.readline() == b"hi\\n"
""",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_echo[[]tcp[]] PASSED*",
            "*test_echo[[]tls[]] PASSED*",
            "*test_echo[[]unix[]] PASSED*",
        ]
    )


def test_ini_option_sets_the_default_transports(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
async def test_echo(transport):
    assert transport.name in ("unix", "tls")

@pytest.mark.transports("tcp")
async def test_marker_wins(transport):
    assert transport.name == "tcp"
""",
        extra_ini="aiotestkit_transports = unix tls",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_echo[[]unix[]]*", "*test_echo[[]tls[]]*"])


def test_unknown_transport_in_marker_is_a_collection_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.transports("tcp", "udp")
async def test_it(transport):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.transports: unknown transport 'udp'; choose from tcp, tls, unix*"]
    )


def test_unknown_transport_in_ini_is_a_collection_error(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        "async def test_it(transport):\n    pass\n",
        extra_ini="aiotestkit_transports = tcp sctp",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ini option aiotestkit_transports: unknown transport 'sctp'*"])


def test_handler_error_fails_the_test_with_its_traceback(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
async def bad_handler(reader, writer):
    await reader.readline()
    raise RuntimeError("handler blew up on purpose")

@pytest.mark.transports("tcp", "unix")
async def test_it(transport):
    reader, writer = await transport.start_server_and_connect(bad_handler)
    writer.write(b"x\\n")
    assert await reader.read() == b""
""",
    )
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_it[[]tcp[]]*",
            "*HandlerError: 1 server handler failure(s) on <TransportContext tcp tcp://127.0.0.1:*",
            "*bad_handler() raised RuntimeError('handler blew up on purpose')*",
            '*raise RuntimeError("handler blew up on purpose")*',
        ]
    )


def test_failing_test_still_closes_everything(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import asyncio
seen = {}

async def test_fails(transport):
    reader, writer = await transport.start_server_and_connect(echo)
    seen[transport.name] = (transport.address, writer)
    assert False, "the test failed half-way"

async def test_after(transport):
    address, writer = seen[transport.name]
    assert writer.transport.is_closing()
    if transport.name == "unix":
        assert not os.path.exists(address)
    assert len(asyncio.all_tasks()) == 1
""",
    )
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines(["*AssertionError: the test failed half-way*"])


FACTORY_TEST = """
import asyncio
import os
import pytest

pytestmark = pytest.mark.asyncio
seen = []

async def test_fails(case_controlled_stream_server_factory):
    server = await case_controlled_stream_server_factory(transport="unix")
    reader, writer = await asyncio.open_unix_connection(server.path)
    connection = await server.receive_connection()
    await connection.close()
    writer.close()
    seen.append(server)
    assert False, "failed with the server open"

async def test_after():
    (server,) = seen
    assert server.closed
    assert not os.path.exists(server.path)
    assert len(asyncio.all_tasks()) == 1
"""


def test_factory_closes_servers_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(test_it=FACTORY_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: failed with the server open*"])


def test_a_project_fixture_named_transport_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def transport():
    return "the project's own"
"""
    )
    result = run(
        pytester,
        """
async def test_it(transport):
    assert transport == "the project's own"
""",
    )
    result.assert_outcomes(passed=1)


def test_dynamic_request_of_the_fixture_explains_itself(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.fixture
def indirect(request):
    return request.getfixturevalue("transport")

async def test_it(indirect):
    pass
""",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the 'transport' fixture is parametrized when tests are*"])


WEBSOCKET_FACTORY_TEST = """
import asyncio
import aiohttp
import pytest

pytestmark = pytest.mark.asyncio
seen = []

async def test_fails(case_controlled_websocket_server_factory):
    first = await case_controlled_websocket_server_factory()
    second = await case_controlled_websocket_server_factory()
    seen.extend([first, second])
    async with aiohttp.ClientSession() as session:
        for server in (first, second):
            task = asyncio.create_task(session.ws_connect(server.make_ws_url("/left-open")))
            await (await server.receive_connection()).accept()
            seen.append(await task)
        assert False, "failed with two connections open"

async def test_after():
    first, second, ws_one, ws_two = seen
    assert first.closed and second.closed
    for server in (first, second):
        (connection,) = server.connections
        assert connection.close_code is not None  # the connection ended
    assert len(asyncio.all_tasks()) == 1
"""


def test_websocket_factory_closes_every_server_after_a_failing_test(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(test_it=WEBSOCKET_FACTORY_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*HygieneError: test_it.py::test_fails left 2 hygiene problem(s) behind:",
            "*requests and connections the test never answered (unanswered_requests, 2):",
            "*- <CaseControlledWebSocketServer ws://127.0.0.1:*> closed with 1 unfinished"
            " WebSocket connection(s): #1 /left-open (left open). The open ones got a close"
            " frame (1001, going away)*",
            "*AssertionError: failed with two connections open*",
        ]
    )
