"""The clock fixture, the virtual_clock marker and ini option, run through pytester."""

from __future__ import annotations

import time

import pytest

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
filterwarnings = error
{extra}
"""

SLEEPER = """
import asyncio, pytest

{mark}
@pytest.mark.asyncio
async def test_sleeps():
    loop = asyncio.get_running_loop()
    virtual = loop.time.__self__ is not loop  # a virtual clock's time
    assert virtual == {virtual}
    await asyncio.sleep(3600 if virtual else 0.01)
    assert loop.time() == 3600.0 or not virtual
"""


@pytest.mark.parametrize(
    ("extra", "mark", "virtual"),
    [
        ("", "@pytest.mark.virtual_clock", True),
        ("", "@pytest.mark.virtual_clock(autojump_threshold=0)", True),
        ("aiotestkit_virtual_clock = true", "", True),
        ("aiotestkit_virtual_clock = true", "@pytest.mark.virtual_clock(enabled=False)", False),
        ("aiotestkit_virtual_clock = true", "@pytest.mark.virtual_clock(False)", False),
    ],
    ids=["marker", "marker-options", "ini", "ini-opt-out", "ini-opt-out-positional"],
)
def test_marker_and_ini_activate_the_clock(
    pytester: pytest.Pytester, extra: str, mark: str, virtual: bool
) -> None:
    pytester.makeini(INI.format(extra=extra))
    pytester.makepyfile(SLEEPER.format(mark=mark, virtual=virtual))
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_clock_fixture_in_a_module_scoped_loop(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        """
        import asyncio, pytest

        @pytest.mark.asyncio(loop_scope="module")
        async def test_one(clock):
            await asyncio.sleep(60)
            assert clock.time() == 60
            assert asyncio.get_running_loop().time() == 60

        @pytest.mark.asyncio(loop_scope="module")
        async def test_two_in_real_time():
            loop = asyncio.get_running_loop()
            assert loop.time.__self__ is loop
        """
    )
    pytester.runpytest_subprocess().assert_outcomes(passed=2)


def test_deadlock_fails_the_test_with_the_report(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        """
        import asyncio, pytest

        @pytest.mark.asyncio
        @pytest.mark.virtual_clock(deadlock_timeout=0.1)
        async def test_forgets_to_answer(case_controlled_server):
            request_seen = asyncio.Event()
            await request_seen.wait()
        """
    )
    started = time.perf_counter()
    result = pytester.runpytest_subprocess()
    assert time.perf_counter() - started < 30
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*DeadlockError: event loop deadlocked at virtual time t=0 s: every task waits "
            "and no timer is scheduled*",
            "*test_forgets_to_answer*",
            "*test_deadlock_fails_the_test_with_the_report.py:7 in test_forgets_to_answer: "
            "await request_seen.wait()",
        ]
    )


def test_clock_fixture_needs_an_asyncio_test(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        """
        def test_sync(clock):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*the clock fixture needs an asyncio test, but test_sync is not one*"]
    )


def test_bad_marker_option_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(extra=""))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.virtual_clock(deadlock_timeout=-1)
        async def test_bad():
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.virtual_clock: deadlock_timeout must be a positive finite number*"]
    )
