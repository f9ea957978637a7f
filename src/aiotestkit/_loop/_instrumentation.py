"""Loop instrumentation: one component that owns a test's loop set-up and tear-down.

:class:`LoopInstrumentation` attaches to the event loop a test runs on: it installs an
exception handler, a task factory that records where each task was created, a warnings
hook, a log handler for aiohttp's server errors and a hang guard, and attaches
extensions (a virtual clock, a network sandbox) in order. When the test ends it lets
the loop settle, gathers what the test left behind into a
:class:`aiotestkit.HygieneReport`, and restores every piece of global state it
changed, in reverse order, also when the test failed or was cancelled.

Other aiotestkit components report into the instrumentation of the running loop
with :func:`report_issue` (something happened: a refused connection) and
:func:`register_probe` (ask me at the end of the test: a server still holding
unanswered requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import linecache
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, Protocol, TextIO, runtime_checkable

from ..errors import HangTimeout, UnansweredRequestsWarning
from . import _compat
from ._compat import keep_task_names, mark_lost_tls_transports_closed
from ._hygiene import CHECKS, HygieneIssue, HygieneReport, resolve_modes

__all__ = [
    "DEFAULT_HANG_TIMEOUT",
    "HygieneProbe",
    "LoopExtension",
    "LoopInstrumentation",
    "register_probe",
    "report_issue",
]

DEFAULT_HANG_TIMEOUT = 60.0
"""Seconds an async test may run before the hang guard cancels it."""

_SETTLE_ITERATIONS = 10
"""Loop iterations given to cancelled tasks and closing transports at the end of a test."""

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_NOT_CREATION_SITES = (_ASYNCIO_DIR, _compat.__file__)
"""Where a task is created on the way from the caller: asyncio, and the name-keeping shim."""
_SERVER_LOGGER = "aiohttp.server"

_Site = tuple[str, int, str]
_TaskFactory = Callable[..., "asyncio.Future[Any]"]
_ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


@runtime_checkable
class LoopExtension(Protocol):
    """Something that plugs into a test's loop, such as a virtual clock.

    :class:`LoopInstrumentation` calls ``attach(loop)`` on its extensions in the order
    they were given, after its own set-up, and ``detach(loop)`` in the reverse order,
    before its own tear-down. ``detach`` is always called for every extension whose
    ``attach`` returned, also when the test or another extension failed.

    Example:
        ```python
        class Recorder:
            def attach(self, loop: asyncio.AbstractEventLoop) -> None:
                print("attach")

            def detach(self, loop: asyncio.AbstractEventLoop) -> None:
                print("detach")
        ```
    """

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start acting on ``loop``.

        Example:
            ```python
            clock.attach(asyncio.get_running_loop())
            ```
        """

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop acting on ``loop`` and restore what ``attach`` changed.

        Example:
            ```python
            clock.detach(loop)
            ```
        """


@runtime_checkable
class HygieneProbe(Protocol):
    """An object asked at the end of a test what it was left holding.

    Register one with :func:`register_probe`. Each issue is a pair
    ``(check, message)``, the check a hygiene check name such as ``"pending_tasks"``.

    Example:
        ```python
        class Server:
            def hygiene_issues(self) -> list[tuple[str, str]]:
                return [("unanswered_requests", "GET /price was never answered")]
        ```
    """

    def hygiene_issues(self) -> Iterable[tuple[str, str]]:
        """The problems this object is left with, as ``(check, message)`` pairs."""


_active: dict[int, list[LoopInstrumentation]] = {}
"""The attached instrumentations of each loop (by ``id``), innermost last."""


def _innermost(loop: asyncio.AbstractEventLoop | None) -> LoopInstrumentation | None:
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
    stack = _active.get(id(loop))
    return stack[-1] if stack else None


def is_attached(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Tell whether a :class:`LoopInstrumentation` is attached to ``loop``.

    Args:
        loop: the loop; the running loop by default.

    Returns:
        True if the hygiene checks will report what :func:`report_issue` sends them.

    Example:
        ```python
        assert not is_attached()
        ```
    """
    return _innermost(loop) is not None


