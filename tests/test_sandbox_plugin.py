"""The network_sandbox fixture, marker and ini option, through pytester."""

from __future__ import annotations

import pytest

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
{extra}
"""


def make_ini(pytester: pytest.Pytester, extra: str = "") -> None:
    pytester.makefile(".ini", pytest=INI.format(extra=extra))


def test_fixture_routes_and_passes_when_nothing_is_refused(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import aiohttp
        import pytest
        from aiotestkit import CaseControlledTestServer

        @pytest.mark.asyncio
        async def test_routed(network_sandbox):
            async with CaseControlledTestServer() as server:
                await network_sandbox.route("api.example.com", 443, server)
                async with aiohttp.ClientSession() as session:
                    task = asyncio.create_task(session.get("https://api.example.com/"))
                    request = await server.receive_request()
                    server.send_response(request, text="ok")
                    (await task).release()
                assert request.secure
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_refused_attempts_fail_the_test_at_teardown_listing_each(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import aiohttp
        import pytest

        @pytest.mark.asyncio
        async def test_swallows_errors(network_sandbox):
            for url in ("https://api.example.com/", "http://cdn.example.org:8080/"):
                try:
                    async with aiohttp.ClientSession() as session:
                        await session.get(url)
                except aiohttp.ClientError:
                    pass  # the client library swallows it
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_swallows_errors*",
            "*HygieneError: *test_swallows_errors left 2 hygiene problem(s) behind:",
            "*network access refused by the sandbox (refused_connections, 2):",
            "*  - name resolution of api.example.com refused by the network sandbox: no test "
            "server is routed for it; route a test server for it with "
            "`await sandbox.route('api.example.com', 443, server)`",
            "*  - name resolution of cdn.example.org refused by the network sandbox:*"
            "`await sandbox.route('cdn.example.org', 8080, server)`",
            "*fix: route the host to a test server*sandbox.expect_blocked(host, port)*",
        ]
    )


def test_refused_attempts_can_be_allowed_like_any_hygiene_check(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import aiohttp
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.hygiene(allow=["refused_connections"], reason="telemetry is best effort")
        async def test_swallows_errors(network_sandbox):
            try:
                async with aiohttp.ClientSession() as session:
                    await session.get("https://telemetry.example.com/")
            except aiohttp.ClientError:
                pass
            assert [a.host for a in network_sandbox.blocked] == ["telemetry.example.com"]
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_allow_blocked_marker_and_expect_blocked_opt_out(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import socket
        import pytest

        async def lookup(host):
            with pytest.raises(socket.gaierror):
                await asyncio.get_running_loop().getaddrinfo(host, 443)

        @pytest.mark.asyncio
        @pytest.mark.network_sandbox(allow_blocked=True)
        async def test_marker(network_sandbox):
            await lookup("api.example.com")
            assert len(network_sandbox.blocked) == 1

        @pytest.mark.asyncio
        async def test_expected(network_sandbox):
            network_sandbox.expect_blocked("api.example.com", 443)
            await lookup("api.example.com")
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_marker_alone_puts_a_test_in_the_sandbox(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import socket
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.network_sandbox(allow_blocked=True)
        async def test_marked():
            with pytest.raises(socket.gaierror, match="refused by the network sandbox"):
                await asyncio.get_running_loop().getaddrinfo("api.example.com", 443)
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_ini_option_sandboxes_every_async_test_and_the_marker_turns_it_off(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester, "aiotestkit_network_sandbox = true")
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        import pytest_asyncio

        def patched():
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            return lookup.__func__ is not asyncio.BaseEventLoop.getaddrinfo

        @pytest.mark.asyncio
        async def test_sandboxed():
            assert patched()

        @pytest.mark.asyncio
        @pytest.mark.network_sandbox(enabled=False)
        async def test_not_sandboxed():
            assert not patched()

        def test_sync_tests_are_left_alone(request):
            assert "network_sandbox" not in request.fixturenames

        @pytest.mark.asyncio
        async def test_escape_fails_the_test():
            try:
                await asyncio.open_connection("api.example.com", 443)
            except OSError:
                pass

        @pytest_asyncio.fixture
        async def remote_config():
            # fixtures run inside the sandbox too: it is set up first
            try:
                await asyncio.get_running_loop().getaddrinfo("config.example.com", 443)
            except OSError as error:
                return str(error)

        @pytest.mark.asyncio
        async def test_fixture_is_sandboxed(remote_config):
            assert "config.example.com refused by the network sandbox" in remote_config
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=5, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR*test_escape_fails_the_test*",
            "*ERROR*test_fixture_is_sandboxed*",
        ]
    )


def test_ini_option_sandboxes_a_test_once_also_with_a_fixture_named_network_sandbox(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester, "aiotestkit_network_sandbox = true")
    pytester.makepyfile(
        test_theirs="""
        import asyncio
        import pytest

        @pytest.fixture
        def network_sandbox():
            return "the project's own"

        @pytest.mark.asyncio
        async def test_projects_own_fixture_and_the_ini_options_sandbox(network_sandbox):
            assert network_sandbox == "the project's own"
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is not asyncio.BaseEventLoop.getaddrinfo
        """,
        test_ours="""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_ours_is_the_only_sandbox(request, network_sandbox):
            assert "_aiotestkit_network_sandbox" not in request.fixturenames
            try:
                await asyncio.open_connection("api.example.com", 443)
            except OSError:
                pass
        """,
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    # One sandbox: one report, with the refused connection listed once.
    output = result.stdout.str()
    assert output.count("ERROR at teardown of test_ours_is_the_only_sandbox") == 1, output
    result.stdout.fnmatch_lines(
        ["*(refused_connections, 1):", "*- connection to api.example.com:443 *"]
    )


def test_without_ini_option_async_tests_are_not_sandboxed(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_plain():
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is asyncio.BaseEventLoop.getaddrinfo
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_everything_is_restored_after_a_failing_and_a_cancelled_test(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import ssl
        import pytest
        from aiohttp.resolver import AsyncResolver
        from aiotestkit import NetworkSandbox

        ORIGINAL = (ssl.SSLContext.__dict__["wrap_bio"], AsyncResolver.__dict__["resolve"])

        @pytest.mark.asyncio
        async def test_1_fails(network_sandbox):
            assert False, "the test fails"

        @pytest.mark.asyncio
        async def test_2_cancelled(network_sandbox):
            asyncio.current_task().cancel()
            await asyncio.sleep(0)

        @pytest.mark.asyncio
        async def test_3_restored():
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is asyncio.BaseEventLoop.getaddrinfo
            assert ssl.SSLContext.__dict__["wrap_bio"] is ORIGINAL[0]
            assert AsyncResolver.__dict__["resolve"] is ORIGINAL[1]
            async with NetworkSandbox():
                pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)


def test_fixture_with_the_marker_turning_it_off_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.network_sandbox(enabled=False)
        async def test_contradiction(network_sandbox):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*uses the network_sandbox fixture but is marked network_sandbox(enabled=False)*"]
    )


def test_marker_with_unknown_arguments_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.network_sandbox(allow=True)
        async def test_typo():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stderr.fnmatch_lines(
        [
            "*@pytest.mark.network_sandbox takes only the keyword arguments enabled= and "
            "allow_blocked=*"
        ]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_ini_option_in_auto_mode_and_unittest_cases_are_left_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".ini",
        pytest=INI.format(extra="aiotestkit_network_sandbox = true").replace(
            "asyncio_mode = strict", "asyncio_mode = auto"
        ),
    )
    pytester.makepyfile(
        """
        import asyncio
        import unittest

        import aiotestkit._network._sandbox

        async def test_auto_mode_test_is_sandboxed():
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is not asyncio.BaseEventLoop.getaddrinfo

        class TestCase(unittest.IsolatedAsyncioTestCase):
            async def test_unittest_case_is_not(self):
                # no sandbox at all, not even one on another loop
                assert aiotestkit._network._sandbox._active is None
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_test_on_a_wider_loop_scope_is_sandboxed_on_that_loop(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester, "aiotestkit_network_sandbox = true")
    pytester.makepyfile(
        """
        import asyncio

        import pytest
        from aiotestkit import NetworkAccessDenied

        @pytest.mark.asyncio(loop_scope="module")
        @pytest.mark.network_sandbox(allow_blocked=True)
        async def test_module_loop():
            with pytest.raises(NetworkAccessDenied):
                await asyncio.open_connection("api.example.com", 443)

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_loop_sandbox_fixture(network_sandbox):
            assert network_sandbox.blocked == []

        @pytest.mark.asyncio(loop_scope="module")
        @pytest.mark.network_sandbox(enabled=False)
        async def test_module_loop_opted_out():
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is asyncio.BaseEventLoop.getaddrinfo
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_fixture_stays_on_the_tests_loop_with_a_wider_default_fixture_loop_scope(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".ini",
        pytest=INI.format(extra="").replace(
            "asyncio_default_fixture_loop_scope = function",
            "asyncio_default_fixture_loop_scope = module",
        ),
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_same_loop(network_sandbox):
            lookup = asyncio.get_running_loop().getaddrinfo  # the sandbox's, or the loop's own
            assert lookup.__func__ is not asyncio.BaseEventLoop.getaddrinfo
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_forgotten_route_fails_the_wait_at_once_and_stays_in_the_report(
    pytester: pytest.Pytester,
) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import aiohttp
        import pytest

        @pytest.mark.asyncio
        async def test_forgot_the_route(network_sandbox, case_controlled_server):
            async with aiohttp.ClientSession() as session:
                task = asyncio.create_task(session.get("https://api.example.com/v1"))
                try:
                    await case_controlled_server.receive_request(timeout=60)
                finally:
                    await asyncio.gather(task, return_exceptions=True)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_forgot_the_route*",
            "*network access refused by the sandbox (refused_connections, 1):",
            "*  - name resolution of api.example.com refused by the network sandbox:*",
            "*FAILURES*",
            "*BlockedWhileWaiting: the wait for a test server's client (at most 60 s) ended "
            "at once: name resolution of api.example.com refused by the network sandbox: no "
            "test server is routed for it; route a test server for it with "
            "`await sandbox.route('api.example.com', 443, server)`. The client the test waits "
            "for most likely got this refusal instead of reaching the server",
        ]
    )


def test_tls_sent_to_a_plain_route_is_in_the_report(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import ssl
        import pytest

        @pytest.mark.asyncio
        async def test_tls_to_plain(network_sandbox, case_controlled_stream_server_factory):
            server = await case_controlled_stream_server_factory()
            await network_sandbox.route("redis.example.com", 6380, server)
            task = asyncio.create_task(asyncio.open_connection(
                "redis.example.com", 6380, ssl=ssl.create_default_context()))
            connection = await server.receive_connection()
            assert (await connection.receive())[:1] == b"\\x16"
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await connection.close()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*network access refused by the sandbox (refused_connections, 1):",
            "*  - a client sent a TLS ClientHello to <CaseControlledStreamServer tcp://*>, "
            "which expects plain bytes: the client speaks TLS here; route with tls=True",
        ]
    )


def test_refusals_in_worker_threads_fail_the_test_at_teardown(pytester: pytest.Pytester) -> None:
    make_ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import requests

        def fetch():
            try:
                requests.get("https://telemetry.example.com/v1/events", timeout=5)
            except requests.ConnectionError:
                pass  # the SDK swallows it

        @pytest.mark.asyncio
        async def test_sdk_in_a_thread(network_sandbox):
            await asyncio.to_thread(fetch)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*HygieneError: *test_sdk_in_a_thread left 1 hygiene problem(s) behind:",
            "*network access refused by the sandbox (refused_connections, 1):",
            "*  - name resolution of telemetry.example.com refused by the network sandbox: no "
            "test server is routed for it; route a test server for it with "
            "`await sandbox.route('telemetry.example.com', 443, server)`",
        ]
    )
