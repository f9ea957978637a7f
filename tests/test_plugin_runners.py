"""Installed into any suite: nothing breaks, and every async test is checked, whoever runs it.

Run through pytester as users run their suites: with pytest-asyncio (strict and auto
mode, function, module and session loops), aiohttp's own pytest plugin and anyio's.
"""

from __future__ import annotations

import re
import textwrap

import pytest

STRICT_INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error
    ignore:aiohttp.pytest_plugin will be removed:DeprecationWarning
{extra}
"""

# Each runner: a conftest, and the line that makes the test module's tests its own
# (one line, so that every variant reports the same line numbers).
RUNNERS = {
    "pytest-asyncio": ("", "pytestmark = pytest.mark.asyncio"),
    "anyio": (
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """,
        "pytestmark = pytest.mark.anyio",
    ),
    "aiohttp": ('pytest_plugins = ["aiohttp.pytest_plugin"]\n', "pytestmark = []"),
}


def _project(pytester: pytest.Pytester, runner: str, body: str, extra: str = "") -> None:
    conftest, mark = RUNNERS[runner]
    pytester.makeini(STRICT_INI.format(extra=extra))
    pytester.makeconftest(conftest)
    pytester.makepyfile(
        test_it="import asyncio\n\nimport pytest\n\n"
        + mark
        + "\n"
        + textwrap.dedent(body).lstrip("\n")
        + _SANDBOXED
    )


_SANDBOXED = """

def sandboxed():
    # Whether a network sandbox patched the running loop's name lookups.
    method = asyncio.get_running_loop().getaddrinfo
    return method.__func__ is not asyncio.BaseEventLoop.getaddrinfo
"""


# -- installing never breaks a suite ---------------------------------------------------------


def test_a_suite_with_filterwarnings_error_and_no_asyncio_options_runs(
    pytester: pytest.Pytester,
) -> None:
    # A project that never used pytest-asyncio: it came with aiotestkit.
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        """
        import asyncio

        import pytest
        import pytest_asyncio

        def test_sync():
            pass

        @pytest_asyncio.fixture(scope="module", loop_scope="module")
        async def module_loop():
            return asyncio.get_running_loop()

        @pytest_asyncio.fixture(scope="module")
        async def fixture_scoped_loop():
            return asyncio.get_running_loop()

        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_fixture_runs_on_the_module_loop(module_loop, fixture_scoped_loop):
            # Unset, pytest-asyncio runs a fixture on the loop of its own scope: the
            # default aiotestkit gives the option keeps that.
            assert fixture_scoped_loop is module_loop is asyncio.get_running_loop()
        """
    )
    result = pytester.runpytest_subprocess("-W", "error")
    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "warnings summary" not in result.stdout.str()


def test_the_projects_own_fixture_loop_scope_still_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile("def test_sync():\n    pass\n")
    result = pytester.runpytest_subprocess("-o", "asyncio_default_fixture_loop_scope=module")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*asyncio_default_fixture_loop_scope=module*"])


def test_a_project_ca_that_is_a_plain_trustme_ca_serves_the_sandbox_and_redirector(
    pytester: pytest.Pytester,
) -> None:
    # aiohttp's conftest and the many copied from it.
    pytester.makeini(STRICT_INI.format(extra=""))
    pytester.makeconftest(
        """
        import ssl

        import pytest
        import trustme

        @pytest.fixture(scope="session")
        def tls_certificate_authority():
            return trustme.CA()

        @pytest.fixture
        def client_ssl_ctx(tls_certificate_authority):
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            tls_certificate_authority.configure_trust(context)
            return context
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        import aiohttp
        import pytest

        @pytest.mark.asyncio
        async def test_sandbox(network_sandbox, case_controlled_server, client_ssl_ctx):
            await network_sandbox.route("api.example.com", 443, case_controlled_server)
            async with aiohttp.ClientSession() as session:
                task = asyncio.create_task(
                    session.get("https://api.example.com/", ssl=client_ssl_ctx)
                )
                request = await case_controlled_server.receive_request()
                case_controlled_server.send_response(request, text="ok")
                async with await task as response:
                    assert await response.text() == "ok"
            assert request.secure

        @pytest.mark.asyncio
        async def test_redirector(
            aiohttp_redirector, case_controlled_server_factory, tls_certificate_authority
        ):
            server = await case_controlled_server_factory(
                scheme="https", certificate_authority=tls_certificate_authority
            )
            aiohttp_redirector.add_server("api.example.com", 443, server)
            task = asyncio.create_task(
                aiohttp_redirector.session.get("https://api.example.com/")
            )
            request = await server.receive_request()
            server.send_json(request, {"ok": True})
            async with await task as response:
                assert await response.json() == {"ok": True}
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_aiohttps_loop_fixture_is_left_to_aiohttp(pytester: pytest.Pytester) -> None:
    _project(
        pytester,
        "aiohttp",
        """
        def test_loop_is_aiohttps(request, loop):
            fixture = request._fixturemanager.getfixturedefs("loop", request.node)[-1]
            assert fixture.func.__module__ == "aiohttp.pytest_plugin"
            assert not loop.is_running()
        """,
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


# -- every async test is checked, whoever runs it ------------------------------------------------

LEAK = """
async def test_leak():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="leaked")
"""


def _report(output: str) -> str:
    """The hygiene report of test_leak, with the runner's parameter id taken out."""
    start = output.index("test_leak")
    lines = output[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if "hygiene problem(s) behind" in line)
    last = next(i for i, line in enumerate(lines) if "A known problem can be allowed" in line)
    report = "\n".join(line.removeprefix("E").strip() for line in lines[first : last + 2])
    return re.sub(r"test_leak\[\w+\]", "test_leak", report)