def report_issue(
    check: str, message: str, *, loop: asyncio.AbstractEventLoop | None = None
) -> bool:
    """Report a hygiene problem to the instrumentation attached to ``loop``.

    For components that see a problem when it happens, such as the network sandbox
    refusing a connection (check ``"refused_connections"``). Nothing happens when no
    instrumentation is attached, or when the check is ``off``.

    Args:
        check: the name of a hygiene check, such as ``"pending_tasks"``.
        message: what was observed and where, possibly on several lines.
        loop: the loop the problem happened on; the running loop by default.

    Returns:
        True if an instrumentation recorded the problem.

    Raises:
        ValueError: if ``check`` is not a known check.

    Example:
        ```python
        assert not report_issue("refused_connections", "connection to example.com:443 refused")
        ```
    """
    if check not in CHECKS:
        raise ValueError(f"unknown hygiene check {check!r}; the checks are {', '.join(CHECKS)}")
    instrumentation = _innermost(loop)
    if instrumentation is None:
        return False
    return instrumentation.add_issue(check, message)


def register_probe(probe: HygieneProbe, *, loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Ask ``probe`` for its issues when the test running on ``loop`` ends.

    For components that hold obligations, such as a server that must answer every
    request: register it when it starts; at the end of the test the instrumentation
    calls ``probe.hygiene_issues()`` if the probe is still alive. The probe is held by
    a weak reference.

    Args:
        probe: an object with a ``hygiene_issues()`` method (:class:`HygieneProbe`).
        loop: the loop of the test; the running loop by default.

    Returns:
        True if an instrumentation is attached to the loop and will ask the probe.

    Example:
        ```python
        assert not register_probe(server)
        ```
    """
    instrumentation = _innermost(loop)
    if instrumentation is None:
        return False
    instrumentation._probes.add(probe)
    return True


def _short_path(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith(os.pardir) else relative


def _format_site(site: _Site) -> str:
    filename, lineno, name = site
    return f"{_short_path(filename)}:{lineno} in {name}"


def _format_frame_line(site: _Site) -> str:
    source = linecache.getline(site[0], site[1]).strip()
    return f"{_format_site(site)}" + (f": {source}" if source else "")


def _creation_sites(depth: int = 3) -> tuple[_Site, ...]:
    """Where the task being created comes from: up to ``depth`` frames outside asyncio."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_NOT_CREATION_SITES):
        frame = frame.f_back
    sites: list[_Site] = []
    while (
        frame is not None
        and len(sites) < depth
        and not frame.f_code.co_filename.startswith(_NOT_CREATION_SITES)
    ):
        sites.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return tuple(sites)


def _await_chain(awaitable: object) -> tuple[list[_Site], object]:
    """The frames of a coroutine and of what it awaits, outermost first."""
    sites: list[_Site] = []
    current = awaitable
    for _ in range(100):
        frame = (
            getattr(current, "cr_frame", None)
            or getattr(current, "gi_frame", None)
            or getattr(current, "ag_frame", None)
        )
        if frame is None:
            break
        sites.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        awaited = (
            getattr(current, "cr_await", None)
            or getattr(current, "gi_yieldfrom", None)
            or getattr(current, "ag_await", None)
        )
        if awaited is None:
            break
        current = awaited
    return sites, current


def _watched_files(
    loop: asyncio.AbstractEventLoop, known: set[int] | frozenset[int] = frozenset()
) -> dict[int, str]:
    """The file descriptors a selector loop watches, except ``known``, each described.

    Transports and listening servers stay registered with the loop's selector until
    they are closed, so they are never garbage collected (and never warn) while the
    loop lives: this is how they are found. Loops without a selector give ``{}``.
    """
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return {}
    try:
        mapping = selector.get_map()
        keys = [mapping[fd] for fd in mapping if fd not in known]
    except (AttributeError, KeyError, RuntimeError):
        return {}
    described: dict[int, str] = {}
    for key in keys:
        handles = key.data if isinstance(key.data, tuple) else ()
        handle = next((h for h in handles if h is not None), None)
        callback = getattr(handle, "_callback", None)
        args: tuple[Any, ...] = getattr(handle, "_args", None) or ()
        owner = getattr(callback, "__self__", None)
        if getattr(callback, "__name__", "") == "_accept_connection":
            server = args[3] if len(args) > 3 else None
            try:
                address = args[1].getsockname()
            except (AttributeError, IndexError, OSError):
                address = key.fileobj
            described[key.fd] = f"server still listening on {address!r}: {server!r}"
        elif isinstance(owner, asyncio.BaseTransport):
            described[key.fd] = f"unclosed transport {owner!r}"
        elif owner is loop:
            continue  # the loop's own self-pipe
        else:
            described[key.fd] = f"file descriptor {key.fd} still watched by the loop: {handle!r}"
    return described


_WARNING_FILTERS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    (
        "unawaited_coroutines",
        ("always", re.compile(r"coroutine .* was never awaited", re.I), RuntimeWarning, None, 0),
    ),
    ("unclosed_resources", ("always", None, ResourceWarning, None, 0)),
    ("unanswered_requests", ("always", None, UnansweredRequestsWarning, None, 0)),
)
"""The warnings filters each check adds, in the form of ``warnings.filters`` entries."""


