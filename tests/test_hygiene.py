"""Hygiene checks and the hang guard, through pytester: the reports users read."""

from __future__ import annotations

import asyncio
import math
import signal
import textwrap
import threading
import time
import warnings

import pytest

from aiotestkit import (
    CaseControlledTestServer,
    HangTimeout,
    HygieneError,
    HygieneWarning,
    LoopInstrumentation,
)
from aiotestkit._loop import _hang_guard, register_probe, report_issue

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    default
{extra}
"""

HEADER = """
import asyncio
import socket

import aiohttp
import pytest
import pytest_asyncio

from aiotestkit import CaseControlledTestServer

pytestmark = pytest.mark.asyncio


async def sleeper():
    await asyncio.sleep(3600)


async def boom():
    raise ValueError("boom 42")


@pytest.mark.asyncio
async def test_clean():
    task = asyncio.create_task(sleeper())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
"""


def run(pytester: pytest.Pytester, body: str, *args: str, ini: str = "") -> pytest.RunResult:
    pytester.makeini(INI.format(extra=ini))
    pytester.makepyfile(test_case=HEADER + textwrap.dedent(body))
    # The inner tests leak on purpose: in a process of their own, so that what they leak
    # is collected (and warns) there, not in whichever outer test runs next.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return result


def assert_leak_fails(result: pytest.RunResult, *lines: str) -> None:
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leak*", *lines])


def test_pending_task_fails_naming_where_it_was_created_and_waits(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)
        """,
    )
    assert_leak_fails(
        result,
        "*HygieneError: test_case.py::test_leak left 1 hygiene problem(s) behind:",
        "*tasks still pending when the test ended (pending_tasks, 1):",
        "*Task 'poller' running sleeper(), created at test_case.py:* in test_leak",
        "*waiting at:",
        "*test_case.py:* in sleeper: await asyncio.sleep(3600)",
        "*fix: await or cancel every task*",
        "*@pytest.mark.hygiene(allow=?'pending_tasks'?, reason='...')*",
    )


def test_task_exception_never_retrieved_fails(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(boom())
            await asyncio.sleep(0.01)
        """,
    )
    assert_leak_fails(
        result,
        "*exceptions that no one retrieved (unretrieved_exceptions, 1):",
        "*Task exception was never retrieved",
        "*in Task * running boom(), created at test_case.py:* in test_leak",
        "*ValueError: boom 42",
    )


def test_exception_in_callback_fails(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.get_running_loop().call_soon(lambda: 1 / 0)
            await asyncio.sleep(0)
        """,
    )
    assert_leak_fails(
        result, "*Exception in callback test_leak.<locals>.<lambda>*", "*ZeroDivisionError*"
    )


def test_exception_in_aiohttp_server_handler_fails(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from aiohttp import web
        from aiohttp.test_utils import RawTestServer

        async def handler(request):
            raise KeyError("handler bug")

        async def test_leak():
            async with RawTestServer(handler) as server, aiohttp.ClientSession() as session:
                async with session.get(server.make_url("/")) as response:
                    assert response.status == 500
        """,
    )
    assert_leak_fails(
        result, "*aiohttp server: Error handling request*", "*KeyError: 'handler bug'"
    )


def test_a_request_the_server_cannot_parse_is_not_an_unretrieved_exception(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        from aiohttp.test_utils import RawTestServer

        async def handler(request):
            raise AssertionError("never called: the request does not parse")

        async def test_clean():
            async with RawTestServer(handler) as server:
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(b"GET / HTTP/1.1\\r\\nX-Big: " + b"x" * 70000 + b"\\r\\n\\r\\n")
                status_line = await reader.readline()
                writer.close()
                await writer.wait_closed()
            assert status_line.split()[1].startswith(b"4")
        """,
    )
    result.assert_outcomes(passed=1)


def test_coroutine_never_awaited_fails(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            sleeper()
        """,
    )
    assert_leak_fails(
        result,
        "*coroutines that were never awaited (unawaited_coroutines, 1):",
        "*coroutine 'sleeper' was never awaited (at test_case.py:*)",
        "*fix: add the missing 'await'*",
    )


def test_unclosed_client_session_fails_once_naming_it(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            aiohttp.ClientSession()
        """,
    )
    assert_leak_fails(
        result,
        "*resources that were never closed (unclosed_resources, 1):",
        "*Unclosed client session <aiohttp.client.ClientSession object at *>",
    )


