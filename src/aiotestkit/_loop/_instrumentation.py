"""Loop instrumentation: one component that owns a test's loop set-up and tear-down.

:class:`LoopInstrumentation` attaches to the event loop a test runs on: it installs an
exception handler, task tracking (:mod:`._tasks`), resource tracking
(:mod:`._resources`), warning capture (:mod:`._warning_capture`), a log handler for
aiohttp's server errors and a hang guard (:mod:`._hang_guard`), and attaches
extensions (a virtual clock, a network sandbox) in order. When the test ends it lets
the loop settle, gathers what the test left behind into a
:class:`aiotestkit.HygieneReport`, and restores every piece of global state it
changed, in reverse order, also when the test failed or was cancelled.

Each leak is blamed on the test that created the leaked object (:mod:`._ownership`):
one found after its test ended, or whose test is not known, does not fail the test
that happens to be running; it is kept in :attr:`LoopInstrumentation.late_issues`
for the front end to report.

Other aiotestkit components report into the instrumentation of the running loop
with :func:`report_issue` (something happened: a refused connection, a server
closed with unanswered requests) and :func:`register_probe` (ask me at the end of
the test: a server still holding unanswered requests).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from ..errors import HangTimeout
from ._compat import keep_task_names, mark_lost_tls_transports_closed, nothing
from ._hang_guard import DEFAULT_HANG_TIMEOUT, HangGuard
from ._hygiene import (
    CHECKS,
    LIBRARY_ADVICE,
    Advice,
    HygieneIssue,
    HygieneReport,
    LateIssue,
    checks_anything,
    resolve_modes,
)
from ._ownership import (
    Owner,
    blame,
    collect,
    origin,
    register_loop,
    track_collections,
)
from ._resources import ResourceTracker, watched_fds, watched_files
from ._sites import short_path
from ._tasks import TaskTracker
from ._warning_capture import WarningCapture

__all__ = [
    "DEFAULT_HANG_TIMEOUT",
    "HygieneProbe",
    "LoopExtension",
    "LoopInstrumentation",
    "register_probe",
    "report_issue",
]

_SETTLE_ITERATIONS = 10
"""Loop iterations given to cancelled tasks and closing transports at the end of a test."""

_SERVER_LOGGER = "aiohttp.server"
_WARNING_CHECKS = ("unawaited_coroutines", "unclosed_resources")
"""The checks that Python's warnings report (:mod:`._warning_capture`)."""

_ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_RESOURCE_KEYS = ("client_session", "connector", "client_connection", "transport")
"""Keys of an exception handler context that hold the object that was not closed."""


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
    if instrumentation._probes is None:
        instrumentation._probes = weakref.WeakSet()
    instrumentation._probes.add(probe)
    return True


def _is_bad_client_input(error: BaseException | None) -> bool:
    """Whether aiohttp's server logged the client's malformed input, not a bug of its own.

    aiohttp answers a request it cannot parse (a header line too long, a body that does
    not decode, bytes after a declined upgrade) with a 4xx and logs the parser's error:
    that is the server doing its job, often what the test checks, not an exception
    nobody retrieved. A handler that raised is still reported.
    """
    from aiohttp.http_exceptions import HttpProcessingError  # only aiohttp's server logs

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, HttpProcessingError):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


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
        if record.exc_info and _is_bad_client_input(record.exc_info[1]):
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


