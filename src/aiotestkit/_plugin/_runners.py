"""One adapter per test runner that may run an async test, behind one interface.

pytest itself runs no coroutine: pytest-asyncio does, aiohttp's own pytest plugin
(``aiohttp.pytest_plugin``) does, and anyio's does. Each makes its loop at its own
time and calls the test its own way. An adapter answers the three questions the
plugin asks, so that the hygiene checks, the sandbox, the virtual clock and the hang
guard apply to every async test whoever runs it (anyio's ``TestRunner`` is the model):

- :meth:`TestRunnerAdapter.runs`: does this runner run the test?
- :meth:`TestRunnerAdapter.open_loop`: the loop the test will run on, held open from
  the set-up of aiotestkit's fixtures to their teardown; ``None`` when the runner only
  makes it when it calls the test (then the checks attach inside the call);
- :meth:`TestRunnerAdapter.guard_call`: arm the hang guard on the test's own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import unittest
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar

import pytest

from . import _pytest_asyncio

if TYPE_CHECKING:
    from .._loop import LoopInstrumentation

__all__ = [
    "RUNNERS",
    "AiohttpRunner",
    "AnyioRunner",
    "NotCovered",
    "PytestAsyncioRunner",
    "TestRunnerAdapter",
    "runner_for",
]


class NotCovered(Exception):
    """Raised by :meth:`TestRunnerAdapter.open_loop` when the test has no asyncio loop.

    Its message says why (e.g. anyio's trio backend); the plugin counts these tests
    and says so once, at the end of the run.
    """


class TestRunnerAdapter(ABC):
    """How one test runner runs async tests: which ones, on which loop, in which task."""

    __test__: ClassVar[bool] = False
    name: ClassVar[str]
    """The runner's name, as users know it (in messages)."""

    @abstractmethod
    def runs(self, item: pytest.Function) -> bool:
        """Whether this runner runs ``item``, an async test, when pytest calls it."""

    @abstractmethod
    def open_loop(
        self, request: pytest.FixtureRequest
    ) -> contextlib.AbstractContextManager[asyncio.AbstractEventLoop | None]:
        """Hold the test's loop open while the context is entered, and give it.

        Entered in the set-up of aiotestkit's first fixture and left after its
        teardown, so that the loop is open (not running) at both ends. ``None`` if
        the runner makes the loop only when it calls the test.

        Raises:
            NotCovered: if the test does not run on an asyncio loop.
        """

    def loop_fixture(self, item: pytest.Function) -> str | None:
        """The runner's own function-scoped fixture that makes ``item``'s loop, if any.

        When there is one, the test's run starts in that fixture's set-up and finishes
        in its teardown, before the fixture closes the loop: no aiotestkit fixture is
        needed (:meth:`loop_of` gives the loop from the fixture's value). ``None``, the
        default: aiotestkit's instrumentation fixture holds the loop (:meth:`open_loop`).
        """
        return None

    def loop_of(self, value: object) -> asyncio.AbstractEventLoop:
        """The event loop of the value of the fixture :meth:`loop_fixture` names.

        Raises:
            NotImplementedError: for a runner that names no loop fixture.
        """
        raise NotImplementedError(f"{self.name} names no loop fixture")

    def guard_call(
        self, item: pytest.Function, instrumentation: LoopInstrumentation, *, attach: bool
    ) -> contextlib.AbstractContextManager[None]:
        """Around pytest's call of the test: arm the hang guard on the test's task.

        By default the runner makes a task for the test right after (pytest-asyncio,
        aiohttp's ``run_until_complete``): the guard claims the next task created.
        With ``attach`` (the loop was not known at set-up), the test function itself
        is wrapped to attach the instrumentation in its own task and to finish it
        there, before the runner closes the loop; its report fails the test at
        teardown, as for every other test.
        """
        if attach:
            return _wrapped_test(item, instrumentation, attach=True)
        return _NextTaskGuarded(instrumentation)


class _NextTaskGuarded(contextlib.AbstractContextManager[None]):
    """The hang guard on the next task created, from ``__enter__`` to ``__exit__``.

    A class rather than a generator: it runs around every async test.
    """

    __slots__ = ("_instrumentation",)

    def __init__(self, instrumentation: LoopInstrumentation) -> None:
        self._instrumentation = instrumentation

    def __enter__(self) -> None:
        self._instrumentation.start_hang_guard()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        error = self._instrumentation.stop_hang_guard()
        if exc is not None and error is not None:
            raise error from None


@contextlib.contextmanager
def _wrapped_test(
    item: pytest.Function, instrumentation: LoopInstrumentation, *, attach: bool
) -> Iterator[None]:
    from .._loop import hang_guarded

    original = item.obj
    item.obj = hang_guarded(original, instrumentation, attach=attach)
    try:
        yield
    finally:
        item.obj = original


class PytestAsyncioRunner(TestRunnerAdapter):
    """pytest-asyncio, in strict and auto mode, on loops of every scope."""

    name = "pytest-asyncio"

    def runs(self, item: pytest.Function) -> bool:
        return _pytest_asyncio.is_async_test(item)

    @contextlib.contextmanager
    def open_loop(
        self, request: pytest.FixtureRequest
    ) -> Iterator[asyncio.AbstractEventLoop | None]:
        yield _pytest_asyncio.test_loop(request, _pytest_asyncio.loop_scope(request.node))

    def loop_fixture(self, item: pytest.Function) -> str | None:
        return _pytest_asyncio.function_loop_fixture(item)

    def loop_of(self, value: object) -> asyncio.AbstractEventLoop:
        return _pytest_asyncio.loop_of(value)


_AIOHTTP_PLUGIN = "aiohttp.pytest_plugin"
# The loop fixtures aiohttp's pytest_pyfunc_call runs a test on, in its order.
_AIOHTTP_LOOPS = ("proactor_loop", "selector_loop", "uvloop_loop", "loop")


class AiohttpRunner(TestRunnerAdapter):
    """aiohttp's own pytest plugin (``pytest_plugins = ["aiohttp.pytest_plugin"]``).

    It runs every ``async def`` test that pytest-asyncio does not: on the loop of its
    ``loop`` fixture when the test uses it (``aiohttp_client`` and the other aiohttp
    fixtures do), else on a loop it makes for the call.
    """

    name = "aiohttp.pytest_plugin"

    def runs(self, item: pytest.Function) -> bool:
        return item.config.pluginmanager.has_plugin(_AIOHTTP_PLUGIN) and (
            inspect.iscoroutinefunction(item.function)
        )

    @contextlib.contextmanager
    def open_loop(
        self, request: pytest.FixtureRequest
    ) -> Iterator[asyncio.AbstractEventLoop | None]:
        names = request.node.fixturenames
        for name in _AIOHTTP_LOOPS:
            if name in names:
                loop: asyncio.AbstractEventLoop = request.getfixturevalue(name)
                yield loop
                return
        yield None

    def guard_call(
        self, item: pytest.Function, instrumentation: LoopInstrumentation, *, attach: bool
    ) -> contextlib.AbstractContextManager[None]:
        return _wrapped_test(item, instrumentation, attach=attach)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


class AnyioRunner(TestRunnerAdapter):
    """anyio's pytest plugin, on its asyncio backend.

    anyio keeps one runner (one loop) for as long as a test or fixture holds it;
    the adapter holds it too, through anyio's public ``get_runner``, and runs the
    test function inside anyio's runner task, where anyio awaits it.
    """

    name = "anyio"

    def runs(self, item: pytest.Function) -> bool:
        return (
            "anyio_backend" in item.fixturenames
            and item.config.pluginmanager.has_plugin("anyio")
            and inspect.iscoroutinefunction(item.function)
        )

    @contextlib.contextmanager
    def open_loop(
        self, request: pytest.FixtureRequest
    ) -> Iterator[asyncio.AbstractEventLoop | None]:
        from anyio.pytest_plugin import extract_backend_and_options, get_runner

        backend, options = extract_backend_and_options(request.getfixturevalue("anyio_backend"))
        if backend != "asyncio":
            raise NotCovered(f"anyio's {backend} backend runs no asyncio event loop")
        with get_runner(backend, options) as runner:
            yield runner.run_fixture(_running_loop, {})

    def guard_call(
        self, item: pytest.Function, instrumentation: LoopInstrumentation, *, attach: bool
    ) -> contextlib.AbstractContextManager[None]:
        return _wrapped_test(item, instrumentation, attach=attach)


RUNNERS: tuple[TestRunnerAdapter, ...] = (PytestAsyncioRunner(), AnyioRunner(), AiohttpRunner())
"""The runners aiotestkit knows, in the order they claim a test."""


_RUNNER = pytest.StashKey["TestRunnerAdapter | None"]()


def runner_for(item: pytest.Item) -> TestRunnerAdapter | None:
    """The runner that runs ``item``, or ``None`` for a sync test (or an unknown runner).

    A :class:`unittest.TestCase`'s tests are run by unittest (an
    ``IsolatedAsyncioTestCase`` makes its own loop): ``None`` too. Decided once per
    item (when it is collected) and kept in its stash.
    """
    try:
        return item.stash[_RUNNER]
    except KeyError:
        pass
    runner = _find_runner(item)
    item.stash[_RUNNER] = runner
    return runner


def _find_runner(item: pytest.Item) -> TestRunnerAdapter | None:
    if not isinstance(item, pytest.Function):
        return None
    # ``item.cls`` would walk the node chain: a test method's parent is its class.
    parent = item.parent
    if isinstance(parent, pytest.Class) and issubclass(parent.obj, unittest.TestCase):
        return None
    if not _pytest_asyncio.is_async_test(item) and not inspect.iscoroutinefunction(item.function):
        return None  # a sync test (checked once rather than by each runner)
    for runner in RUNNERS:
        if runner.runs(item):
            return runner
    return None
