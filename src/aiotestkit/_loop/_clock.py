"""Virtual time for asyncio: the loop's clock jumps to the next timer instead of waiting.

A :class:`VirtualClock` attaches to a running selector event loop (the one
pytest-asyncio or :func:`asyncio.run` made) by replacing three attributes of that
loop object, never its class: ``loop.time``, ``loop.run_in_executor`` and the
``select`` method of the loop's selector. :meth:`VirtualClock.detach` puts them back.

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
import linecache
import math
import re
import selectors
import socket
import struct
import sys
import threading
import time as time_module
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

from .._core import set_virtual_time
from ..errors import DeadlockError

try:
    import fcntl
except ImportError:  # Windows: no socket queue ioctls; the threshold covers it
    fcntl = None  # type: ignore[assignment]

__all__ = ["VirtualClock"]

DEFAULT_AUTOJUMP_THRESHOLD = 0.002
"""Real seconds of quiet (no I/O, nothing in flight) before the clock jumps."""

DEFAULT_IN_FLIGHT_TIMEOUT = 5.0
"""Real seconds the clock waits for executor jobs and unacknowledged bytes at most."""

DEFAULT_DEADLOCK_TIMEOUT = 1.0
"""Real seconds of quiet, with nothing able to move time, before DeadlockError."""

_POLL_INTERVAL = 0.001
"""Real seconds of one selector poll while waiting for in-flight I/O."""

# Linux ioctls on a TCP socket: bytes in the send queue (not yet acknowledged), and
# bytes in the send queue not yet sent. Their difference is on the wire right now.
_SIOCOUTQ = 0x5411
_SIOCOUTQNSD = 0x894B
_INT = struct.Struct("i")

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


def _send_queue(fd: int) -> tuple[int, int]:
    """(sent but unacknowledged, not sent yet) bytes of a TCP socket; (0, 0) if not TCP/Linux."""
    if fcntl is None:
        return 0, 0
    try:
        queued = int(_INT.unpack(fcntl.ioctl(fd, _SIOCOUTQ, b"\0\0\0\0"))[0])
        if not queued:
            return 0, 0
        unsent = int(_INT.unpack(fcntl.ioctl(fd, _SIOCOUTQNSD, b"\0\0\0\0"))[0])
    except OSError:  # not a socket, a listening socket, not TCP, not Linux
        return 0, 0
    return max(0, queued - unsent), unsent


_TCP_INFO_SIZE = 136
_TCP_INFO_BYTES = struct.Struct("QQ")  # tcpi_bytes_acked, tcpi_bytes_received (Linux 4.1+)
_TCP_INFO_BYTES_OFFSET = 120


def _tcp_counters(fd: int) -> tuple[object, object, int, int] | None:
    """(local address, peer address, bytes acked, bytes received) of a TCP socket fd."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        local, peer = sock.getsockname(), sock.getpeername()
    except (OSError, AttributeError):
        return None
    finally:
        sock.detach()  # the loop owns the fd: never close it
    if len(info) < _TCP_INFO_SIZE:
        return None
    acked, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_BYTES_OFFSET)
    return local, peer, int(acked), int(received)


def _bytes_in_transit(fds: list[int]) -> int | None:
    """The fd of a TCP socket whose sent bytes have not all reached their peer, or None.

    A socket with unacknowledged bytes is in transit unless its peer is one of
    ``fds`` (a socket of the same loop) and has received them all already: then only
    the peer's (delayed) acknowledgement is on its way, and nothing waits for it;
    unless the socket also holds bytes back until that acknowledgement comes (Nagle's
    algorithm on a socket without ``TCP_NODELAY``): those are on their way too.
    """
    senders = [
        (fd, unacked, unsent) for fd in fds for unacked, unsent in [_send_queue(fd)] if unacked
    ]
    if not senders:
        return None
    received_by: dict[tuple[object, object], int] = {}
    for fd in fds:
        counters = _tcp_counters(fd)
        if counters is not None:
            local, peer, _, received = counters
            received_by[(peer, local)] = received
    for fd, unacked, unsent in senders:
        if unsent:
            return fd
        counters = _tcp_counters(fd)
        if counters is None:
            return fd
        local, peer, acked, _ = counters
        peer_received = received_by.get((local, peer))
        if peer_received is None or peer_received < acked + unacked:
            return fd
    return None


def _outside_peer(fds: list[int], self_pipe: int | None) -> str | None:
    """Something of the loop whose other end is outside it, or ``None``.

    A TCP connection whose both ends are sockets of the loop, a listening socket and
    the loop's own wake-up socket are inside. Anything else (a connection to a thread
    or another process, a pipe, a UDP or Unix socket) may get an answer the loop cannot
    see coming, so the clock gives it ``autojump_threshold`` of real time first.
    """
    connections: list[tuple[object, object]] = []
    for fd in fds:
        if fd == self_pipe:
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            return f"fd {fd}, which is not a socket"
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                return f"socket fd {fd} ({sock.family.name}, {sock.type.name})"
            connections.append((sock.getsockname(), sock.getpeername()))
        except OSError:
            return f"socket fd {fd}"
        finally:
            sock.detach()  # the loop owns the fd: never close it
    ends = set(connections)
    for local, peer in connections:
        if (peer, local) not in ends:
            return f"a connection from {local} to {peer}, outside the loop"
    return None


