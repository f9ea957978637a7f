"""The pytest plugin, run through pytester as users run it."""

from __future__ import annotations

import sys

import pytest

INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

SEED_TEST = """
import asyncio
import pytest
from aiotestkit import CaseControlledTestServer

async def get_time(session):
    async with session.get("https://api.kraken.com/0/public/Time") as response:
        return (await response.json())["result"]["unixtime"]

{mark}
async def test_example(aiohttp_redirector):
    async with CaseControlledTestServer(scheme="https") as server:
        aiohttp_redirector.add_server("api.kraken.com", 443, server)
        task = asyncio.create_task(get_time(aiohttp_redirector.session))
        request = await server.receive_request()
        assert request.path_qs == "/0/public/Time"
        server.send_json(request, {{"error": [], "result": {{"unixtime": 1700000000}}}})
        assert await task == 1700000000
"""


@pytest.mark.parametrize(
    ("mode", "mark"), [("strict", "@pytest.mark.asyncio"), ("auto", "")], ids=["strict", "auto"]
)
def test_the_seed_test_runs_in_strict_and_auto_mode(
    pytester: pytest.Pytester, mode: str, mark: str
) -> None:
    pytester.makeini(INI.format(mode=mode))
    pytester.makepyfile(SEED_TEST.format(mark=mark))
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_plugin_is_registered_under_its_name(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="strict"))
    result = pytester.runpytest_subprocess("--fixtures")
    for fixture in (
        "aiohttp_redirector",
        "case_controlled_server_factory",
        "tls_certificate_authority",
    ):
        result.stdout.fnmatch_lines([f"{fixture}*"])
    disabled = pytester.runpytest_subprocess("-p", "no:aiotestkit", "--fixtures")
    assert "case_controlled_server_factory" not in disabled.stdout.str()


def test_servers_are_closed_after_a_failing_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(
        """
        import asyncio, aiohttp, pytest, warnings
        from aiotestkit import UnansweredRequestsWarning

        SERVERS = []

        @pytest.mark.asyncio
        async def test_fails(
            case_controlled_server, case_controlled_server_factory, aiohttp_redirector
        ):
            https = await case_controlled_server_factory(scheme="https")
            SERVERS.extend([case_controlled_server, https])
            SERVERS.append(aiohttp_redirector.session)
            assert https.scheme == "https"
            raise AssertionError("the test failed")

        def test_after():
            case_controlled, https, session = SERVERS
            assert case_controlled.closed and https.closed
            assert session.closed
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the test failed*"])


def test_unanswered_request_at_teardown_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto").replace("filterwarnings = error", ""))
    pytester.makepyfile(
        """
        import asyncio, aiohttp, pytest_asyncio

        @pytest_asyncio.fixture
        async def session():
            async with aiohttp.ClientSession() as session:
                yield session

        # The session is set up first, so it closes after the server: the request
        # is still pending when the server closes.
        async def test_forgets_to_answer(session, case_controlled_server):
            task = asyncio.create_task(session.post(case_controlled_server.make_url("/forgotten")))
            task.add_done_callback(lambda t: t.exception())
            await case_controlled_server.receive_request()
        """
    )
    result = pytester.runpytest_subprocess("-W", "default::aiotestkit.UnansweredRequestsWarning")
    # The hygiene checks (strict by default) make the forgotten request fail the test.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_forgets_to_answer*",
            "*HygieneError*",
            "*1 unanswered request(s): POST /forgotten*",
        ]
    )


def test_receive_timeout_fails_the_test_with_a_clear_message(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    pytester.makepyfile(
        """
        async def test_waits(case_controlled_server):
            await case_controlled_server.receive_request(timeout=0.01)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ReceiveTimeout: <CaseControlledTestServer http://127.0.0.1:*>"
            " received no request within 0.01 s*"
        ]
    )


