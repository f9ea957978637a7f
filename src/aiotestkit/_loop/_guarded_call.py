"""A test function run under the hang guard, in the task its runner awaits it in.

For runners that await the test in a task of their own making (anyio's runner task,
unittest's, aiohttp's): the guard must watch exactly that task, which is only known
once the test runs. The pytest plugin and :class:`aiotestkit.NetworkTestCase` both use it.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ._instrumentation import LoopInstrumentation

__all__ = ["hang_guarded"]

_T = TypeVar("_T")


def hang_guarded(
    function: Callable[..., Coroutine[Any, Any, _T]],
    instrumentation: LoopInstrumentation,
    *,
    attach: bool = False,
) -> Callable[..., Coroutine[Any, Any, _T]]:
    """Wrap an async test function so that the hang guard watches the task running it.

    When the guard fires, the task is cancelled; the wrapper takes that cancellation
    back (``Task.uncancel()``) and raises the guard's :class:`aiotestkit.HangTimeout`
    instead, so that the runner sees a failed test, not a cancelled runner.

    Args:
        function: the test function (``async def``).
        instrumentation: the test's instrumentation; attached already unless ``attach``.
        attach: attach it to the running loop first and finish it after the test,
            for runners that make the loop only when they call the test.

    Returns:
        An ``async def`` function taking the same arguments.

    Raises:
        aiotestkit.HangTimeout: (from the wrapper) if the guard fired.

    Example:
        ```python
        test = hang_guarded(test_fetch, instrumentation)
        loop.run_until_complete(test(session))
        ```
    """

    @functools.wraps(function)
    async def guarded(*args: Any, **kwargs: Any) -> _T:
        __tracebackhide__ = True  # also where creation sites stop (the runner's frames)
        task = asyncio.current_task()
        if attach:
            instrumentation.attach(asyncio.get_running_loop())
        instrumentation.start_hang_guard(task=task)
        try:
            try:
                return await function(*args, **kwargs)
            except asyncio.CancelledError:
                error = instrumentation.stop_hang_guard()
                if error is None or task is None:
                    raise
                if sys.version_info >= (3, 11):
                    task.uncancel()  # the guard's own cancellation, consumed here
                raise error from None
            finally:
                instrumentation.stop_hang_guard()
        finally:
            if attach:
                # On the loop, which the runner closes after the call; the caller
                # acts on the report (instrumentation.check()).
                await instrumentation.finish()

    return guarded
