"""The hang guard: a real-time limit on a test's task, as a loop extension.

:class:`HangGuard` cancels the guarded task (the test's own) when it still runs
after ``timeout`` seconds of real time, and keeps a :class:`aiotestkit.HangTimeout`
that names the limit and shows the stack of every task on the loop. Real time is
measured by one daemon thread (:class:`_Watchdog`), so a virtual clock does not move
the limit, and neither signals nor timers of the process are touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import HangTimeout
from ._hygiene import DEFAULT_HANG_TIMEOUT, LIBRARY_ADVICE, Advice
from ._tasks import TaskTracker

__all__ = ["DEFAULT_HANG_TIMEOUT", "HangGuard"]


class _Watchdog:
    """Calls callbacks at real-time deadlines, from one daemon thread that rarely wakes.

    Arming a deadline and disarming it, once per test, only set and pop a dict entry:
    no lock, no system call, no wake-up of the thread. The thread sleeps until the
    earliest deadline it knows of, or, with none armed, for as long as the last
    delay; a new deadline wakes it only if it falls before that (a test with a
    shorter limit than the tests before it). A disarmed deadline leaves the thread
    asleep until its time; then it finds nothing due and sleeps again. With one limit
    for every test, it wakes about once per limit. An idle thread costs the main
    thread nothing, where a signal-based timer would cost two system calls per test.

    The callbacks run in the thread, so they must only hand work over, as
    ``loop.call_soon_threadsafe`` does; one that raises is ignored.
    """

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._deadlines: dict[int, tuple[float, Callable[[], None]]] = {}
        self._condition = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None
        self._idle = 1.0
        # When the thread wakes up next; infinity while it is not asleep (not started
        # yet, or looking at the deadlines), so that every new deadline wakes it.
        self._wake_at = math.inf

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` after ``delay`` seconds unless :meth:`cancel` comes first."""
        token = next(self._counter)
        deadline = time.monotonic() + delay
        self._deadlines[token] = (deadline, callback)  # one atomic step under the GIL
        self._idle = delay
        if deadline < self._wake_at:
            with self._condition:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="aiotestkit-hang-guard", daemon=True
                    )
                    self._thread.start()
                self._condition.notify()
        return token

    def cancel(self, token: int) -> None:
        """Disarm the deadline ``token``; nothing if it fired already."""
        self._deadlines.pop(token, None)

    def _run(self) -> None:
        with self._condition:
            while True:
                self._wake_at = math.inf
                now = time.monotonic()
                wake = now + self._idle
                # A copy: the main thread arms and disarms deadlines meanwhile (the
                # copy is one C call, atomic under the GIL).
                for token, (deadline, callback) in self._deadlines.copy().items():
                    if deadline > now:
                        wake = min(wake, deadline)
                    elif self._deadlines.pop(token, None) is not None:
                        with contextlib.suppress(Exception):
                            callback()
                self._wake_at = wake
                self._condition.wait(wake - now)

    def _after_fork(self) -> None:
        # A forked child has no watchdog thread; it starts one when it needs it.
        self._condition = threading.Condition(threading.Lock())
        self._thread = None
        self._wake_at = math.inf


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._after_fork)


class HangGuard:
    """Cancel a test's task when it still runs after a limit of real time.

    A :class:`LoopExtension`: :meth:`attach` binds it to the test's loop and
    :meth:`detach` disarms it. :meth:`start` arms it for one task.

    Args:
        tasks: the test's :class:`TaskTracker`: the guarded task becomes one of
            its test tasks, and its descriptions make the report.
        timeout: seconds (float, > 0) for :meth:`start` without one, or ``None``.
        name: what is guarded (a test id), named in the error.

    Example:
        ```python
        guard = HangGuard(tracker, 5.0, name="test_poll")
        guard.attach(loop)
        guard.start(task=asyncio.current_task())
        ```
    """

    def __init__(
        self,
        tasks: TaskTracker,
        timeout: float | None,
        *,
        name: str,
        advice: Advice = LIBRARY_ADVICE,
    ) -> None:
        self.timeout = timeout
        self.name = name
        self.advice = advice
        self.error: HangTimeout | None = None
        """The :class:`aiotestkit.HangTimeout` of the last time the guard fired."""
        self._tasks = tasks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._token: int | None = None
        self._generation = 0
        self._target: asyncio.Task[Any] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Guard tasks of ``loop`` from now on (:meth:`start` arms it).

        Example:
            ```python
            guard.attach(asyncio.get_running_loop())
            ```
        """
        self._loop = loop

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Disarm the guard and forget the loop.

        Example:
            ```python
            guard.detach(loop)
            ```
        """
        self.stop()
        self._loop = None

    def start(
        self, timeout: float | None = None, *, task: asyncio.Task[Any] | None = None
    ) -> None:
        """Cancel ``task`` if it still runs after ``timeout`` seconds of real time.

        Without ``task``, the next task created on the loop is guarded (the test's
        own task, when a runner starts the test next). The guarded task is the
        test's own: if it is still pending when the test ends (the loop was stopped
        under it by an error already reported), it is cancelled without being
        reported as a leak.

        Args:
            timeout: seconds (float, > 0); the guard's ``timeout`` by default. With
                neither, no time limit is set, but the task is still known as the
                test's own.
            task: the task to cancel.

        Raises:
            RuntimeError: if the guard is not attached.

        Example:
            ```python
            guard.start(5.0, task=asyncio.current_task())
            ```
        """
        if self._loop is None:
            raise RuntimeError(f"{self!r} is not attached; attach it before the hang guard")
        if self._token is not None:  # what stop() does, and the rest is set below
            _watchdog.cancel(self._token)
            self._token = None
        self._generation += 1
        self.error = None
        self._target = task
        if task is None:
            self._tasks.claim_next(self._claim)
        else:
            self._tasks.claim_next(None)
            self._tasks.add_test_task(task)
        timeout = self.timeout if timeout is None else timeout
        if timeout is None:
            return
        generation, loop = self._generation, self._loop

        def fire() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_hang, generation, timeout)

        self._token = _watchdog.schedule(timeout, fire)

    def stop(self) -> HangTimeout | None:
        """Disarm the guard.

        Returns:
            :attr:`error` if the guard fired, else ``None``.

        Example:
            ```python
            error = guard.stop()
            ```
        """
        if self._token is not None:
            _watchdog.cancel(self._token)
            self._token = None
        self._generation += 1
        self._tasks.claim_next(None)
        self._target = None
        return self.error

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def _claim(self, task: asyncio.Task[Any]) -> None:
        self._target = task

    def _on_hang(self, generation: int, timeout: float) -> None:
        if generation != self._generation or self._loop is None:
            return
        target = self._target
        tasks = sorted(
            asyncio.all_tasks(self._loop), key=lambda task: (task is not target, task.get_name())
        )
        described = "\n".join(
            "- " + self._tasks.describe(task).replace("\n", "\n  ") for task in tasks
        )
        self.error = HangTimeout(
            f"{self.name} still ran after {timeout:g} s, so the hang guard cancelled it. "
            f"If it is only slow, raise the limit with {self.advice.hang_timeout}; "
            "otherwise the stacks below show what it waits for.\n"
            f"Tasks on the loop ({len(tasks)}):\n{described}"
        )
        targets = [target] if target is not None and not target.done() else self._tasks.pending()
        for task in targets:
            if not task.done():
                task.cancel(f"aiotestkit hang guard: still running after {timeout:g} s")