def test_unclosed_socket_transport_and_server_fail(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            socket.socket()
        """,
    )
    assert_leak_fails(result, "*resources that were never closed (unclosed_resources, *")
    result.stdout.fnmatch_lines(["*unclosed <socket.socket fd=*laddr=('0.0.0.0', 0)>"])
    result.stdout.fnmatch_lines(
        [
            "*server still listening on ('127.0.0.1', *): <Server *",
            "*created at test_case.py:* in test_leak",
        ]
    )
    # "unclosed transport <...>", or from Python 3.13 the StreamWriter that closes it
    # when finalized: "unclosed <StreamWriter transport=<_SelectorSocketTransport ...>>".
    result.stdout.fnmatch_lines(["*unclosed *<_SelectorSocketTransport*"])


# An unanswered request failing the test: tests/test_servers_core.py, beside an
# unfinished stream connection and an unfinished WebSocket connection.


def test_server_left_open_with_a_request_reports_both(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            server = CaseControlledTestServer()
            await server.start_server()
            session = aiohttp.ClientSession()
            task = asyncio.create_task(session.get(server.make_url("/held")))
            await server.receive_request()
            pytest.leak = (server, session, task)
        """,
        "-W",
        "ignore::pytest.PytestUnraisableExceptionWarning",
    )
    result.stdout.fnmatch_lines(
        [
            "*<CaseControlledTestServer http://127.0.0.1:*> was never closed; use 'async with'*",
            "*<CaseControlledTestServer http://127.0.0.1:*> was still open at the end of the test"
            " with 1 unanswered request(s): GET /held. Answer each request*",
        ]
    )


def test_warn_mode_passes_and_shows_the_warning(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)
        """,
        ini="aiotestkit_hygiene = warn",
    )
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(
        ["*HygieneWarning: test_case.py::test_leak left 1 hygiene problem(s) behind:*"]
    )


def test_per_check_override_in_the_ini(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(sleeper(), name="poller")
            sleeper()
            await asyncio.sleep(0)
        """,
        ini="aiotestkit_hygiene_checks =\n    pending_tasks = off\n    unawaited_coroutines=warn",
    )
    result.assert_outcomes(passed=2, warnings=1)
    result.stdout.fnmatch_lines(["*coroutine 'sleeper' was never awaited*"])
    result.stdout.no_fnmatch_line("*poller*")


def test_off_leaves_the_leaks_to_pytest(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)
        """,
        ini="aiotestkit_hygiene = off",
    )
    result.assert_outcomes(passed=2)


def test_marker_allows_a_known_leak_with_a_reason(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.hygiene(allow=["pending_tasks"], reason="the poller is known to leak")
        async def test_allowed():
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)

        @pytest.mark.hygiene(allow=["pending_tasks"], reason="only tasks")
        async def test_leak():
            sleeper()
        """,
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leak*", "*never awaited*"])


def test_marker_needs_a_reason_and_known_checks(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.hygiene(allow=["pending_tasks"])
        async def test_no_reason():
            pass

        @pytest.mark.hygiene(allow=["pending"], reason="typo")
        async def test_typo():
            pass
        """,
    )
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*allowing a hygiene problem needs a reason; add reason=*",
            "*unknown hygiene check 'pending'; the checks are pending_tasks, *",
        ],
        consecutive=False,
    )


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run(pytester, "", ini="aiotestkit_hygiene = loud")
    result.stderr.fnmatch_lines(
        ["*aiotestkit_hygiene*hygiene mode must be one of strict, warn, off; got 'loud'"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_hang_guard_fails_the_test_with_every_task_stack(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.hang_timeout(0.3)
        async def test_hangs():
            helper = asyncio.create_task(sleeper(), name="helper")
            try:
                await asyncio.Event().wait()
            finally:
                helper.cancel()
        """,
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*HangTimeout: test_case.py::test_hangs still ran after 0.3 s, so the hang guard"
            " cancelled it.*",
            "*Tasks on the loop (2):*",
            # Python 3.13.0 names a task made by a task factory 'None', not 'Task-<n>'.
            "*Task '*' running test_hangs(), the task test_case.py::test_hangs runs in",
            "*test_case.py:* in test_hangs: await asyncio.Event().wait()*",
            "*Task 'helper' running sleeper(), created at test_case.py:* in test_hangs*",
        ],
        consecutive=False,
    )