def _insert_warning_filters(filters: list[tuple[Any, ...]]) -> None:
    """Put ``filters`` first in ``warnings.filters`` (inside a ``catch_warnings``)."""
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is None or not isinstance(warnings.filters, list):
        # No fast path on this Python: use the public API.
        for action, message, category, _, _ in reversed(filters):
            warnings.filterwarnings(action, message.pattern if message else "", category)
        return
    warnings.filters[:0] = filters
    mutated()


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
        if not hasattr(signal, "setitimer") or threading.current_thread() is not (
            threading.main_thread()
        ):
            return False
        handler = signal.getsignal(signal.SIGALRM)
        idle_timer = signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        return idle_timer and handler in (signal.SIG_DFL, signal.SIG_IGN)

    def schedule(self, token: int, delay: float, callback: Callable[[], None]) -> None:
        if not self._deadlines:
            self._previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
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
            signal.signal(signal.SIGALRM, self._previous_handler)
            self._previous_handler = None
            return
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


class _ServerErrorHandler(logging.Handler):
    """Hands aiohttp's server error log records to the running loop's instrumentation.

    One instance is shared; it is on aiohttp's server logger only while at least one
    instrumentation that checks ``unretrieved_exceptions`` is attached.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.users = 0

    def emit(self, record: logging.LogRecord) -> None:
        instrumentation = _innermost(None)
        if instrumentation is None:
            return
        message = f"aiohttp server: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + "".join(traceback.format_exception(record.exc_info[1])).rstrip()
        instrumentation.add_issue("unretrieved_exceptions", message)

    def start(self) -> None:
        self.users += 1
        if self.users == 1:
            _server_logger.addHandler(self)

    def stop(self) -> None:
        self.users -= 1
        if self.users == 0:
            _server_logger.removeHandler(self)


_server_logger = logging.getLogger(_SERVER_LOGGER)
_server_errors = _ServerErrorHandler()


class _Undo:
    """Callbacks run in reverse order; every one runs, the first error is re-raised."""

    def __init__(self) -> None:
        self._callbacks: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def push(self, callback: Callable[..., object], *args: Any) -> None:
        self._callbacks.append((callback, args))

    def close(self) -> None:
        error: BaseException | None = None
        while self._callbacks:
            callback, args = self._callbacks.pop()
            try:
                callback(*args)
            except BaseException as exc:  # run the rest, then re-raise the first
                error = error or exc
        if error is not None:
            raise error


class LoopInstrumentation:
    """Watch an event loop while a test runs on it, and report what the test left behind.

    Attach it to the test's loop before the test, and finish it after: it records

    - tasks still pending at the end (``pending_tasks``), with the coroutine, where
      the task was created and where it is waiting; they are cancelled after that;
    - exceptions no one retrieved (``unretrieved_exceptions``): everything passed to
      the loop's exception handler, such as "Task exception was never retrieved" and
      exceptions in callbacks, and errors aiohttp's server logs for its handlers;
    - coroutines never awaited (``unawaited_coroutines``), from Python's
      ``RuntimeWarning``;
    - resources never closed (``unclosed_resources``): ``ResourceWarning`` for
      sockets, transports and loops, aiohttp's "Unclosed client session" and
      "Unclosed connector";
    - unanswered requests (``unanswered_requests``): ``UnansweredRequestsWarning``
      and servers that report through :func:`register_probe`;
    - whatever other components report with :func:`report_issue`.

    A check in ``off`` mode installs nothing and leaves the loop's and Python's
    defaults alone. The exception handler, task factory, warnings filters and log
    handler are restored when it detaches, also when the test failed.

    Args:
        checks: the mode of every check (``"strict"``, ``"warn"`` or ``"off"``), or a
            mapping from check name to mode (missing checks are ``strict``).
        hang_timeout: seconds the guarded task may run before the hang guard cancels
            it (float, > 0), or ``None`` for no hang guard.
        extensions: :class:`LoopExtension` objects attached after the
            instrumentation's own set-up, in order, and detached in reverse order.
        gc_generation: the garbage collector generation collected at the end, so
            that objects in reference cycles report their leaks in this test (0, 1 or
            2; 2 is a full collection, about 10 ms in a large process); ``None`` to
            skip it.
        name: what is being checked (a test id), named in reports.

    Raises:
        ValueError: if a mode or check name is unknown, or ``hang_timeout`` or
            ``gc_generation`` is out of range.

    Example:
        ```python
        async def test_poll() -> None:
            async with LoopInstrumentation(name="test_poll") as instrumentation:
                await poll_once()
            instrumentation.check()  # raises HygieneError if something leaked
        ```
    """

    def __init__(
        self,
        *,
        checks: str | Mapping[str, str] = "strict",
        hang_timeout: float | None = DEFAULT_HANG_TIMEOUT,
        extensions: Sequence[LoopExtension] = (),
        gc_generation: int | None = 1,
        name: str = "the test",
    ) -> None:
        if isinstance(checks, str):
            self.modes = resolve_modes(checks, where="LoopInstrumentation(checks=...)")
        else:
            self.modes = resolve_modes("strict", checks, where="LoopInstrumentation(checks=...)")
        if hang_timeout is not None and (
            isinstance(hang_timeout, bool)
            or not isinstance(hang_timeout, (int, float))
            or not hang_timeout > 0
        ):
            raise ValueError(
                f"hang_timeout must be a positive number of seconds or None, got {hang_timeout!r}"
            )
        if gc_generation not in (None, 0, 1, 2):
            raise ValueError(f"gc_generation must be 0, 1, 2 or None, got {gc_generation!r}")
        self._checking = any(mode != "off" for mode in self.modes.values())
        self.hang_timeout = hang_timeout
        self.gc_generation = gc_generation
        self.name = name
        self.report = HygieneReport(name, dict(self.modes))
        self.hang_error: HangTimeout | None = None
        self._extensions: list[LoopExtension] = list(extensions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: _Undo | None = None
        self._seen: set[tuple[str, str]] = set()
        self._probes: weakref.WeakSet[HygieneProbe] = weakref.WeakSet()
        self._origins: weakref.WeakKeyDictionary[asyncio.Future[Any], tuple[_Site, ...]] = (
            weakref.WeakKeyDictionary()
        )
        self._baseline: Collection[asyncio.Task[Any]] = ()
        self._baseline_fds: set[int] = set()
        self._previous_factory: _TaskFactory | None = None
        self._previous_handler: _ExceptionHandler | None = None
        self._previous_showwarning: Callable[..., None] = warnings.showwarning
        self._finished = False
        self._hang_token: int | None = None
        self._hang_generation = 0
        self._hang_target: asyncio.Task[Any] | None = None
        self._claim_next_task = False
        self._test_tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def __repr__(self) -> str:
        state = "attached" if self._loop is not None else "detached"
        return f"<{type(self).__name__} {self.name} {state}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop it is attached to, or ``None``."""
        return self._loop

    def _on(self, check: str) -> bool:
        return self.modes[check] != "off"

    # -- set-up and tear-down ------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Instrument ``loop`` and attach the extensions, in order.

        Args:
            loop: the loop the test runs on; it may be running or not.

        Raises:
            RuntimeError: if it is attached already, or was finished.
            Exception: whatever an extension's ``attach`` raises, after everything
                attached so far was detached again.

        Example:
            ```python
            instrumentation.attach(runner.get_loop())
            ```
        """
        if self._loop is not None or self._finished:
            raise RuntimeError(f"{self!r} cannot attach twice; make one per test")
        self._loop = loop
        self._stack = stack = _Undo()
        try:
            self._attach(loop, stack)
            for extension in self._extensions:
                extension.attach(loop)
                stack.push(extension.detach, loop)
        except BaseException:
            self.detach()
            raise

    def _attach(self, loop: asyncio.AbstractEventLoop, stack: _Undo) -> None:
        _active.setdefault(id(loop), []).append(self)
        stack.push(self._unregister, loop)
        stack.push(self.stop_hang_guard)
        if self._on("pending_tasks") or self.hang_timeout is not None:
            existing = asyncio.all_tasks(loop)
            if existing:
                self._baseline = weakref.WeakSet(existing)
            self._previous_factory = loop.get_task_factory()
            loop.set_task_factory(self._task_factory)  # type: ignore[arg-type]
            stack.push(loop.set_task_factory, self._previous_factory)
            stack.push(keep_task_names(loop))
        if self._on("unclosed_resources"):
            stack.push(mark_lost_tls_transports_closed())
            selector = getattr(loop, "_selector", None)
            with contextlib.suppress(AttributeError, RuntimeError):
                self._baseline_fds = set(selector.get_map()) if selector is not None else set()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._handle_exception)
        stack.push(loop.set_exception_handler, self._previous_handler)
        catcher = warnings.catch_warnings()
        catcher.__enter__()
        stack.push(catcher.__exit__, None, None, None)
        self._previous_showwarning = warnings.showwarning
        warnings.showwarning = self._showwarning
        filters = [entry for check, entry in _WARNING_FILTERS if self._on(check)]
        if filters:
            # Shown ("always") ahead of any other filter, so that they reach
            # _showwarning even under filterwarnings=error or ignore.
            _insert_warning_filters(filters)
        if self._on("unretrieved_exceptions"):
            _server_errors.start()
            stack.push(_server_errors.stop)

    def _unregister(self, loop: asyncio.AbstractEventLoop) -> None:
        stack = _active.get(id(loop), [])
        if self in stack:
            stack.remove(self)
        if not stack:
            _active.pop(id(loop), None)

    def add_extension(self, extension: LoopExtension) -> None:
        """Add an extension; it is attached now if the instrumentation is attached.

        It is detached before the extensions added earlier.

        Args:
            extension: a :class:`LoopExtension`.

        Raises:
            RuntimeError: if the instrumentation was finished.

        Example:
            ```python
            loop_instrumentation.add_extension(clock)
            ```
        """
        if self._finished:
            raise RuntimeError(f"{self!r} was finished; add extensions before the test ends")
        self._extensions.append(extension)
        if self._loop is not None and self._stack is not None:
            extension.attach(self._loop)
            self._stack.push(extension.detach, self._loop)

    def detach(self) -> None:
        """Detach the extensions in reverse order, then restore the loop and globals.

        Every step runs even if an earlier one raises; the first error is re-raised
        at the end. Calling it again does nothing.

        Example:
            ```python
            instrumentation.detach()
            ```
        """
        stack, self._stack = self._stack, None
        self._loop = None
        if stack is not None:
            stack.close()

    async def __aenter__(self) -> LoopInstrumentation:
        self.attach(asyncio.get_running_loop())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.finish()

    async def finish(self) -> HygieneReport:
        """End the test: settle the loop, gather the report, detach everything.

        Lets the loop run until nothing is left pending (a few iterations at most),
        asks the registered probes, reports and cancels the tasks still pending,
        reports what is still open, collects garbage (``gc_generation``) and
        detaches. Call it on the instrumented loop, from outside the tasks it should
        report (``async with`` does it).

        Returns:
            The :class:`aiotestkit.HygieneReport`; :meth:`check` acts on it.

        Example:
            ```python
            report = await instrumentation.finish()
            ```
        """
        try:
            if self._loop is not None and not self._finished and self._checking:
                if self._unsettled():
                    await self._settle()
                pending = self._conclude()
                if pending:
                    await self._settle(pending)
                self._collect_garbage()
        finally:
            self._finished = True
            self.detach()
        return self.report

    def _conclude(self) -> list[asyncio.Task[Any]]:
        """Record what the test left behind; cancel and return the pending tasks."""
        self._ask_probes()
        pending = []
        if self._on("pending_tasks"):
            pending = self._pending_tasks()
            for task in pending:
                if task not in self._test_tasks:
                    self.add_issue("pending_tasks", self._describe_task(task))
                task.cancel()
        if self._on("unclosed_resources"):
            for description in self._new_watched_files().values():
                self.add_issue("unclosed_resources", description)
        return pending

    def run_finish(self) -> HygieneReport:
        """Run :meth:`finish` from synchronous code, on the instrumented loop.

        For test frameworks that tear down outside the loop (a pytest fixture, a
        unittest ``tearDown``). If the loop is closed already, only detaches.

        Returns:
            The :class:`aiotestkit.HygieneReport`.

        Raises:
            RuntimeError: if the loop is running (use ``await finish()`` there).

        Example:
            ```python
            report = instrumentation.run_finish()
            ```
        """
        loop = self._loop
        if loop is None or loop.is_closed() or not self._checking:
            self._finished = True
            self.detach()
            return self.report
        if loop.is_running():
            raise RuntimeError(f"{self!r}: the loop is running; use 'await finish()'")
        if self._unsettled():
            return loop.run_until_complete(self.finish())
        # Nothing pending, nothing open: conclude without running the loop (the
        # common case).
        try:
            self._ask_probes()
            self._collect_garbage()
        finally:
            self._finished = True
            self.detach()
        return self.report

    def check(self) -> HygieneReport:
        """Fail for what ``strict`` checks found, warn for what ``warn`` checks found.

        Returns:
            The :class:`aiotestkit.HygieneReport`, when no ``strict`` check found anything.

        Raises:
            aiotestkit.HygieneError: (an :class:`AssertionError`) naming every problem
                ``strict`` checks found, where it was created and how to fix it.
            RuntimeError: if :meth:`finish` did not run yet.

        Warns:
            aiotestkit.HygieneWarning: with the problems ``warn`` checks found.

        Example:
            ```python
            instrumentation.check()
            ```
        """
        if not self._finished:
            raise RuntimeError(f"{self!r}: call finish() (or leave 'async with') before check()")
        self.report.raise_or_warn()
        return self.report

    # -- recording -----------------------------------------------------------------

    def add_issue(self, check: str, message: str) -> bool:
        """Record one problem, unless its check is ``off`` or it was recorded already.

        Args:
            check: the name of a hygiene check, such as ``"pending_tasks"``.
            message: what was observed.

        Returns:
            True if it was recorded.

        Example:
            ```python
            assert instrumentation.add_issue("refused_connections", "example.com:443 refused")
            ```
        """
        if not self._on(check) or (check, message) in self._seen:
            return False
        self._seen.add((check, message))
        self.report.issues.append(HygieneIssue(check, message))
        return True

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        if self._previous_factory is not None:
            task = self._previous_factory(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        self._origins[task] = _creation_sites()
        if self._claim_next_task and isinstance(task, asyncio.Task):
            self._claim_next_task = False
            self._hang_target = task
            self._test_tasks.add(task)
        return task

    def _handle_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled exception in the event loop")
        resource = next(
            (
                context[key]
                for key in ("client_session", "connector", "client_connection", "transport")
                if key in context
            ),
            None,
        )
        if message.startswith("Unclosed") and "exception" not in context:
            check = "unclosed_resources"
            text = f"{message} {resource!r}" if resource is not None else message
        else:
            check = "unretrieved_exceptions"
            text = self._describe_context(message, context)
        if self._on(check):
            self.add_issue(check, text)
        elif self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _describe_context(self, message: str, context: Mapping[str, Any]) -> str:
        lines = [message]
        future = context.get("future") or context.get("task")
        if isinstance(future, asyncio.Task):
            lines.append("in " + self._describe_task(future, stack=False))
        elif future is not None:
            lines.append(f"in {future!r}")
        for key in ("handle", "protocol", "transport"):
            if key in context:
                lines.append(f"{key}: {context[key]!r}")
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            lines.extend("".join(traceback.format_exception(exception)).rstrip().splitlines())
        return "\n".join(lines)

    def _showwarning(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        check = None
        if issubclass(category, ResourceWarning):
            check = "unclosed_resources"
        elif issubclass(category, RuntimeWarning) and "was never awaited" in str(message):
            check = "unawaited_coroutines"
        elif issubclass(category, UnansweredRequestsWarning):
            check = "unanswered_requests"
        if check is None or not self._on(check):
            self._previous_showwarning(message, category, filename, lineno, file, line)
            return
        if check == "unclosed_resources":
            # Emitted by a finalizer: the location is the library's __del__, and the
            # same text reaches the exception handler for aiohttp's objects.
            self.add_issue(check, str(message))
        else:
            self.add_issue(check, f"{message} (at {_short_path(filename)}:{lineno})")

    # -- the end of the test -------------------------------------------------------

    def _unsettled(self) -> bool:
        return bool(
            (self._on("pending_tasks") and self._pending_tasks())
            or (self._on("unclosed_resources") and self._new_watched_files())
        )

    async def _settle(self, tasks: Iterable[asyncio.Future[Any]] | None = None) -> None:
        """Let the loop run until ``tasks`` are done (or nothing is left open), or give up.

        A clean test costs one loop iteration; closing transports and cancelled
        tasks get up to ``_SETTLE_ITERATIONS`` before they count as left behind.
        """
        waiting = None if tasks is None else list(tasks)
        for _ in range(_SETTLE_ITERATIONS):
            await asyncio.sleep(0)
            if waiting is None:
                if not self._unsettled():
                    return
            elif all(task.done() for task in waiting):
                return

    def _collect_garbage(self) -> None:
        if self.gc_generation is not None:
            gc.collect(self.gc_generation)

    def _ask_probes(self) -> None:
        for probe in list(self._probes):
            for check, message in probe.hygiene_issues():
                self.add_issue(check, message)

    def _pending_tasks(self) -> list[asyncio.Task[Any]]:
        if self._loop is None:
            return []
        current = asyncio.current_task(self._loop)
        return [
            task
            for task in asyncio.all_tasks(self._loop)
            if task is not current and task not in self._baseline and not task.done()
        ]

    def _new_watched_files(self) -> dict[int, str]:
        if self._loop is None:
            return {}
        return _watched_files(self._loop, self._baseline_fds)

    def _describe_task(self, task: asyncio.Task[Any], *, stack: bool = True) -> str:
        coro = task.get_coro()
        coro_name = getattr(coro, "__qualname__", None) or type(coro).__name__
        lines = [f"Task {task.get_name()!r} running {coro_name}()"]
        origin = self._origins.get(task)
        if origin:
            lines[0] += f", created at {_format_site(origin[0])}"
            lines.extend(f"  called from {_format_site(site)}" for site in origin[1:])
        else:
            lines[0] += ", created before the instrumentation attached or by another factory"
        if stack and not task.done():
            sites, awaited = _await_chain(coro)
            if sites:
                lines.append("waiting at:")
                lines.extend(f"  {_format_frame_line(site)}" for site in sites)
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is not None:
                lines.append(f"  on {waiter!r}")
            elif awaited is not coro and sites:
                lines.append(f"  on {awaited!r}")
        return "\n".join(lines)

    # -- hang guard ----------------------------------------------------------------

    def start_hang_guard(
        self, timeout: float | None = None, *, task: asyncio.Task[Any] | None = None
    ) -> None:
        """Cancel ``task`` if it still runs after ``timeout`` seconds of real time.

        The limit is measured by a watchdog thread, so a virtual clock does not move
        it. When it fires, :attr:`hang_error` is set to a :class:`aiotestkit.HangTimeout`
        that names the limit and shows the stack of every task on the loop, and the
        task is cancelled. Without ``task``, the next task created on the loop is
        guarded (the test's own task, when a runner starts the test next).

        The guarded task is the test's own task: if it is still pending when the test
        ends (the loop was stopped under it by an error already reported), it is
        cancelled without being reported as a leak.

        Args:
            timeout: seconds (float, > 0); ``hang_timeout`` by default. With neither,
                no time limit is set, but the task is still known as the test's own.
            task: the task to cancel.

        Raises:
            RuntimeError: if the instrumentation is not attached.

        Example:
            ```python
            instrumentation.start_hang_guard(5.0, task=asyncio.current_task())
            ```
        """
        if self._loop is None:
            raise RuntimeError(f"{self!r} is not attached; attach it before the hang guard")
        self.stop_hang_guard()
        self.hang_error = None
        # The guarded task is the test's own: if the loop was aborted under it (a
        # deadlock, an interrupt), it is cancelled at the end without being reported.
        self._hang_target = task
        self._claim_next_task = task is None
        if task is not None:
            self._test_tasks.add(task)
        timeout = self.hang_timeout if timeout is None else timeout
        if timeout is None:
            return
        self._hang_generation += 1
        generation, loop = self._hang_generation, self._loop

        def fire() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_hang, generation, timeout)

        self._hang_token = _watchdog.schedule(timeout, fire)

    def stop_hang_guard(self) -> HangTimeout | None:
        """Disarm the hang guard.

        Returns:
            :attr:`hang_error` if the guard fired, else ``None``.

        Example:
            ```python
            error = instrumentation.stop_hang_guard()
            ```
        """
        if self._hang_token is not None:
            _watchdog.cancel(self._hang_token)
            self._hang_token = None
        self._hang_generation += 1
        self._claim_next_task = False
        self._hang_target = None
        return self.hang_error

    def _on_hang(self, generation: int, timeout: float) -> None:
        if generation != self._hang_generation or self._loop is None:
            return
        target = self._hang_target
        tasks = sorted(
            asyncio.all_tasks(self._loop), key=lambda task: (task is not target, task.get_name())
        )
        described = "\n".join(
            "- " + self._describe_task(task).replace("\n", "\n  ") for task in tasks
        )
        self.hang_error = HangTimeout(
            f"{self.name} still ran after {timeout:g} s, so the hang guard cancelled it. "
            "If it is only slow, raise the limit with @pytest.mark.hang_timeout(seconds) "
            "or the ini option aiotestkit_hang_timeout (0 turns the guard off); otherwise "
            "the stacks below show what it waits for.\n"
            f"Tasks on the loop ({len(tasks)}):\n{described}"
        )
        targets = [target] if target is not None and not target.done() else self._pending_tasks()
        for task in targets:
            if not task.done():
                task.cancel(f"aiotestkit hang guard: still running after {timeout:g} s")
