"""Strictness of expectations: the hygiene report users read, and its opt-outs, via pytester."""

from __future__ import annotations

import textwrap

import pytest

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

STRICTNESS_CASES = """
import aiohttp
import pytest

from aiotestkit import CaseControlledTestServer

pytestmark = pytest.mark.asyncio


async def leave_one_unused():
    async with CaseControlledTestServer() as server:
        server.expect("POST", "/oauth/token").respond(json={})


async def send_one_unexpected():
    async with aiohttp.ClientSession() as session:
        async with CaseControlledTestServer() as server:
            server.expect("GET", "/items", times=None, optional=True).respond(json=[])
            async with session.get(server.make_url("/items")):
                pass
            # Held for a receive_request() that never comes, until the client gives up
            # (on the virtual clock: at once).
            with pytest.raises(asyncio.TimeoutError):
                await session.get(server.make_url("/itemz"), timeout=aiohttp.ClientTimeout(5))


async def test_unused():
    await leave_one_unused()


@pytest.mark.hygiene(allow=["unused_expectations"], reason="declared for a later test")
async def test_unused_allowed():
    await leave_one_unused()


@pytest.mark.virtual_clock
async def test_unexpected():
    await send_one_unexpected()


@pytest.mark.virtual_clock
@pytest.mark.hygiene(allow=["unexpected_requests"], reason="the client probes")
async def test_unexpected_allowed():
    await send_one_unexpected()


async def test_left_open():
    server = CaseControlledTestServer()
    await server.start_server()
    server.expect("GET", "/a").respond()
    SERVERS.append(server)  # left open: the probe asks it at the end of the test


SERVERS = []
"""


def test_strictness_fails_the_test_through_the_hygiene_report(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_case="import asyncio\n" + STRICTNESS_CASES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unused*",
            "*test_case.py::test_unused left 1 hygiene problem(s) behind:",
            "*expectations used fewer times than declared (unused_expectations, 1):",
            "*- <CaseControlledTestServer http://127.0.0.1:*> closed with 1 unused "
            "expectation(s):",
            "*POST /oauth/token: used 0 time(s), expected 1 time(s)*",
            "*fix: check the client made the calls the test declared*",
            "*@pytest.mark.hygiene(allow=?'unused_expectations'?, reason='...')*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_unexpected*",
            "*requests that matched no expectation and that the test never received "
            "(unexpected_requests, 1):",
            "*GET /itemz; closest expectations:",
            "*GET /items: path: expected '/items', got '/itemz'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_left_open*",
            "*<CaseControlledTestServer http://127.0.0.1:*> was still open at the end of the "
            "test with 1 unused expectation(s):",
        ]
    )
    assert "unanswered_requests" not in result.stdout.str()


def test_without_the_hygiene_checks_close_warns(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_case=textwrap.dedent(
            """
        import pytest

        from aiotestkit import CaseControlledTestServer, UnusedExpectationsWarning


        @pytest.mark.asyncio
        async def test_unused():
            server = CaseControlledTestServer()
            await server.start_server()
            server.expect("GET", "/a").respond()
            with pytest.warns(UnusedExpectationsWarning, match=r"GET /a: used 0 time"):
                await server.close()
        """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:aiotestkit")
    result.assert_outcomes(passed=1)
