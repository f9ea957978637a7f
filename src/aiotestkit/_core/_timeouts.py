"""Timeouts of the waits in which a test server waits for its client."""

from __future__ import annotations

import asyncio
import sys
from typing import TypeVar

__all__ = ["DEFAULT_TIMEOUT", "check_timeout", "get_within"]

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


async def get_within(queue: asyncio.Queue[T], timeout: float) -> T:
    """Return the next item of ``queue``, waiting at most ``timeout`` seconds.

    Unlike ``asyncio.wait_for`` on Python 3.10 and 3.11, it starts no task per call,
    and an item already waiting is returned without yielding to the loop (as
    ``wait_for`` does on 3.12 and later), so every Python version sees the same order
    of events.

    Raises:
        TimeoutError: if nothing arrived in time (the caller says what was awaited).
    """
    if not queue.empty():
        return queue.get_nowait()
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await queue.get()
    return await asyncio.wait_for(queue.get(), timeout)