def test_a_leaked_task_fails_the_test_with_the_same_report_under_every_runner(
    pytester: pytest.Pytester,
) -> None:
    reports = {}
    for runner in RUNNERS:
        _project(pytester, runner, LEAK)
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, errors=1)
        reports[runner] = _report(result.stdout.str())
    assert reports["anyio"] == reports["pytest-asyncio"]
    assert reports["aiohttp"] == reports["pytest-asyncio"]
    report = reports["pytest-asyncio"]
    assert "test_it.py::test_leak left 1 hygiene problem(s) behind:" in report
    assert "tasks still pending when the test ended (pending_tasks, 1):" in report
    assert "- Task 'leaked' running sleep(), created at test_it.py:7 in test_leak" in report
    assert "fix: await or cancel every task the test starts" in report
    assert "@pytest.mark.hygiene(allow=['pending_tasks'], reason='...')" in report


def test_aiohttp_plugin_test_with_its_loop_fixture_is_checked_after_its_fixtures(
    pytester: pytest.Pytester,
) -> None:
    _project(
        pytester,
        "aiohttp",
        """
        from aiohttp import web

        async def test_client_leaks(aiohttp_client, loop):
            client = await aiohttp_client(web.Application())
            assert loop is asyncio.get_running_loop()
            loop.create_task(asyncio.sleep(3600), name="leaked")
            await client.get("/")

        async def test_clean(aiohttp_client):
            client = await aiohttp_client(web.Application())
            assert (await client.get("/")).status == 404
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_client_leaks*",
            "*test_client_leaks* left 1 hygiene problem(s) behind*",
            "*Task 'leaked' running sleep()*",
        ]
    )


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_hang_guard_virtual_clock_and_sandbox_apply_under_every_runner(
    pytester: pytest.Pytester, runner: str
) -> None:
    # aiohttp's plugin makes the loop of a test without its loop fixture only when it
    # calls the test (and leaks it when the test fails): too late for a sandbox or clock.
    loop_argument = "loop" if runner == "aiohttp" else ""
    _project(
        pytester,
        runner,
        f"""
        @pytest.mark.hang_timeout(0.2)
        async def test_hangs({loop_argument}):
            await asyncio.Event().wait()

        @pytest.mark.virtual_clock
        async def test_virtual_time({loop_argument}):
            await asyncio.sleep(3600)
            assert asyncio.get_running_loop().time() == 3600

        async def test_sandboxed({loop_argument}):
            assert sandboxed()

        async def test_instrumented(loop_instrumentation, {loop_argument}):
            assert loop_instrumentation.loop is asyncio.get_running_loop()
        """,
        extra="aiotestkit_network_sandbox = true",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*HangTimeout: test_it.py::test_hangs* still ran after 0.2 s, so the hang guard "
            "cancelled it. If it is only slow, raise the limit with "
            "@pytest.mark.hang_timeout(seconds) or the ini option aiotestkit_hang_timeout*",
        ]
    )


@pytest.mark.parametrize("mode", ["strict", "auto"])
@pytest.mark.parametrize("scope", ["function", "module", "session"])
def test_pytest_asyncio_tests_are_instrumented_on_their_loop_in_every_mode_and_scope(
    pytester: pytest.Pytester, mode: str, scope: str
) -> None:
    pytester.makeini(
        STRICT_INI.format(extra="").replace("asyncio_mode = strict", f"asyncio_mode = {mode}")
    )
    pytester.makepyfile(
        f"""
        import asyncio

        import pytest

        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_one(loop_instrumentation, loop):
            assert loop_instrumentation.loop is loop is asyncio.get_running_loop()

        @pytest.mark.asyncio(loop_scope="{scope}")
        async def test_leak():
            asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leak*", "*pending_tasks, 1*"])


def test_what_a_runner_cannot_give_is_said_once_at_the_end(pytester: pytest.Pytester) -> None:
    _project(
        pytester,
        "aiohttp",
        """
        async def test_one():
            assert not sandboxed()

        async def test_two():
            pass
        """,
        extra="aiotestkit_network_sandbox = true",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "aiotestkit: 2 async test(s): aiohttp.pytest_plugin makes their loop only when it "
            "calls them, too late for the sandbox the ini option or marker asks for (hygiene "
            "checks and hang guard apply); add its 'loop' fixture to their arguments"
        ]
    )
    assert result.stdout.str().count("aiotestkit: ") == 1
