"""Timeouts of the waits in which a test server waits for its client.

Every wait of a test server goes through :func:`get_within`. Besides its timeout it
listens to a small per-loop record of what the network sandbox refused (the network
layer writes it with :func:`record_refusal` and :func:`record_hint`): a refusal the
test did not declare expected ends the wait at once with
:class:`aiotestkit.BlockedWhileWaiting`, since the client the test waits for most
likely got that refusal instead of reaching the server, and every timeout message can
list what was refused so far (:func:`timeout_details`).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import weakref
from collections.abc import Callable
from typing import TypeVar

from ..errors import BlockedWhileWaiting

__all__ = [
    "DEFAULT_TIMEOUT",
    "check_timeout",
    "get_within",
    "record_hint",
    "record_refusal",
    "reset_refusals",
    "set_virtual_time",
    "timeout_details",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
"""Seconds a ``receive_*`` call waits for the client before it raises."""


def check_timeout(timeout: float) -> float:
    """Return ``timeout`` as a float, or raise if it is not a positive number of seconds.

    Raises:
        TypeError: if ``timeout`` is not a number (``bool`` is refused).
        ValueError: if ``timeout`` is not above zero.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


class _LoopRecord:
    """What the waits on one loop need to know about the network and the clock."""

    def __init__(self) -> None:
        self.refusals: list[str] = []
        self.hints: list[str] = []
        self.waiters: set[Callable[[str], None]] = set()
        self.virtual_time = False


_records: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopRecord] = (
    weakref.WeakKeyDictionary()
)
_records_lock = threading.Lock()


def _record_of(loop: asyncio.AbstractEventLoop) -> _LoopRecord:
    with _records_lock:
        record = _records.get(loop)
        if record is None:
            record = _records[loop] = _LoopRecord()
        return record


def _on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """Run ``callback`` now if this thread runs ``loop``, else soon on ``loop``'s thread."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        callback()
    elif not loop.is_closed():
        loop.call_soon_threadsafe(callback)


def record_refusal(loop: asyncio.AbstractEventLoop, message: str, *, expected: bool) -> None:
    """Note that the network sandbox of ``loop`` refused something; any thread.

    Args:
        loop: the loop the sandbox serves.
        message: the refusal's message (host, port, the ``route(...)`` that allows it).
        expected: whether the test declared it expected; those are listed in
            timeout messages but do not end waits.
    """
    record = _record_of(loop)

    def note() -> None:
        record.refusals.append(message if not expected else f"{message} (expected)")
        if not expected:
            for waiter in list(record.waiters):
                waiter(message)

    _on_loop(loop, note)


def record_hint(loop: asyncio.AbstractEventLoop, message: str) -> None:
    """Note something a timeout message should mention (e.g. TLS sent to a plain route)."""
    record = _record_of(loop)
    _on_loop(loop, lambda: record.hints.append(message) if message not in record.hints else None)


def reset_refusals(loop: asyncio.AbstractEventLoop) -> None:
    """Forget the refusals and hints of ``loop`` (a sandbox opens or closes)."""
    record = _record_of(loop)
    record.refusals.clear()
    record.hints.clear()


def set_virtual_time(loop: asyncio.AbstractEventLoop, virtual: bool) -> None:
    """Tell the waits whether ``loop`` runs on virtual time (the virtual clock says so)."""
    _record_of(loop).virtual_time = virtual


def timeout_details(timeout: float, loop: asyncio.AbstractEventLoop | None = None) -> str:
    """What a timeout message adds after "within N s": virtual time, refusals, hints.

    Args:
        timeout: the seconds the wait lasted.
        loop: the loop of the wait; the running loop by default.

    Returns:
        ``""`` when there is nothing to add, else text starting with a space or a
        newline, to append to the message.
    """
    loop = loop or asyncio.get_running_loop()
    record = _records.get(loop)
    if record is None:
        return ""
    parts = []
    if record.virtual_time:
        parts.append(
            f" ({timeout:g} s of virtual time: the virtual clock runs this loop and jumps "
            "ahead when every task waits, so real time may have been much shorter)"
        )
    if record.hints:
        parts.append("\nThe network sandbox saw:\n" + "".join(f"  - {h}\n" for h in record.hints))
    if record.refusals:
        listed = "".join(f"  - {message}\n" for message in record.refusals)
        parts.append(f"\nThe network sandbox refused, so far in this test:\n{listed}")
    return "".join(parts).rstrip("\n")


async def get_within(queue: asyncio.Queue[T], timeout: float) -> T:
    """Return the next item of ``queue``, waiting at most ``timeout`` seconds.

    Unlike ``asyncio.wait_for`` on Python 3.10 and 3.11, it starts no task per call,
    and an item already waiting is returned without yielding to the loop (as
    ``wait_for`` does on 3.12 and later), so every Python version sees the same order
    of events.

    Raises:
        TimeoutError: if nothing arrived in time (the caller says what was awaited,
            and appends :func:`timeout_details`).
        aiotestkit.BlockedWhileWaiting: (a :class:`ConnectionRefusedError`) at once,
            if the network sandbox refused something the test did not expect while
            it waited.
    """
    if not queue.empty():
        return queue.get_nowait()
    record = _records.get(asyncio.get_running_loop())
    if record is None:
        return await _get(queue, timeout)
    task = asyncio.current_task()
    assert task is not None
    refused: list[str] = []

    def on_refusal(message: str) -> None:
        if not refused:
            refused.append(message)
            task.cancel()

    record.waiters.add(on_refusal)
    try:
        return await _get(queue, timeout)
    except asyncio.CancelledError:
        if refused and (sys.version_info < (3, 11) or task.uncancel() == 0):
            raise BlockedWhileWaiting(
                f"the wait for a test server's client (at most {timeout:g} s) ended at once: "
                f"{refused[0]}. The client the test waits for most likely got this "
                "refusal instead of reaching the server"
            ) from None
        raise
    finally:
        record.waiters.discard(on_refusal)


async def _get(queue: asyncio.Queue[T], timeout: float) -> T:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await queue.get()
    return await asyncio.wait_for(queue.get(), timeout)