def test_server_and_redirector_fixtures_need_an_async_test_and_name_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("fixture", [
            "case_controlled_server_factory", "case_controlled_server", "aiohttp_redirector",
            "case_controlled_stream_server_factory", "case_controlled_websocket_server",
        ])
        def test_sync(request, fixture):
            request.getfixturevalue(fixture)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=5)
    for fixture, test in (
        ("case_controlled_server_factory", "case_controlled_server_factory"),
        ("case_controlled_server", "case_controlled_server"),
        ("aiohttp_redirector", "aiohttp_redirector"),
        ("case_controlled_stream_server_factory", "case_controlled_stream_server_factory"),
        ("case_controlled_websocket_server", "case_controlled_websocket_server"),
    ):
        result.stdout.fnmatch_lines(
            [f"*the {fixture} fixture needs an asyncio test, but test_sync[[]{test}] is not one*"]
        )


def test_only_async_tests_get_the_instrumentation_first_of_their_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.format(mode="strict"))
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture(scope="session")
        def wide():
            return "session"

        @pytest.fixture
        def narrow(wide):
            return "function"
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        import pytest

        # pytest-asyncio's function-scoped loop starts the run in its set-up; a loop
        # of a wider scope is shared, so aiotestkit's fixture starts it.
        LOOP_FIXTURE = "_function_scoped_runner"
        INSTRUMENTATION = "_aiotestkit_test_run"

        def test_sync(request, narrow):
            assert not [name for name in request.fixturenames if "aiotestkit" in name]

        @pytest.mark.asyncio
        async def test_async(request, narrow, loop_instrumentation):
            names = request.fixturenames
            # After the session-scoped fixture, before every function-scoped one.
            assert names.index("wide") < names.index(LOOP_FIXTURE)
            assert names.index(LOOP_FIXTURE) < names.index("narrow")
            assert INSTRUMENTATION not in names
            assert loop_instrumentation.loop is asyncio.get_running_loop()

        @pytest.mark.asyncio(loop_scope="module")
        async def test_async_on_a_module_loop(request, narrow, loop_instrumentation):
            names = request.fixturenames
            assert names.index("wide") < names.index(INSTRUMENTATION)
            assert names.index(INSTRUMENTATION) < names.index("narrow")
            assert loop_instrumentation.loop is asyncio.get_running_loop()

        @pytest.mark.asyncio
        @pytest.mark.parametrize("clocked", [
            pytest.param(True, marks=pytest.mark.virtual_clock(autojump=False)), False
        ])
        async def test_markers_per_parameter(request, clocked):
            assert ("_aiotestkit_virtual_clock" in request.fixturenames) is clocked
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=5)


def test_loading_the_plugin_imports_no_server_sandbox_or_tls_stack(
    pytester: pytest.Pytester,
) -> None:
    code = (
        "import sys, aiotestkit, aiotestkit.pytest_plugin\n"
        "heavy = ('trustme', 'cryptography', 'aiohttp.web', 'aiotestkit._network',\n"
        "         'aiotestkit._servers', 'aiotestkit.testcase', 'aiotestkit._loop._clock')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
        "assert aiotestkit.NetworkSandbox.__module__ == 'aiotestkit'\n"
        "assert 'aiotestkit._network' in sys.modules and 'trustme' in sys.modules\n"
        "assert set(aiotestkit.__all__) <= set(dir(aiotestkit))\n"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["[[]]"])


def test_the_closest_marker_wins_across_function_class_and_module(
    pytester: pytest.Pytester,
) -> None:
    # Markers are read once per module and class and merged per test: a test's own
    # marker beats its class's, which beats its module's.
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(
        test_case="""
        import asyncio
        import pytest

        pytestmark = [pytest.mark.asyncio, pytest.mark.hygiene("off", reason="module")]


        async def test_module_says_off():
            asyncio.create_task(asyncio.sleep(10), name="module-leak")


        @pytest.mark.hygiene("strict")
        class TestStrict:
            async def test_class_says_strict(self):
                asyncio.create_task(asyncio.sleep(10), name="class-leak")

            @pytest.mark.hygiene("off", reason="function")
            async def test_function_says_off(self):
                asyncio.create_task(asyncio.sleep(10), name="function-leak")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of TestStrict.test_class_says_strict*"])
    result.stdout.fnmatch_lines(["*Task 'class-leak'*"])
    result.stdout.no_fnmatch_line("*module-leak*")
    result.stdout.no_fnmatch_line("*function-leak*")