def test_hang_guard_ini_limit(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_hangs():
            await asyncio.sleep(3600)
        """,
        ini="aiotestkit_hang_timeout = 0.2",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*still ran after 0.2 s*"])


@pytest.mark.parametrize("scope", ["module", "session"])
def test_wider_loop_scopes_blame_the_right_test(pytester: pytest.Pytester, scope: str) -> None:
    result = run(
        pytester,
        f"""
        @pytest_asyncio.fixture(loop_scope="{scope}", scope="{scope}")
        async def background():
            task = asyncio.create_task(sleeper(), name="fixture-owned")
            yield task
            task.cancel()

        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_before(background):
            await asyncio.sleep(0)

        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_leak(background):
            asyncio.create_task(sleeper(), name="leaked")
            await asyncio.sleep(0)

        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_after(background):
            assert all(t.get_name() != "leaked" for t in asyncio.all_tasks())
        """,
    )
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leak*", "*Task 'leaked'*"])
    result.stdout.no_fnmatch_line("*fixture-owned*")


def test_loop_instrumentation_fixture_takes_extensions(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        events = []

        class Recorder:
            def __init__(self, name):
                self.name = name

            def attach(self, loop):
                events.append(("attach", self.name, loop is asyncio.get_event_loop_policy()
                               .get_event_loop() or True))

            def detach(self, loop):
                events.append(("detach", self.name))

        async def test_one(loop_instrumentation):
            loop_instrumentation.add_extension(Recorder("a"))
            loop_instrumentation.add_extension(Recorder("b"))
            assert [e[:2] for e in events] == [("attach", "a"), ("attach", "b")]

        def test_order():
            assert [e[:2] for e in events][2:] == [("detach", "b"), ("detach", "a")]
        """,
    )
    result.assert_outcomes(passed=3)


# -- the library API, for unittest users and others --------------------------------


@pytest.mark.asyncio
async def test_library_api_raises_hygiene_error_for_strict_checks() -> None:
    async with LoopInstrumentation(name="inner") as instrumentation:
        leaked = asyncio.create_task(asyncio.sleep(3600), name="inner-leak")
        await asyncio.sleep(0)
    assert leaked.cancelled()
    with pytest.raises(HygieneError, match=r"(?s)inner left 1 hygiene.*Task 'inner-leak'") as info:
        instrumentation.check()
    assert isinstance(info.value, AssertionError)
    assert info.value.report is instrumentation.report
    assert [issue.check for issue in instrumentation.report.issues] == ["pending_tasks"]


@pytest.mark.asyncio
async def test_library_api_warns_and_restores_the_loop() -> None:
    loop = asyncio.get_running_loop()
    handler, factory = loop.get_exception_handler(), loop.get_task_factory()
    async with LoopInstrumentation(checks="warn", hang_timeout=None) as instrumentation:
        assert loop.get_exception_handler() is not handler
        loop.call_soon(lambda: 1 / 0)
        await asyncio.sleep(0)
    assert loop.get_exception_handler() is handler
    assert loop.get_task_factory() is factory
    with pytest.warns(HygieneWarning, match="ZeroDivisionError"):
        instrumentation.check()


@pytest.mark.asyncio
async def test_library_api_extensions_attach_in_order_and_always_detach() -> None:
    events: list[str] = []

    class Extension:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def attach(self, loop: asyncio.AbstractEventLoop) -> None:
            events.append(f"attach {self.name}")

        def detach(self, loop: asyncio.AbstractEventLoop) -> None:
            events.append(f"detach {self.name}")
            if self.fail:
                raise RuntimeError("detach failed")

    factory = asyncio.get_running_loop().get_task_factory()
    instrumentation = LoopInstrumentation(extensions=[Extension("a"), Extension("b", fail=True)])
    with pytest.raises(RuntimeError, match="detach failed"):
        async with instrumentation:
            pass
    assert events == ["attach a", "attach b", "detach b", "detach a"]
    assert asyncio.get_running_loop().get_task_factory() is factory


