"""One async test as aiotestkit runs it, from the set-up of its loop to its checks.

A test run starts when the test's loop is known (:func:`start_test_run`): its
:class:`~aiotestkit.LoopInstrumentation` is made from the test's settings and
attached, and the run becomes the *current* one, which aiotestkit's fixtures act on.
It finishes (:func:`finish_test_run`) after the test's other function-scoped
fixtures are torn down, while the loop is still open: the hygiene report fails the
test, and leaks it found that earlier tests made go to the warnings summary.

Where pytest-asyncio runs the test on a function-scoped loop, the run starts in the
set-up of pytest-asyncio's own loop fixture and finishes in its teardown (a
``pytest_fixture_setup`` hook the plugin registers at collection when an async test is
collected), at no fixture of aiotestkit's; for every
other runner and loop scope, in the set-up and teardown of the plugin's
instrumentation fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

import pytest

from ..errors import HygieneWarning
from ._options import test_settings
from ._runners import TestRunnerAdapter

if TYPE_CHECKING:
    from .._loop import LoopInstrumentation

__all__ = [
    "TestRun",
    "current_test_run",
    "finish_test_run",
    "require_test_run",
    "start_test_run",
    "test_run_of",
]

_T = TypeVar("_T")
_TEST_RUN = pytest.StashKey["TestRun"]()


@dataclass
class TestRun:
    """One async test as aiotestkit runs it: its runner, instrumentation and loop."""

    __test__: ClassVar[bool] = False

    item: pytest.Item
    runner: TestRunnerAdapter
    instrumentation: LoopInstrumentation
    loop: asyncio.AbstractEventLoop | None
    previous: TestRun | None = field(default=None, repr=False)
    """The run that was current when this one started (an outer pytester run's)."""

    def require_loop(self, fixture: str) -> asyncio.AbstractEventLoop:
        """The test's loop, for a fixture that must act on it before the test runs.

        Raises:
            pytest.UsageError: if the runner makes the loop only when it calls the
                test (aiohttp's plugin, for a test without its ``loop`` fixture).
        """
        if self.loop is None:
            raise pytest.UsageError(
                f"the {fixture} fixture needs the test's event loop before the test runs, "
                f"but {self.runner.name} makes it only when it calls the test: add its "
                "'loop' fixture to the test's arguments"
            )
        return self.loop

    def run(
        self,
        fixture: str,
        function: Callable[..., Coroutine[Any, Any, _T]],
        *args: Any,
    ) -> _T:
        """Run ``function(*args)`` on the test's loop, from a fixture's set-up or teardown."""
        loop = self.require_loop(fixture)
        return loop.run_until_complete(function(*args))

    def enter(
        self, fixture: str, context: contextlib.AbstractAsyncContextManager[_T]
    ) -> Generator[_T, None, None]:
        """A fixture's body: enter ``context`` on the test's loop, yield it, exit it."""
        value = self.run(fixture, context.__aenter__)
        try:
            yield value
        finally:
            self.run(fixture, context.__aexit__, None, None, None)


_current: TestRun | None = None


def current_test_run() -> TestRun | None:
    """The run of the async test being set up, run or torn down; ``None`` between them.

    ``None`` also while a sync test runs, or an async test that no runner aiotestkit
    knows runs.
    """
    return _current


def require_test_run(fixture: str) -> TestRun:
    """The current test run, for the fixture named ``fixture`` that needs an async test.

    Raises:
        pytest.fail.Exception: if no async test is running: the failure names the
            fixture, the test and how to make it async.
    """
    run = _current
    if run is None:
        _fail_not_async(fixture)
    return run


def _fail_not_async(fixture: str) -> NoReturn:
    # PYTEST_CURRENT_TEST is "path::name (setup)"; no fixture asks for ``request``
    # to know it (pytest builds a fixture definition each time one does).
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    test = current.rsplit(" (", 1)[0].rsplit("::", 1)[-1] or "the test"
    pytest.fail(
        f"the {fixture} fixture needs an asyncio test, but {test} is not "
        "one: make it 'async def' and run it with pytest-asyncio (@pytest.mark.asyncio, "
        "or asyncio_mode = auto), anyio's plugin (@pytest.mark.anyio) or aiohttp's "
        "(pytest_plugins = ['aiohttp.pytest_plugin'])",
        pytrace=False,
    )


def test_run_of(item: pytest.Item) -> TestRun | None:
    """The run of ``item`` if it has started and not finished, else ``None``."""
    return item.stash.get(_TEST_RUN, None)


def start_test_run(
    item: pytest.Item, runner: TestRunnerAdapter, loop: asyncio.AbstractEventLoop | None
) -> TestRun:
    """Start ``item``'s run: instrument ``loop`` (if known yet) and make the run current.

    Call :func:`finish_test_run` after the test's other function-scoped fixtures are
    torn down, also when the test failed.

    Raises:
        pytest.fail.Exception: if the test's markers or ini options are invalid (the
            message names the test and the marker); nothing is attached then.
    """
    __tracebackhide__ = True
    global _current
    try:
        instrumentation = test_settings(item).instrumentation(item.nodeid)
    except ValueError as error:
        pytest.fail(str(error), pytrace=False)
    if loop is not None:
        instrumentation.attach(loop)
    run = TestRun(item, runner, instrumentation, loop, previous=_current)
    item.stash[_TEST_RUN] = run
    _current = run
    return run


def finish_test_run(run: TestRun) -> None:
    """Finish ``run``: detach its instrumentation and report what the checks found.

    The previous run becomes current again. Leaks found here that earlier tests made
    go to the warnings summary (:func:`record_late_issues`).

    Raises:
        aiotestkit.HygieneError: if a ``strict`` check found something in this test.
    """
    __tracebackhide__ = True
    global _current
    if _current is run:
        _current = run.previous
    del run.item.stash[_TEST_RUN]
    report = run.instrumentation.run_finish()
    record_late_issues(run.item, run.instrumentation)
    report.raise_or_warn()


def record_late_issues(item: pytest.Item, instrumentation: LoopInstrumentation) -> None:
    """Put leaks this test found but did not make in the warnings summary, failing no test.

    Each is listed under the test that made it (as a ``HygieneWarning``), or under no
    test when that is not known. The hook is the one pytest and xdist record warnings
    through, so no warning filter turns it into an error of this test.
    """
    for issue in instrumentation.late_issues:
        filename, lineno = issue.where or (str(item.path), 0)
        message = warnings.WarningMessage(
            HygieneWarning(issue.format()), HygieneWarning, filename, lineno
        )
        item.ihook.pytest_warning_recorded.call_historic(
            kwargs={
                "warning_message": message,
                "when": "runtest",
                "nodeid": issue.test or "",
                "location": None,
            }
        )