def _check_limits(hang_timeout: float | None, gc_generation: int | None) -> None:
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
    - unanswered requests (``unanswered_requests``): what servers report through
      :func:`register_probe` and :func:`report_issue`;
    - expectations of a case-controlled HTTP server used fewer times than declared
      (``unused_expectations``) and requests that matched none and that the test
      never received (``unexpected_requests``), which the server reports;
    - whatever other components report with :func:`report_issue`.

    A leaked object is blamed on the test that created it: found while another
    test runs (a later test's garbage collection freed it), it does not fail that
    test but lands in :attr:`late_issues`, as do leaks whose test is not known.

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
        advice: how the front end that runs the test spells the fixes in reports
            (the pytest plugin: markers and ini options; ``NetworkTestCase``: class
            attributes); by default, the arguments of this class.

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
        advice: Advice = LIBRARY_ADVICE,
    ) -> None:
        if isinstance(checks, str):
            modes = resolve_modes(checks, where="LoopInstrumentation(checks=...)")
        else:
            modes = resolve_modes("strict", checks, where="LoopInstrumentation(checks=...)")
        _check_limits(hang_timeout, gc_generation)
        checking = checks_anything(modes)
        self._setup(modes, hang_timeout, extensions, gc_generation, name, advice, checking)

    @classmethod
    def _checked(
        cls,
        modes: dict[str, str],
        checking: bool,
        hang_timeout: float | None,
        gc_generation: int | None,
        name: str,
        advice: Advice,
    ) -> LoopInstrumentation:
        """An instrumentation from settings checked already (:class:`TestSettings`).

        ``modes`` maps every check to its mode and is not copied: pass a new dict;
        ``checking`` tells whether any of them is on.
        """
        self = cls.__new__(cls)
        self._setup(modes, hang_timeout, (), gc_generation, name, advice, checking)
        return self

    def _setup(
        self,
        modes: dict[str, str],
        hang_timeout: float | None,
        extensions: Sequence[LoopExtension],
        gc_generation: int | None,
        name: str,
        advice: Advice,
        checking: bool,
    ) -> None:
        self.modes = modes
        self._checking = checking
        self.hang_timeout = hang_timeout
        self.gc_generation = gc_generation
        self.name = name
        self.advice = advice
        self.report = HygieneReport(name, dict(modes), advice=advice)
        self.late_issues: list[LateIssue] = []
        """Leaks found while this instrumentation was attached that are not this test's:
        made by a test that had ended, or by a test that is not known. They do not
        fail this test; the front end reports them (the pytest plugin in the warnings
        summary, under the test that made them)."""
        self._owner = owner = Owner(name, modes, self.add_issue, checking=checking)
        self._tasks = tasks = TaskTracker(owner)
        self._hang_guard = HangGuard(tasks, hang_timeout, name=name, advice=advice)
        self._extensions: list[LoopExtension] = list(extensions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: _Undo | None = None
        self._seen: set[tuple[str, str]] = set()
        self._probes: weakref.WeakSet[HygieneProbe] | None = None
        self._baseline_fds: set[int] = set()
        self._previous_handler: _ExceptionHandler | None = None
        self._finished = False

    def __repr__(self) -> str:
        state = "attached" if self._loop is not None else "detached"
        return f"<{type(self).__name__} {self.name} {state}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop it is attached to, or ``None``."""
        return self._loop

    @property
    def hang_error(self) -> HangTimeout | None:
        """The :class:`aiotestkit.HangTimeout` of the hang guard, if it fired."""
        return self._hang_guard.error

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
        # Only what a check in use needs: with every check off, the loop gets the
        # task factory (the hang guard claims the test's task), and the process the
        # bookkeeping that lets later tests blame this one (cheap, or no-ops).
        _active.setdefault(id(loop), []).append(self)
        stack.push(self._unregister, loop)
        register_loop(self._owner, loop)
        stack.push(track_collections())
        if self._on("pending_tasks") or self.hang_timeout is not None:
            self._tasks.attach(loop)
            stack.push(self._tasks.detach, loop)
            undo = keep_task_names(loop)
            if undo is not nothing:
                stack.push(undo)
        self._hang_guard.attach(loop)
        stack.push(self._hang_guard.detach, loop)
        undo = mark_lost_tls_transports_closed()
        if undo is not nothing:
            stack.push(undo)
        if self._on("unclosed_resources"):
            self._baseline_fds = watched_fds(loop)
            resources = ResourceTracker(self._owner)
            resources.attach(loop)
            stack.push(resources.detach, loop)
        if self._on("unretrieved_exceptions") or self._on("unclosed_resources"):
            # Otherwise the handler would only pass everything on to the previous one.
            self._previous_handler = loop.get_exception_handler()
            loop.set_exception_handler(self._handle_exception)
            stack.push(loop.set_exception_handler, self._previous_handler)
        captured = [check for check in _WARNING_CHECKS if self._on(check)]
        if captured:
            capture = WarningCapture(captured, self._on_warning)
            capture.start()
            stack.push(capture.stop)
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
            self._owner.finished = True
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
            pending = self._tasks.pending()
            for task in pending:
                if not self._tasks.is_test_task(task):
                    self.add_issue("pending_tasks", self._tasks.describe(task))
                task.cancel()
        if self._on("unclosed_resources"):
            for description, resource in self._new_watched_files().values():
                ref = origin(resource) if resource is not None else None
                if ref is not None:
                    ref.reported = True  # not reported again when it is collected later
                    description += "\n" + ref.describe()
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

    def _handle_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "unhandled exception in the event loop")
        resource = next((context[key] for key in _RESOURCE_KEYS if key in context), None)
        if message.startswith("Unclosed") and "exception" not in context:
            check = "unclosed_resources"
            text = f"{message} {resource!r}" if resource is not None else message
        else:
            check = "unretrieved_exceptions"
            text = self._describe_context(message, context)
            future = context.get("future") or context.get("task")
            resource = future if isinstance(future, asyncio.Task) else None
        if self._on(check):
            self._add_blamed(check, text, resource)
        elif self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    def _describe_context(self, message: str, context: Mapping[str, Any]) -> str:
        lines = [message]
        future = context.get("future") or context.get("task")
        if isinstance(future, asyncio.Task):
            lines.append("in " + self._tasks.describe(future, stack=False))
        elif future is not None:
            lines.append(f"in {future!r}")
        for key in ("handle", "protocol", "transport"):
            if key in context:
                lines.append(f"{key}: {context[key]!r}")
        exception = context.get("exception")
        if isinstance(exception, BaseException):
            lines.extend("".join(traceback.format_exception(exception)).rstrip().splitlines())
        return "\n".join(lines)

    def _on_warning(self, check: str, warning: warnings.WarningMessage, leaked: object) -> bool:
        if check == "unclosed_resources":
            # Emitted by a finalizer: the location is the library's __del__, and the
            # same text reaches the exception handler for aiohttp's objects.
            text = str(warning.message)
        else:
            text = f"{warning.message} (at {short_path(warning.filename)}:{warning.lineno})"
        self._add_blamed(check, text, leaked)
        return True

    def _add_blamed(self, check: str, message: str, leaked: object) -> None:
        """Record a leak of ``leaked`` in the report of the test that created it."""
        if leaked is None:
            self.add_issue(check, message)
            return
        found = blame(leaked, self._owner)
        owner = found.owner
        # A task's description names where it was created already.
        with_site = check != "unretrieved_exceptions"
        if found.record is not None and with_site:
            message += "\n" + found.site
        if owner is self._owner:
            self.add_issue(check, message)
        elif owner is not None and not owner.finished:
            owner.add_issue(check, message)  # the test that made it is still running
        elif found.record is None or not found.record.reported:
            mode = (owner or self._owner).modes.get(check, "off")
            key = (f"late {check}", message)
            if mode == "off" or key in self._seen:
                return
            self._seen.add(key)
            where = None
            if found.record is None and with_site:
                message += "\n" + found.site
            elif found.record is not None and found.record.sites:
                where = found.record.sites[0][:2]
            test = owner.name if owner is not None else None
            self.late_issues.append(
                LateIssue(check, message, test, self.name, mode, found.how, where)
            )

    # -- the end of the test -------------------------------------------------------

    def _unsettled(self) -> bool:
        return bool(
            (self._on("pending_tasks") and self._tasks.pending())
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
            collect(self.gc_generation)

    def _ask_probes(self) -> None:
        if self._probes is None:
            return
        for probe in list(self._probes):
            for check, message in probe.hygiene_issues():
                self.add_issue(check, message)

    def _new_watched_files(self) -> dict[int, tuple[str, object]]:
        if self._loop is None:
            return {}
        return watched_files(self._loop, self._baseline_fds)

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
        self._hang_guard.start(timeout, task=task)

    def stop_hang_guard(self) -> HangTimeout | None:
        """Disarm the hang guard.

        Returns:
            :attr:`hang_error` if the guard fired, else ``None``.

        Example:
            ```python
            error = instrumentation.stop_hang_guard()
            ```
        """
        return self._hang_guard.stop()