@pytest.mark.asyncio
async def test_library_api_hang_guard_cancels_the_guarded_task() -> None:
    async with LoopInstrumentation(hang_timeout=None) as instrumentation:
        task = asyncio.create_task(asyncio.Event().wait(), name="stuck")
        instrumentation.start_hang_guard(0.1, task=task)
        with pytest.raises(asyncio.CancelledError):
            await task
        error = instrumentation.stop_hang_guard()
    assert isinstance(error, HangTimeout)
    assert "Task 'stuck'" in str(error)
    instrumentation.check()


@pytest.mark.asyncio
async def test_hang_report_names_the_test_that_checked_nothing_as_a_tasks_creator() -> None:
    # A loop shared by two tests: the first checks nothing, so where it created its
    # task is not recorded; the second's hang report still says whose task it is.
    async with LoopInstrumentation(checks="off", name="test_first"):
        leftover = asyncio.create_task(asyncio.Event().wait(), name="leftover")
    async with LoopInstrumentation(hang_timeout=None, name="test_second") as instrumentation:
        task = asyncio.create_task(asyncio.Event().wait(), name="stuck")
        instrumentation.start_hang_guard(0.1, task=task)
        with pytest.raises(asyncio.CancelledError):
            await task
        error = instrumentation.stop_hang_guard()
    leftover.cancel()
    assert isinstance(error, HangTimeout)
    text = str(error)
    assert "Task 'leftover'" in text
    assert "created in test_first, which checked nothing (no site recorded)" in text
    assert "Task 'stuck'" in text
    assert "tests/test_hygiene.py" in text  # where the second test created its task


@pytest.mark.asyncio
@pytest.mark.hang_timeout(0)  # the plugin's own guard would be armed around this test
async def test_hang_guard_leaves_signals_and_the_interval_timer_alone() -> None:
    alarms: list[int] = []

    def handler(signum: int, frame: object) -> None:
        alarms.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        async with LoopInstrumentation(hang_timeout=None) as instrumentation:
            task = asyncio.create_task(asyncio.Event().wait(), name="stuck")
            instrumentation.start_hang_guard(0.1, task=task)
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)  # the guard, not this bound, cancels it
            error = instrumentation.stop_hang_guard()
        assert isinstance(error, HangTimeout)
        assert signal.getsignal(signal.SIGALRM) is handler
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert alarms == []
    finally:
        signal.signal(signal.SIGALRM, previous)


async def _watchdog_sleeps_beyond(seconds: float) -> None:
    """Wait until the hang guard's watchdog thread sleeps for more than ``seconds``."""
    deadline = time.monotonic() + 5.0
    # Its wake-up time is infinite while it is not asleep.
    while not seconds < _hang_guard._watchdog._wake_at - time.monotonic() < math.inf:
        assert time.monotonic() < deadline, "the watchdog thread did not go to sleep in 5 s"
        await asyncio.sleep(0.001)


@pytest.mark.asyncio
@pytest.mark.hang_timeout(0)
async def test_a_shorter_limit_after_a_longer_one_fires_on_time() -> None:
    # The watchdog sleeps until the earliest deadline it knows of (here 30 s away,
    # though disarmed): a shorter limit armed later must wake it.
    async with LoopInstrumentation(hang_timeout=None) as first:
        first.start_hang_guard(30.0, task=asyncio.current_task())
        await _watchdog_sleeps_beyond(25.0)
        assert first.stop_hang_guard() is None
    async with LoopInstrumentation(hang_timeout=None) as second:
        task = asyncio.create_task(asyncio.Event().wait(), name="stuck")
        second.start_hang_guard(0.1, task=task)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)  # TimeoutError here: the guard slept on
        error = second.stop_hang_guard()
    assert isinstance(error, HangTimeout)
    assert "still ran after 0.1 s" in str(error)


def test_hang_guard_fires_for_a_loop_in_another_thread() -> None:
    async def guarded() -> HangTimeout | None:
        async with LoopInstrumentation(hang_timeout=None) as instrumentation:
            task = asyncio.create_task(asyncio.Event().wait(), name="stuck")
            instrumentation.start_hang_guard(0.1, task=task)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
            return instrumentation.stop_hang_guard()

    results: list[HangTimeout | None] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(guarded())))
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the loop thread still ran after 30 s"
    assert len(results) == 1
    assert isinstance(results[0], HangTimeout)