def _outside_thread() -> str | None:
    """A thread that may work for the loop unseen (not the loop's executor), or ``None``."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        # asyncio's default executor threads run jobs the clock tracks already.
        if thread is current or thread.name.startswith(("asyncio_", "aiotestkit-")):
            continue
        return f"thread {thread.name!r}"
    return None


def _task_order(task: asyncio.Task[Any]) -> tuple[int, str]:
    match = re.fullmatch(r"Task-(\d+)", task.get_name())
    return (int(match.group(1)) if match else sys.maxsize, task.get_name())


def _where(frame: FrameType) -> str:
    code = frame.f_code
    source = linecache.getline(code.co_filename, frame.f_lineno).strip()
    where = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
    return f"{where}: {source}" if source else where


def _describe_task(task: asyncio.Task[Any]) -> str:
    """One task, the chain of awaits it is suspended in, and the object at its end."""
    frames = list(task.get_stack())
    awaited: object = task.get_coro()
    # get_stack() stops at the task's own coroutine; follow the awaits down.
    seen = 0
    while awaited is not None and seen < 50:
        seen += 1
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None and (not frames or frames[-1] is not frame):
            frames.append(frame)
        inner = getattr(awaited, "cr_await", None)
        if inner is None:
            inner = getattr(awaited, "gi_yieldfrom", None)
        if inner is None:
            break
        awaited = inner
    lines = [f"  - {task.get_name()} ({getattr(task.get_coro(), '__qualname__', '?')}):"]
    lines.extend(f"      {_where(frame)}" for frame in frames)
    # The future the task is suspended on (asyncio keeps it on the task).
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        lines.append(f"      waits on {_short_repr(waiter)}")
    return "\n".join(lines)


def _short_repr(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        self._patched: list[tuple[object, str, object, bool]] = []
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
            self._patch(loop, "time", self.time)
            self._patch(loop, "run_in_executor", self._run_in_executor)
            self._patch(selector, "select", self._select)
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

    def _patch(self, owner: object, name: str, value: object) -> None:
        had_own = name in vars(owner)
        previous = vars(owner).get(name)
        setattr(owner, name, value)
        self._patched.append((owner, name, previous, had_own))

    def _restore(self) -> None:
        while self._patched:
            owner, name, previous, had_own = self._patched.pop()
            if had_own:
                setattr(owner, name, previous)
            else:
                vars(owner).pop(name, None)

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
        jobs = sum(1 for job in self._executor_jobs if not job.done())
        if jobs:
            return f"{jobs} executor job(s) running"
        assert self._selector is not None
        fd = _bytes_in_transit([key.fd for key in list(self._selector.get_map().values())])
        if fd is not None:
            return f"bytes in transit on socket fd {fd}"
        return None

    def _outside_actor(self) -> str | None:
        """Who outside the loop might answer it unseen, or ``None``."""
        assert self._selector is not None
        assert self._loop is not None
        self_pipe = getattr(self._loop, "_ssock", None)
        fds = [key.fd for key in list(self._selector.get_map().values())]
        return _outside_peer(fds, self_pipe.fileno() if self_pipe is not None else None) or (
            _outside_thread()
        )

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
        tasks = sorted(
            (task for task in asyncio.all_tasks(self._loop) if not task.done()),
            key=_task_order,
        )
        listed = "\n".join(_describe_task(task) for task in tasks) or "  (no task)"
        if timeout is None:
            why = (
                "no timer is scheduled, no I/O arrived for "
                f"{self.deadlock_timeout:g} s of real time and no executor job is "
                "running, so nothing can ever wake them"
            )
            fix = (
                "A task probably awaits a future, event, queue or reply that nothing will "
                "provide. Make it happen, or bound the wait with asyncio.timeout()."
            )
        else:
            next_timer = self._next_timer()
            due = f"{next_timer:g}" if next_timer is not None else "?"
            why = (
                f"autojump is off and the next timer is due at t={due} s (virtual; now "
                f"t={self._now:g} s), but no task is calling clock.advance()"
            )
            fix = (
                "Call 'await clock.advance(seconds)' from the test while the others "
                "wait, or turn autojump on."
            )
        return (
            f"event loop deadlocked at virtual time t={self._now:g} s: every task waits and "
            f"{why}. Waiting tasks ({len(tasks)}):\n{listed}\n{fix}"
        )
