"""Which test created an object, and where: the blame for leaks found later.

A leaked object is often found after the test that made it ended: the garbage
collector frees a reference cycle during a later test, and its finalizer warns
("unclosed transport", "Unclosed client session"). To blame the right test, each
test is an :class:`Owner`, and what it creates is recorded as it is created:

- tasks, by the task factory (``_tasks``);
- transports, listening servers and their sockets, by the loop's transport and
  server hooks (``_resources``);
- every loop a test runs on, so that an object holding a ``_loop`` that served one
  test only (a function-scoped loop, the default) belongs to that test, even if it
  was not recorded (an aiohttp ``ClientSession``).

A record is one weak reference, keyed by ``id``: nothing is kept alive. The
garbage collector clears weak references *before* it runs finalizers, so a record
whose object dies in a collection stays until the collection ends; a ``gc.callbacks``
hook then drops it. Creation sites are captured by :func:`._sites.creation_sites`.

:func:`blame` answers for an object found now; see its docstring for the rules.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._sites import RawSite, Site, creation_sites, format_site, resolve_sites, short_path

__all__ = [
    "Blame",
    "Owner",
    "blame",
    "collect",
    "record",
    "record_test_task",
    "track_collections",
]

_LINKS = ("_sock", "_transport", "_ssl_protocol", "_connector")
"""Attributes followed from an unrecorded object to one that may be recorded (a
transport's socket, a stream writer's transport, a session's connector)."""


class Owner:
    """One test as the creator of objects.

    Args:
        name: the test's name (a test id).
        modes: the mode of each check for this test.
        sink: records an issue in the test's report while the test runs (a bound
            method, held weakly); returns True if it was recorded.
        checking: whether any check of ``modes`` is on.
    """

    __slots__ = (
        "__weakref__",
        "_function",
        "_receiver",
        "checking",
        "finished",
        "loop",
        "modes",
        "name",
    )

    def __init__(
        self,
        name: str,
        modes: Mapping[str, str],
        sink: Callable[[str, str], bool],
        *,
        checking: bool,
    ) -> None:
        self.name = name
        self.modes = modes
        self.checking = checking
        """Whether any check is on: the creation sites of what a test that checks
        nothing creates are never shown (its leaks are not reported), so they are not
        captured; its objects are still recorded, so that no later test is blamed."""
        # What weakref.WeakMethod does, without its Python-level construction (one per
        # test): the receiver held weakly, the function strongly.
        receiver = getattr(sink, "__self__", None)
        self._function: Callable[..., bool] = getattr(sink, "__func__", sink)
        self._receiver = None if receiver is None else weakref.ref(receiver)
        self.loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self.finished = False

    def add_issue(self, check: str, message: str) -> bool:
        """Record an issue in the test's report; False if the test is gone or the check off."""
        if self._receiver is None:
            return self._function(check, message)
        receiver = self._receiver()
        return receiver is not None and self._function(receiver, check, message)

    def __repr__(self) -> str:
        return f"<Owner {self.name}>"


class _Record(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a created object, with who created it and where."""

    __slots__ = ("_sites", "key", "owner", "raw_sites", "reported")

    key: int
    owner: Owner
    raw_sites: tuple[RawSite, ...]
    _sites: tuple[Site, ...] | None
    reported: bool

    @property
    def sites(self) -> tuple[Site, ...]:
        """Where the object was created, innermost first (resolved on first use)."""
        if self._sites is None:
            self._sites = resolve_sites(self.raw_sites)
        return self._sites

    def describe(self) -> str:
        """Where the object was created, as report lines (:func:`format_sites`)."""
        if not self.owner.checking:
            return f"created in {self.owner.name}, which checked nothing (no site recorded)"
        return format_sites(self.sites)


class _TestTaskRecord(_Record):
    """The record of the task a test runs in: its site is the runner's, so none is kept."""

    __slots__ = ()

    def describe(self) -> str:
        return f"the task {self.owner.name} runs in"


_records: dict[int, _Record] = {}
_dying: list[_Record] = []
_collections = 0
"""Collections running now (0 or 1), counted by the ``gc.callbacks`` hook."""
_full_collection = False
"""Whether the running collection is a full one that a test did not ask for itself."""
_own_collection = False


def _forget(ref: weakref.ref[Any]) -> None:
    assert isinstance(ref, _Record)
    if _collections:
        _dying.append(ref)  # its object's finalizer may still ask: keep it until "stop"
    elif _records.get(ref.key) is ref:
        del _records[ref.key]


def record(owner: Owner, *objects: object, depth: int = 3) -> None:
    """Record that ``owner`` created ``objects`` at the caller's site (``depth`` frames).

    The site is captured once for all of them, and only if ``owner`` checks
    something (:attr:`Owner.checking`). Objects that cannot be weakly referenced are
    not recorded.
    """
    sites = creation_sites(depth) if owner.checking else ()
    for obj in objects:
        try:
            ref = _Record(obj, _forget)
        except TypeError:
            continue
        _keep(ref, obj, owner, sites)


def record_test_task(owner: Owner, task: object) -> None:
    """Record ``task`` as the one ``owner``'s test runs in, with no site.

    It is never reported as a leak, and where it was created is the runner's code, not
    the test's: a report that lists it (a hang report) names it as the test's task.
    """
    _keep(_TestTaskRecord(task, _forget), task, owner, ())


def _keep(ref: _Record, obj: object, owner: Owner, sites: tuple[RawSite, ...]) -> None:
    ref.key = id(obj)
    ref.owner = owner
    ref.raw_sites = sites
    ref._sites = None
    ref.reported = False
    _records[ref.key] = ref


def origin(obj: object) -> _Record | None:
    """The record of ``obj`` (alive, or dying in the collection running now), or None."""
    ref = _records.get(id(obj))
    if ref is None:
        return None
    referent = ref()
    if referent is obj or (referent is None and _collections):
        return ref
    return None


def _on_collection(phase: str, info: dict[str, int]) -> None:
    global _collections, _full_collection
    if phase == "start":
        _collections = 1
        _full_collection = info.get("generation") == 2 and not _own_collection
        return
    _collections = 0
    _full_collection = False
    while _dying:
        ref = _dying.pop()
        if _records.get(ref.key) is ref:
            del _records[ref.key]


_users = 0


def track_collections() -> Callable[[], None]:
    """Install the ``gc.callbacks`` hook while a test runs; returns its undo (call it once)."""
    global _users
    _users += 1
    if _users == 1:
        gc.callbacks.append(_on_collection)
    return _untrack_collections


def _untrack_collections() -> None:
    global _users
    _users -= 1
    if _users == 0:
        gc.callbacks.remove(_on_collection)


def collect(generation: int) -> None:
    """``gc.collect(generation)`` at the end of a test: what it finds is the test's."""
    global _own_collection
    _own_collection = True
    try:
        gc.collect(generation)
    finally:
        _own_collection = False


class _LoopUsers(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to a loop, with the first test that ran on it and how many did."""

    __slots__ = ("count", "first", "key")

    key: int
    first: Owner
    count: int


def _forget_loop(ref: weakref.ref[Any]) -> None:
    assert isinstance(ref, _LoopUsers)
    if _loops.get(ref.key) is ref:
        del _loops[ref.key]


_loops: dict[int, _LoopUsers] = {}
"""The loops tests ran on, by ``id`` (a plain dict: cheaper than a WeakKeyDictionary)."""


def _users_of(loop: asyncio.AbstractEventLoop) -> _LoopUsers | None:
    users = _loops.get(id(loop))
    return users if users is not None and users() is loop else None


def register_loop(owner: Owner, loop: asyncio.AbstractEventLoop) -> None:
    """Record that ``owner`` runs on ``loop``."""
    owner.loop = weakref.ref(loop)
    users = _users_of(loop)
    if users is None:
        users = _LoopUsers(loop, _forget_loop)
        users.key = id(loop)
        users.first = owner
        users.count = 1
        _loops[users.key] = users
    elif users.first is not owner:
        users.count += 1


@dataclass(frozen=True)
class Blame:
    """Who made a leaked object (``None``: not known) and where it was created.

    ``site`` is the creation site as text, or why it is not known; ``how`` says how
    the owner was found, for the report of an unknown owner.
    """

    owner: Owner | None
    site: str
    how: str = ""
    record: _Record | None = None


def _linked(obj: object) -> list[object]:
    """``obj`` and what it links to, two links deep (an SSL transport's raw transport)."""
    found = [obj]
    for depth in range(2):
        for candidate in list(found if depth == 0 else found[1:]):
            for link in _LINKS:
                linked = getattr(candidate, link, None)
                if linked is not None and all(linked is not seen for seen in found):
                    found.append(linked)
    return found


def _loop_of(objects: list[object]) -> asyncio.AbstractEventLoop | None:
    for candidate in objects:
        loop = getattr(candidate, "_loop", None)
        if isinstance(loop, asyncio.AbstractEventLoop):
            return loop
    return None


def _untracked_site(obj: object) -> str:
    source = getattr(obj, "_source_traceback", None)  # asyncio's and aiohttp's debug mode
    if source:
        frame = source[-1]
        return f"created at {format_site((frame.filename, frame.lineno or 0, frame.name))}"
    if tracemalloc.is_tracing():
        traceback = tracemalloc.get_object_traceback(obj)
        if traceback is not None:
            frame = traceback[-1]
            return f"allocated at {short_path(frame.filename)}:{frame.lineno}"
    return (
        "created at an unknown site (run Python with -X tracemalloc=10, or the loop in "
        "debug mode, to record where)"
    )


def format_sites(sites: tuple[Site, ...]) -> str:
    """``created at A`` with a ``called from B`` line per further site."""
    if not sites:
        return "created by the event loop (an accepted connection or a loop callback)"
    first, *rest = sites
    return "\n".join(
        [f"created at {format_site(first)}", *(f"  called from {format_site(s)}" for s in rest)]
    )


def blame(obj: object, current: Owner) -> Blame:
    """Who created ``obj``, found leaked while ``current`` runs.

    In order:

    1. a record of ``obj`` or of an object it links to (its socket, its transport):
       that record's owner, with the creation site;
    2. a ``_loop`` that one test only ran on: that test;
    3. a ``_loop`` other than the current test's, shared by several tests: unknown;
    4. otherwise, found by a full garbage collection that the test did not ask for
       at its end (``gc.collect()`` in the test, or an automatic one): unknown, since
       earlier tests' garbage is collected there too;
    5. otherwise (its last reference was dropped in this test, or the collection at
       the end of this test found it): the current test.
    """
    linked = _linked(obj)
    for candidate in linked:
        ref = origin(candidate)
        if ref is not None:
            return Blame(ref.owner, ref.describe(), record=ref)
    site = _untracked_site(obj)
    loop = _loop_of(linked)
    if loop is not None:
        users = _users_of(loop)
        if users is not None and users.count == 1:
            return Blame(users.first, site)
        current_loop = current.loop() if current.loop is not None else None
        if loop is not current_loop:
            how = "its event loop is not this test's" + (
                f" and ran {users.count} tests" if users is not None else ""
            )
            return Blame(None, site, how)
    if _full_collection:
        return Blame(
            None,
            site,
            "a full garbage collection found it, and it may be left over from an earlier test",
        )
    return Blame(current, site)