@pytest.mark.asyncio
async def test_case_controlled_server_is_a_probe() -> None:
    async with LoopInstrumentation() as instrumentation:
        server = CaseControlledTestServer()
        await server.start_server()
    assert [issue.check for issue in instrumentation.report.issues] == ["unclosed_resources"] * 2
    await server.close()


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="hygiene mode must be one of strict, warn, off"):
        LoopInstrumentation(checks="loud")
    with pytest.raises(ValueError, match="unknown hygiene check 'tasks'"):
        LoopInstrumentation(checks={"tasks": "off"})
    with pytest.raises(ValueError, match="hang_timeout must be a positive number"):
        LoopInstrumentation(hang_timeout=0)
    with pytest.raises(RuntimeError, match=r"call finish\(\)"):
        LoopInstrumentation().check()


def test_session_in_a_reference_cycle_is_found_by_the_young_gc(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        class Client:
            def __init__(self):
                self.session = aiohttp.ClientSession()
                self.me = self  # only the garbage collector frees it

        async def test_leak():
            Client()
        """,
    )
    assert_leak_fails(result, "*Unclosed client session <aiohttp.client.ClientSession object*")


def test_components_report_refused_connections_into_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from aiotestkit._loop import report_issue

        async def test_leak():
            assert report_issue(
                "refused_connections", "connection to api.example.com:443 refused"
            )
        """,
    )
    assert_leak_fails(
        result,
        "*network access refused by the sandbox (refused_connections, 1):",
        "*connection to api.example.com:443 refused",
        "*fix: route the host to a test server*",
    )


@pytest.mark.asyncio
async def test_report_issue_and_probes_reach_the_innermost_instrumentation() -> None:
    class Probe:
        def hygiene_issues(self) -> list[tuple[str, str]]:
            return [("unanswered_requests", "WebSocket /feed never answered")]

    probe = Probe()
    async with LoopInstrumentation(checks={"refused_connections": "warn"}) as instrumentation:
        assert report_issue("refused_connections", "example.com:443 refused")
        assert register_probe(probe)
    assert [(issue.check, issue.message) for issue in instrumentation.report.issues] == [
        ("refused_connections", "example.com:443 refused"),
        ("unanswered_requests", "WebSocket /feed never answered"),
    ]
    with (
        pytest.raises(HygieneError, match="WebSocket /feed") as info,
        pytest.warns(HygieneWarning, match="example.com:443 refused"),
    ):
        instrumentation.check()
    assert "refused" not in str(info.value)
    with pytest.raises(ValueError, match="unknown hygiene check 'refused'"):
        report_issue("refused", "x")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "aiotestkit_hang_timeout = soon",
            "*aiotestkit_hang_timeout: expected a number of seconds*",
        ),
        ("aiotestkit_hang_timeout = -1", "*aiotestkit_hang_timeout: expected seconds >= 0*"),
        ("aiotestkit_hygiene_gc = always", "*aiotestkit_hygiene_gc: expected young, full or off*"),
        (
            "aiotestkit_hygiene_checks = pending_tasks",
            "*expected 'check=mode', got 'pending_tasks'",
        ),
    ],
)
def test_bad_ini_options_name_the_option(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    result = run(pytester, "", ini=option)
    result.stderr.fnmatch_lines([message])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_loop_instrumentation_fixture_needs_an_async_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest.mark.filterwarnings("ignore::pytest.PytestWarning")
        def test_sync(loop_instrumentation):
            pass
        """,
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*the loop_instrumentation fixture needs an asyncio test, but test_sync is not one*"]
    )


@pytest.mark.asyncio
async def test_global_state_is_restored_when_the_body_raises() -> None:
    loop = asyncio.get_running_loop()
    before = (
        loop.get_exception_handler(),
        loop.get_task_factory(),
        warnings.showwarning,
        list(warnings.filters),
    )
    with pytest.raises(KeyError):
        async with LoopInstrumentation(hang_timeout=None) as instrumentation:
            raise KeyError("body failed")
    after = (
        loop.get_exception_handler(),
        loop.get_task_factory(),
        warnings.showwarning,
        list(warnings.filters),
    )
    assert after == before
    assert instrumentation.loop is None


def test_virtual_clock_plugs_into_the_instrumentation(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from aiotestkit import VirtualClock

        async def test_leak(clock, loop_instrumentation):
            assert isinstance(clock, VirtualClock)
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(3600)  # virtual: returns at once
            assert loop.time() - start >= 3600
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)
        """,
    )
    assert_leak_fails(result, "*Task 'poller' running sleeper(), created at test_case.py:*")


