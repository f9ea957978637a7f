"""The hang guard: a real-time limit on a test's task, as a loop extension.

:class:`HangGuard` cancels the guarded task (the test's own) when it still runs
after ``timeout`` seconds of real time, and keeps a :class:`aiotestkit.HangTimeout`
that names the limit and shows the stack of every task on the loop. Real time is
measured by a SIGALRM timer where the main thread may use one, else by one daemon
thread (:class:`_Watchdog`), so a virtual clock does not move the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import itertools
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..errors import HangTimeout
from ._hygiene import DEFAULT_HANG_TIMEOUT, LIBRARY_ADVICE, Advice
from ._tasks import TaskTracker

__all__ = ["DEFAULT_HANG_TIMEOUT", "HangGuard"]


def _c_signal() -> Any:
    """The C functions under :mod:`signal`, or :mod:`signal` itself where there are none.

    The same calls without ``signal``'s enum conversions, which cost more than the
    system calls: the guard installs and removes its handler for every test.
    """
    try:
        return importlib.import_module("_signal")
    except ImportError:  # pragma: no cover - an interpreter without it
        return signal


_raw_signal: Any = _c_signal()

_SIGALRM = int(signal.SIGALRM) if hasattr(signal, "SIGALRM") else 0
_HAS_ITIMER = hasattr(signal, "setitimer")
_IDLE_HANDLERS = (signal.SIG_DFL, signal.SIG_IGN)
_IDLE_TIMER = (0.0, 0.0)


class _ThreadWatchdog:
    """One daemon thread that calls callbacks at real-time deadlines.

    The fallback of :class:`_Watchdog`: a live thread costs every test of the
    process about 0.15 ms (measured on 2,000 trivial async tests), so it is started
    only where SIGALRM cannot be used.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._thread: threading.Thread | None = None

    def schedule(self, token: int, delay: float, callback: Callable[[], None]) -> None:
        with self._condition:
            entry = (time.monotonic() + delay, token, callback)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="aiotestkit-hang-guard", daemon=True
                )
                self._thread.start()
            if self._heap[0] is entry:
                self._condition.notify()

    def cancel(self, token: int) -> None:
        # Cancelled entries stay in the heap until their deadline: O(1) here, and the
        # thread is not woken up for each test.
        with self._condition:
            self._cancelled.add(token)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._condition.wait(timeout)
                _, token, callback = heapq.heappop(self._heap)
                if token in self._cancelled:
                    self._cancelled.discard(token)
                    continue
            with contextlib.suppress(Exception):
                callback()


class _AlarmWatchdog:
    """Calls callbacks at real-time deadlines from a SIGALRM handler: no thread.

    Usable in the main thread where ``signal.setitimer`` exists and nobody else uses
    SIGALRM or the real-time interval timer (pytest-timeout's signal method does).
    The handler is installed while a deadline is pending, and the previous handler
    is put back when none is. The callbacks run in the main thread between two
    bytecodes, so they must only hand work over, as ``loop.call_soon_threadsafe`` does.
    """

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, Callable[[], None]]] = {}
        self._previous_handler: Any = None

    def usable(self) -> bool:
        if self._deadlines:
            return True  # our handler is installed
        if not _HAS_ITIMER or threading.get_ident() != threading.main_thread().ident:
            return False
        return (
            _raw_signal.getsignal(_SIGALRM) in _IDLE_HANDLERS
            and signal.getitimer(signal.ITIMER_REAL) == _IDLE_TIMER
        )

    def schedule(self, token: int, delay: float, callback: Callable[[], None]) -> None:
        if not self._deadlines:
            self._previous_handler = _raw_signal.signal(_SIGALRM, self._on_alarm)
        self._deadlines[token] = (time.monotonic() + delay, callback)
        self._arm()

    def cancel(self, token: int) -> bool:
        if self._deadlines.pop(token, None) is None:
            return False
        self._arm()
        return True

    def _arm(self) -> None:
        if not self._deadlines:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _raw_signal.signal(_SIGALRM, self._previous_handler)
            self._previous_handler = None
            return
        if len(self._deadlines) == 1:  # the common case: one test's guard
            [(earliest, _)] = self._deadlines.values()
        else:
            earliest = min(deadline for deadline, _ in self._deadlines.values())
        signal.setitimer(signal.ITIMER_REAL, max(earliest - time.monotonic(), 1e-3))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        due = [token for token, (deadline, _) in self._deadlines.items() if deadline <= now]
        callbacks = [self._deadlines.pop(token)[1] for token in due]
        self._arm()
        for callback in callbacks:
            with contextlib.suppress(Exception):
                callback()


class _Watchdog:
    """Real-time deadlines for the hang guard: SIGALRM where possible, else a thread."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._alarm = _AlarmWatchdog()
        self._thread = _ThreadWatchdog()

    def schedule(self, delay: float, callback: Callable[[], None]) -> int:
        token = next(self._counter)
        if self._alarm.usable():
            self._alarm.schedule(token, delay, callback)
        else:
            self._thread.schedule(token, delay, callback)
        return token

    def cancel(self, token: int) -> None:
        if not self._alarm.cancel(token):
            self._thread.cancel(token)


_watchdog = _Watchdog()


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
