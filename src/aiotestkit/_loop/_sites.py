"""Where things were created and where tasks wait: frames as short ``file:line in name``.

:func:`creation_sites` is the one place that captures a creation site (for tasks,
transports, servers and sockets alike), so that its cost is paid and tuned here only.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
from types import FrameType

__all__ = ["Site", "await_chain", "creation_sites", "format_frame_line", "format_site"]

Site = tuple[str, int, str]
"""A frame as ``(filename, line number, function name)``."""

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_LOOP_DIR = os.path.dirname(__file__) + os.sep
_SKIPPED = (_ASYNCIO_DIR, _LOOP_DIR)
_CALLBACK_CODE = asyncio.events.Handle._run.__code__


def short_path(filename: str) -> str:
    """``filename`` relative to the working directory if it is below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith(os.pardir) else relative


def format_site(site: Site) -> str:
    """``path:line in name``."""
    filename, lineno, name = site
    return f"{short_path(filename)}:{lineno} in {name}"


def format_frame_line(site: Site) -> str:
    """``path:line in name: source line``."""
    source = linecache.getline(site[0], site[1]).strip()
    return f"{format_site(site)}" + (f": {source}" if source else "")


def creation_sites(depth: int = 3) -> tuple[Site, ...]:
    """The caller's frames outside asyncio and this package: up to ``depth``, innermost first.

    Called by whatever records a creation (the task factory, the transport hooks):
    the frames of asyncio and of aiotestkit's loop layer on top of the stack are
    skipped, so the first site is the line that asked for the object. An object the
    loop makes by itself in a callback (an accepted connection) has no site: ``()``.
    The walk stops at a frame that hides itself from tracebacks (``__tracebackhide__``,
    pytest's convention): above it is the machinery that runs the test, not its code.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_SKIPPED):
        if frame.f_code is _CALLBACK_CODE:
            return ()
        frame = frame.f_back
    sites: list[Site] = []
    while (
        frame is not None
        and len(sites) < depth
        and not frame.f_code.co_filename.startswith(_ASYNCIO_DIR)
        and "__tracebackhide__" not in frame.f_code.co_varnames
    ):
        sites.append((frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    return tuple(sites)


def await_chain(awaitable: object) -> tuple[list[Site], object]:
    """The frames of a coroutine and of what it awaits, outermost first."""
    sites: list[Site] = []
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