def test_fixture_that_cleans_up_its_task_is_not_blamed(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        @pytest_asyncio.fixture
        async def poller():
            task = asyncio.create_task(sleeper(), name="fixture-owned")
            yield task
            task.cancel()

        @pytest_asyncio.fixture
        async def sloppy():
            yield asyncio.create_task(sleeper(), name="fixture-leak")

        async def test_uses_clean_fixture(poller):
            await asyncio.sleep(0)

        async def test_leak(sloppy):
            await asyncio.sleep(0)
        """,
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leak*", "*Task 'fixture-leak'*"])
    result.stdout.no_fnmatch_line("*fixture-owned*")


def test_plugin_disabled_leaves_leaks_alone(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        async def test_leak():
            asyncio.create_task(sleeper(), name="poller")
            await asyncio.sleep(0)
        """,
        "-p",
        "no:aiotestkit",
    )
    result.assert_outcomes(passed=2)


BLAME = """
import asyncio
import gc

import aiohttp
import pytest

pytestmark = pytest.mark.asyncio


class Client:
    def __init__(self):
        self.session = aiohttp.ClientSession()
        self.me = self  # only the garbage collector frees it


async def test_a_leaks():
    asyncio.get_running_loop().set_debug(True)  # aiohttp records where a session is made
    client = Client()
    # While `client` lives, it survives a young collection into the oldest generation,
    # as the objects of a long test do: the collection at the end of this test misses it.
    gc.collect(1)


async def test_b_collects():
    gc.collect()
"""


def test_leak_found_by_a_later_collection_is_blamed_on_the_test_that_made_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(test_case=BLAME)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("test_case.py::test_b_collects")
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "test_case.py::test_a_leaks",
            "*HygieneWarning: test_case.py::test_a_leaks left a hygiene problem behind that "
            "was found after it ended, during test_case.py::test_b_collects:",
            "*resources that were never closed (unclosed_resources):",
            "*- Unclosed client session <aiohttp.client.ClientSession object at *>",
            "*created at test_case.py:12 in __init__",
        ]
    )
    alone = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_b")
    alone.assert_outcomes(passed=1, deselected=1)


def test_transport_found_by_a_later_collection_is_blamed_with_its_creation_site(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        test_case="""
        import asyncio
        import gc

        import pytest
        import pytest_asyncio

        pytestmark = pytest.mark.asyncio


        @pytest_asyncio.fixture
        async def server():
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            yield server.sockets[0].getsockname()[1]
            server.close()
            await server.wait_closed()


        async def test_a_leaks(server):
            reader, writer = await asyncio.open_connection("127.0.0.1", server)
            writer.me = writer
            gc.collect(1)  # into the oldest generation, as in a long test


        async def test_b_collects():
            gc.collect()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.no_fnmatch_line("test_case.py::test_b_collects")
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "test_case.py::test_a_leaks",
            "*HygieneWarning: test_case.py::test_a_leaks left a hygiene problem behind that "
            "was found after it ended, during test_case.py::test_b_collects:",
            "*- unclosed transport <_SelectorSocketTransport*",
            "*created at test_case.py:19 in test_a_leaks",
        ]
    )


def test_leak_of_an_unknown_test_fails_no_test_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        test_case="""
        import gc

        import aiohttp
        import pytest

        pytestmark = pytest.mark.asyncio(loop_scope="module")


        class Client:
            def __init__(self):
                self.session = aiohttp.ClientSession()
                self.me = self


        async def test_a_leaks():
            client = Client()
            gc.collect(1)  # into the oldest generation, as in a long test


        async def test_b_collects():
            gc.collect()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*HygieneWarning: a hygiene problem whose test is not known was found during "
            "test_case.py::test_b_collects, which is not blamed: a full garbage collection "
            "found it, and it may be left over from an earlier test:",
            "*- Unclosed client session <aiohttp.client.ClientSession object at *>",
        ]
    )
    result.stdout.no_fnmatch_line("test_case.py::test_b_collects")
