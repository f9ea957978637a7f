"""Virtual time for asyncio: the loop's clock jumps to the next timer instead of waiting.

A :class:`VirtualClock` attaches to a running selector event loop (the one
pytest-asyncio or :func:`asyncio.run` made) by replacing, for that loop alone,
``loop.time``, ``loop.run_in_executor`` and the ``select`` method of the loop's
selector (:func:`aiotestkit._core.patch_method` says how, and why the loop's
``__dict__`` is never read). :meth:`VirtualClock.detach` puts them back.

How time moves. The loop calls ``selector.select(timeout)`` with ``timeout == 0`` while
callbacks are ready or a timer is due; those calls pass straight through. A call with
a positive timeout (or ``None``) means every task is blocked. The clock then:

1. returns at once if any I/O event is ready (a zero-time poll);
2. waits in real time while I/O is *in flight*: a job started by
   ``loop.run_in_executor`` (``getaddrinfo`` runs there) has not finished, or a TCP
   socket of the loop has sent bytes its peer has not received yet (Linux: sent but
   unacknowledged, ``SIOCOUTQ - SIOCOUTQNSD``, unless the peer is a socket of the
   loop whose ``TCP_INFO`` shows it received them), or holds bytes back until its
   peer acknowledges those (Nagle's algorithm), at most ``in_flight_timeout``;
3. if something outside the loop could answer unseen (a connection whose other end
   is not a socket of the loop, a pipe, a UDP socket, a thread other than the loop's
   executor), waits ``autojump_threshold`` real seconds for it;
4. if still nothing happened, sets the virtual time to the next timer (autojump),
   or to the target of a running :meth:`VirtualClock.advance`, and returns no events:
   the loop then runs every timer now due, in order.

With no timer at all (or autojump off and no ``advance`` running), it waits
``deadlock_timeout`` real seconds for I/O, then raises :class:`aiotestkit.DeadlockError`
naming every task and the line it waits on.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import time as time_module
import weakref
from collections.abc import Callable
from typing import Any

from .._core import patch_method, set_instance_attribute, set_virtual_time
from ..errors import DeadlockError
from ._clock_diagnostics import deadlock_message, in_flight, outside_actor

__all__ = ["VirtualClock"]

DEFAULT_AUTOJUMP_THRESHOLD = 0.002
"""Real seconds of quiet (no I/O, nothing in flight) before the clock jumps."""

DEFAULT_IN_FLIGHT_TIMEOUT = 5.0
"""Real seconds the clock waits for executor jobs and unacknowledged bytes at most."""

DEFAULT_DEADLOCK_TIMEOUT = 1.0
"""Real seconds of quiet, with nothing able to move time, before DeadlockError."""

_POLL_INTERVAL = 0.001
"""Real seconds of one selector poll while waiting for in-flight I/O."""

_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VirtualClock] = (
    weakref.WeakKeyDictionary()
)


def _check_seconds(name: str, value: float, *, allow_zero: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name} must be {kind} finite number of seconds, got {value!r}")
    return float(value)


class VirtualClock:
    """Virtual time for one asyncio event loop: timers fire without real waiting.

    Once attached, ``loop.time()`` returns virtual seconds, so ``asyncio.sleep``,
    ``loop.call_later``/``call_at``, ``asyncio.timeout``, ``asyncio.wait_for``,
    aiohttp's ``ClientTimeout`` and httpx (anyio) timeouts all follow it. Virtual time
    only moves when every task is blocked and no I/O is ready or in flight (autojump),
    or when the test calls :meth:`advance`. Real I/O on loopback (test servers, TLS
    handshakes) and executor jobs are waited for in real time first, so a reply on its
    way wins against a timeout, as it would in real time.

    The same test gives the same order of events on every run: time moves only to
    the exact deadline of a timer or an ``advance`` target, never by measured real
    time. Real time only decides *whether* to wait longer for I/O.

    Args:
        start: the virtual time at attach, in seconds (float); ``0.0`` by default.
            Timers already scheduled on the loop keep their remaining delay.
        autojump: jump to the next timer when the loop is idle (bool). When
            ``False``, time moves only in :meth:`advance`.
        autojump_threshold: real seconds (float, >= 0) the loop must stay quiet
            before a jump when something outside it could answer (a connection to a
            thread or another process, a pipe, a UDP socket, a thread that is not the
            loop's executor). Raise it for such peers that take longer to answer.
            When every connection has both ends in the loop, time jumps at once.
        in_flight_timeout: real seconds (float, > 0) the clock waits at most for
            executor jobs and unacknowledged bytes before it jumps anyway.
        deadlock_timeout: real seconds (float, > 0) the loop may stay idle, with no
            timer to jump to and nothing in flight, before :class:`DeadlockError`.

    Raises:
        TypeError, ValueError: if an argument is not a number of seconds in range.

    Example:
        ```python
        clock = VirtualClock()
        clock.attach(asyncio.get_running_loop())
        await asyncio.sleep(600)  # returns at once
        assert clock.time() == 600.0
        clock.detach(asyncio.get_running_loop())
        ```
    """

    def __init__(
        self,
        *,
        start: float = 0.0,
        autojump: bool = True,
        autojump_threshold: float = DEFAULT_AUTOJUMP_THRESHOLD,
        in_flight_timeout: float = DEFAULT_IN_FLIGHT_TIMEOUT,
        deadlock_timeout: float = DEFAULT_DEADLOCK_TIMEOUT,
    ) -> None:
        if (
            isinstance(start, bool)
            or not isinstance(start, (int, float))
            or not (math.isfinite(start))
        ):
            raise TypeError(f"start must be a finite number of seconds, got {start!r}")
        self._now = float(start)
        self.autojump = autojump
        self.autojump_threshold = autojump_threshold
        self.in_flight_timeout = in_flight_timeout
        self.deadlock_timeout = deadlock_timeout
        self._loop: asyncio.BaseEventLoop | None = None
        self._selector: selectors.BaseSelector | None = None
        self._undo: list[Callable[[], None]] = []
        self._original_select: Callable[[float | None], list[Any]] | None = None
        self._original_run_in_executor: Callable[..., asyncio.Future[Any]] | None = None
        self._executor_jobs: set[asyncio.Future[Any]] = set()
        self._advance_target: float | None = None
        self._advance_waiter: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        state = "attached" if self._loop is not None else "detached"
        mode = "autojump" if self.autojump else "manual"
        return f"<{type(self).__name__} t={self._now:g} {mode} {state}>"

    @property
    def autojump(self) -> bool:
        """Whether time jumps to the next timer when the loop is idle (bool, settable).

        Example:
            ```python
            clock.autojump = False  # from now on, only clock.advance() moves time
            ```
        """
        return self._autojump

    @autojump.setter
    def autojump(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"autojump must be True or False, got {value!r}")
        self._autojump = value

    @property
    def autojump_threshold(self) -> float:
        """Real seconds of quiet before a jump when something outside the loop could answer.

        Settable (float, >= 0). See the class arguments.

        Example:
            ```python
            clock.autojump_threshold = 0.2  # a peer in a thread answers within 200 ms
            ```
        """
        return self._autojump_threshold

    @autojump_threshold.setter
    def autojump_threshold(self, value: float) -> None:
        self._autojump_threshold = _check_seconds("autojump_threshold", value)

    @property
    def in_flight_timeout(self) -> float:
        """Real seconds the clock waits at most for in-flight I/O before it jumps anyway.

        Settable (float, > 0). See the class arguments.

        Example:
            ```python
            clock.in_flight_timeout = 10.0
            ```
        """
        return self._in_flight_timeout

    @in_flight_timeout.setter
    def in_flight_timeout(self, value: float) -> None:
        self._in_flight_timeout = _check_seconds("in_flight_timeout", value, allow_zero=False)

    @property
    def deadlock_timeout(self) -> float:
        """Real seconds of quiet, with nothing able to move time, before DeadlockError.

        Settable (float, > 0). See the class arguments.

        Example:
            ```python
            clock.deadlock_timeout = 0.1
            ```
        """
        return self._deadlock_timeout

    @deadlock_timeout.setter
    def deadlock_timeout(self, value: float) -> None:
        self._deadlock_timeout = _check_seconds("deadlock_timeout", value, allow_zero=False)

    @property
    def attached(self) -> bool:
        """Whether the clock is attached to a loop.

        Example:
            ```python
            assert not VirtualClock().attached
            ```
        """
        return self._loop is not None

    def time(self) -> float:
        """Return the virtual time in seconds: what ``loop.time()`` returns while attached.

        Returns:
            The virtual time (float): ``start`` plus every jump and advance so far.

        Example:
            ```python
            before = clock.time()
            await asyncio.sleep(10)
            assert clock.time() - before == 10.0
            ```
        """
        return self._now

    # -- attaching ------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make ``loop``'s time virtual. Call :meth:`detach` to undo it.

        Works on a running loop or one about to run. Timers already scheduled keep
        their remaining delay.

        Args:
            loop: a selector event loop (:class:`asyncio.SelectorEventLoop`, the
                default on Linux and macOS), open.

        Raises:
            TypeError: if ``loop`` is not a selector event loop (uvloop, proactor).
            RuntimeError: if ``loop`` is closed, this clock is attached already, or
                another virtual clock is attached to ``loop``.

        Example:
            ```python
            clock.attach(asyncio.get_running_loop())
            ```
        """
        if isinstance(loop, asyncio.AbstractEventLoop) and loop.is_closed():
            raise RuntimeError(f"cannot attach {self!r} to {loop!r}: the loop is closed")
        selector = getattr(loop, "_selector", None)
        if not isinstance(loop, asyncio.BaseEventLoop) or not isinstance(
            selector, selectors.BaseSelector
        ):
            raise TypeError(
                f"a VirtualClock needs an asyncio selector event loop, got {type(loop).__name__}; "
                "use the default event loop (asyncio.SelectorEventLoop) in tests that use it"
            )
        if self._loop is not None:
            raise RuntimeError(f"{self!r} is attached to {self._loop!r} already; detach it first")
        other = _clocks.get(loop)
        if other is not None:
            raise RuntimeError(
                f"{loop!r} has a virtual clock already ({other!r}); use that one "
                "(the clock fixture) instead of attaching a second"
            )
        real_now = loop.time()
        self._shift_timers(loop, self._now - real_now)
        self._loop = loop
        self._selector = selector
        self._original_select = selector.select
        self._original_run_in_executor = loop.run_in_executor
        try:
            # time is read on every iteration: an attribute of the loop object;
            # run_in_executor seldom: replaced for this loop through its class.
            self._undo.append(set_instance_attribute(loop, "time", self.time))
            self._undo.append(patch_method(loop, "run_in_executor", self._run_in_executor))
            self._undo.append(set_instance_attribute(selector, "select", self._select))
        except BaseException:
            self._restore()
            self._shift_timers(loop, real_now - self._now)
            self._loop = None
            raise
        _clocks[loop] = self
        set_virtual_time(loop, True)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``loop`` its real time back and undo everything :meth:`attach` changed.

        Timers still scheduled keep their remaining delay, now in real time. A running
        :meth:`advance` fails with :class:`RuntimeError`. Calling it on a loop the
        clock is not attached to does nothing, so it is safe in a ``finally``.

        Args:
            loop: the loop given to :meth:`attach`.

        Raises:
            RuntimeError: if the clock is attached to a different loop.

        Example:
            ```python
            clock.detach(asyncio.get_running_loop())
            ```
        """
        if self._loop is None:
            return
        if loop is not self._loop:
            raise RuntimeError(f"{self!r} is attached to {self._loop!r}, not to {loop!r}")
        try:
            self._restore()
        finally:
            self._loop = None
            self._selector = None
            _clocks.pop(loop, None)
            set_virtual_time(loop, False)
            self._executor_jobs.clear()
            if not loop.is_closed():
                self._shift_timers(loop, loop.time() - self._now)
            waiter = self._advance_waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(
                    RuntimeError(f"{self!r} was detached while clock.advance() was running")
                )

    def _restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    @staticmethod
    def _shift_timers(loop: asyncio.AbstractEventLoop, delta: float) -> None:
        # A uniform shift keeps the heap order of loop._scheduled.
        for handle in getattr(loop, "_scheduled", ()):
            handle._when += delta

    # -- manual control -------------------------------------------------------------

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``, running every timer due on the way.

        Timers run in the order of their deadlines, each at its own time: before the
        clock moves on to the next one, the tasks it woke run until they block again
        (and their I/O completes). Returns when the clock reads ``time() + seconds``
        and everything due by then has run. Works with autojump on or off.

        Args:
            seconds: how far to move, in seconds (float, >= 0). ``0`` runs what is
                due now and lets it settle.

        Raises:
            TypeError, ValueError: if ``seconds`` is not a non-negative number.
            RuntimeError: if the clock is not attached to the running loop, or another
                ``advance`` is running.

        Example:
            ```python
            task = asyncio.create_task(asyncio.sleep(30))
            await clock.advance(29.9)
            assert not task.done()
            await clock.advance(0.1)
            assert task.done()
            ```
        """
        seconds = _check_seconds("seconds", seconds)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise RuntimeError(
                f"cannot advance {self!r}: it is not attached to the running loop; "
                "attach it with clock.attach(loop) or use the clock fixture"
            )
        if self._advance_waiter is not None:
            raise RuntimeError(f"cannot advance {self!r}: another advance() is running")
        waiter: asyncio.Future[None] = loop.create_future()
        self._advance_target = self._now + seconds
        self._advance_waiter = waiter
        try:
            await waiter
        finally:
            self._advance_target = None
            self._advance_waiter = None

    # -- the loop's side ------------------------------------------------------------

    def _run_in_executor(
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        assert self._original_run_in_executor is not None
        future = self._original_run_in_executor(executor, func, *args)
        self._executor_jobs.add(future)
        future.add_done_callback(self._executor_jobs.discard)
        return future

    def _in_flight(self) -> str | None:
        """What real I/O the loop waits for right now, or ``None``."""
        assert self._selector is not None
        return in_flight(self._executor_jobs, self._selector)

    def _outside_actor(self) -> str | None:
        """Who outside the loop might answer it unseen, or ``None``."""
        assert self._selector is not None
        assert self._loop is not None
        return outside_actor(self._loop, self._selector)

    def _select(self, timeout: float | None) -> list[Any]:
        select = self._original_select
        assert select is not None
        if self._loop is None:  # detached while another wrapper still calls us
            return select(timeout)
        if timeout is not None and timeout <= 0:
            return select(0)  # callbacks ready or a timer due: not idle
        events = select(0)
        if events:
            return events
        # Every task is blocked. First wait, in real time, for I/O on its way.
        started = time_module.monotonic()
        while self._in_flight() is not None:
            if time_module.monotonic() - started >= self.in_flight_timeout:
                break
            events = select(_POLL_INTERVAL)
            if events:
                return events
        target = self._jump_target(timeout)
        if target is None:
            return self._wait_or_report_deadlock(timeout, select)
        if self.autojump_threshold and self._outside_actor() is not None:
            events = select(self.autojump_threshold)
            if events:
                return events
            if self._in_flight() is not None:
                return []  # something started: check again on the next pass
        self._jump(target)
        return []

    def _jump_target(self, timeout: float | None) -> float | None:
        """The virtual time to jump to now, or ``None`` if nothing may move time."""
        assert self._loop is not None
        next_timer: float | None = None
        if timeout is not None:
            scheduled = getattr(self._loop, "_scheduled", None)
            next_timer = scheduled[0]._when if scheduled else self._now + timeout
        target = self._advance_target
        if target is not None:
            if next_timer is not None and next_timer <= target:
                return next_timer
            return target
        return next_timer if self.autojump else None

    def _jump(self, target: float) -> None:
        self._now = max(self._now, target)
        if self._advance_target is not None and self._now >= self._advance_target:
            # Nothing is due before the target and the loop is quiet: advance is done.
            next_timer = self._next_timer()
            if next_timer is None or next_timer > self._advance_target:
                waiter = self._advance_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def _next_timer(self) -> float | None:
        for handle in sorted(getattr(self._loop, "_scheduled", ())):
            if not handle.cancelled():
                return float(handle.when())
        return None

    def _wait_or_report_deadlock(
        self, timeout: float | None, select: Callable[[float | None], list[Any]]
    ) -> list[Any]:
        events = select(self.deadlock_timeout)
        if events or self._in_flight() is not None:
            return events
        raise DeadlockError(self._deadlock_message(timeout))

    def _deadlock_message(self, timeout: float | None) -> str:
        assert self._loop is not None
        return deadlock_message(
            self._loop,
            now=self._now,
            timeout=timeout,
            deadlock_timeout=self.deadlock_timeout,
            next_timer=self._next_timer(),
        )
