"""Task tracking: the tasks a test creates, where, and which of them are the test's own.

:class:`TaskTracker` installs a task factory on the test's loop that records each
new task with its creation site (for :mod:`._ownership`), knows the tasks that
existed before the test (a wider-scoped loop's), and describes a task for a report:
its coroutine, where it was created and where it waits.
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from ._ownership import Owner, origin, record, record_test_task
from ._sites import await_chain, format_frame_line

__all__ = ["TaskTracker"]

_TaskFactory = Callable[..., "asyncio.Future[Any]"]

_REGISTRY: Any = getattr(asyncio.tasks, "_all_tasks", None)
_DIRECT = sys.version_info < (3, 12) and type(_REGISTRY) is weakref.WeakSet
_get_loop: Any = getattr(asyncio.futures, "_get_loop", None)


def all_tasks(loop: asyncio.AbstractEventLoop) -> set[asyncio.Task[Any]]:
    """``asyncio.all_tasks(loop)``, at a third of its cost on Python < 3.12.

    There asyncio keeps every task in a :class:`weakref.WeakSet` and copies it with
    ``list()``, through the set's Python iterator; copying the underlying set of weak
    references is one C call (atomic under the GIL, so it needs none of
    ``all_tasks``'s retries). The same tasks are returned, as a set.
    """
    if not _DIRECT or _get_loop is None:
        return asyncio.all_tasks(loop)
    tasks = set()
    for ref in _REGISTRY.data.copy():
        task = ref()
        if task is not None and _get_loop(task) is loop and not task.done():
            tasks.add(task)
    return tasks


class TaskTracker:
    """The tasks of one test on one loop.

    Args:
        owner: the test, recorded as the creator of every task made while attached.
    """

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._baseline: Collection[asyncio.Task[Any]] = ()
        self._previous_factory: _TaskFactory | None = None
        self._claim: Callable[[asyncio.Task[Any]], None] | None = None
        self._test_tasks: list[weakref.ref[asyncio.Task[Any]]] = []
        # The test's own tasks (one or two): weak references without callbacks are
        # cheaper than a WeakSet, and the dead ones are few.

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the task factory on ``loop``; the tasks on it now are the baseline."""
        existing = all_tasks(loop)
        if existing:
            self._baseline = weakref.WeakSet(existing)
        self._loop = loop
        self._previous_factory = loop.get_task_factory()
        loop.set_task_factory(self._task_factory)  # type: ignore[arg-type]

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put the previous task factory back."""
        loop.set_task_factory(self._previous_factory)
        self._loop = None

    def add_test_task(self, task: asyncio.Task[Any]) -> None:
        """Count ``task`` as the test's own: never reported as a leak, cancelled if pending."""
        self._test_tasks.append(weakref.ref(task))

    def is_test_task(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` is one of the test's own tasks (:meth:`add_test_task`)."""
        return any(ref() is task for ref in self._test_tasks)

    def claim_next(self, callback: Callable[[asyncio.Task[Any]], None] | None) -> None:
        """Call ``callback`` with the next task created (the test's own), or stop waiting."""
        self._claim = callback

    def _task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Future[Any]:
        previous = self._previous_factory
        if previous is not None:
            task = previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        claim = self._claim
        if claim is not None and isinstance(task, asyncio.Task):
            self._claim = None
            record_test_task(self._owner, task)
            self._test_tasks.append(weakref.ref(task))
            claim(task)
        else:
            record(self._owner, task)
        return task

    def pending(self) -> list[asyncio.Task[Any]]:
        """The tasks of the loop still pending, except the baseline and the current one."""
        if self._loop is None:
            return []
        current = asyncio.current_task(self._loop)
        return [
            task
            for task in all_tasks(self._loop)
            if task is not current and task not in self._baseline and not task.done()
        ]

    def describe(self, task: asyncio.Task[Any], *, stack: bool = True) -> str:
        """The task, its coroutine, where it was created and (``stack``) where it waits."""
        coro = task.get_coro()
        coro_name = getattr(coro, "__qualname__", None) or type(coro).__name__
        lines = [f"Task {task.get_name()!r} running {coro_name}()"]
        ref = origin(task)
        if ref is not None:
            first, *rest = ref.describe().splitlines()
            lines[0] += f", {first}"
            lines.extend(rest)
        else:
            lines[0] += ", created before the instrumentation attached or by another factory"
        if stack and not task.done():
            sites, awaited = await_chain(coro)
            if sites:
                lines.append("waiting at:")
                lines.extend(f"  {format_frame_line(site)}" for site in sites)
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is not None:
                lines.append(f"  on {waiter!r}")
            elif awaited is not coro and sites:
                lines.append(f"  on {awaited!r}")
        return "\n".join(lines)
