"""Where things were created and where tasks wait: frames as short ``file:line in name``.

:func:`creation_sites` is the one place that captures a creation site (for tasks,
transports, servers and sockets alike), so that its cost is paid and tuned here only.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
from types import CodeType, FrameType

from .._core import WRAPPER_FILENAME

__all__ = [
    "Site",
    "await_chain",
    "creation_sites",
    "format_frame_line",
    "format_site",
    "resolve_sites",
]

Site = tuple[str, int, str]
"""A frame as ``(filename, line number, function name)``."""

RawSite = tuple[CodeType, int]
"""A frame as captured: its code object and its last instruction (``f_lasti``, bytes)."""

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_LOOP_DIR = os.path.dirname(__file__) + os.sep
# The functions ``wrap_methods`` puts on loop classes call the resource tracker's.
_SKIPPED = (_ASYNCIO_DIR, _LOOP_DIR, WRAPPER_FILENAME)
_CALLBACK_CODE = asyncio.events.Handle._run.__code__

_SKIP = 1
"""A frame of asyncio or of this package: skipped on top of the stack."""
_STOP = 2
"""A frame of asyncio, or one that hides itself from tracebacks: the walk stops there."""
_kinds: dict[int, int] = {}
"""What :func:`creation_sites` does with a frame, by ``id`` of its code object: reading
``co_varnames`` builds a tuple, so it is read once per code object."""
_kept: list[CodeType] = []
"""The code objects :data:`_kinds` has entries for, kept alive so that no other object
takes an ``id`` it holds."""
_KINDS_LIMIT = 4096
"""Entries kept at most; the cache starts over beyond (code made by ``exec``, pytester)."""


def _kind(code: CodeType) -> int:
    """The kind of ``code`` (:data:`_SKIP`, :data:`_STOP`), worked out and cached."""
    filename = code.co_filename
    kind = 0
    if filename.startswith(_SKIPPED):
        kind |= _SKIP
    if filename.startswith(_ASYNCIO_DIR) or "__tracebackhide__" in code.co_varnames:
        kind |= _STOP
    if len(_kinds) >= _KINDS_LIMIT:
        _kinds.clear()
        _kept.clear()
    _kinds[id(code)] = kind
    _kept.append(code)
    return kind


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


def creation_sites(depth: int = 3) -> tuple[RawSite, ...]:
    """The caller's frames outside asyncio and this package: up to ``depth``, innermost first.

    Called by whatever records a creation (the task factory, the transport hooks):
    the frames of asyncio and of aiotestkit's loop layer on top of the stack are
    skipped, so the first site is the line that asked for the object. An object the
    loop makes by itself in a callback (an accepted connection) has no site: ``()``.
    The walk stops at a frame that hides itself from tracebacks (``__tracebackhide__``,
    pytest's convention): above it is the machinery that runs the test, not its code.

    The frames are kept as code objects and instruction offsets, which hold no
    frame or local variable alive; :func:`resolve_sites` turns them into
    :data:`Site` tuples when a report needs them (a line number costs a walk of the
    code's line table, so it is not computed for every task and transport).
    """
    if depth < 1:
        return ()
    # The cache is read inline (a call per frame would cost more than the lookup).
    kinds = _kinds
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        kind = kinds.get(id(code))
        if kind is None:
            kind = _kind(code)
        if not kind & _SKIP:
            break
        if code is _CALLBACK_CODE:
            return ()
        frame = frame.f_back
    sites: list[RawSite] = []
    while frame is not None:
        code = frame.f_code
        kind = kinds.get(id(code))
        if kind is None:
            kind = _kind(code)
        if kind & _STOP:
            break
        sites.append((code, frame.f_lasti))
        if len(sites) == depth:
            break
        frame = frame.f_back
    return tuple(sites)


def _line_of(code: CodeType, offset: int) -> int:
    """The line of the instruction at ``offset`` (bytes) in ``code``, as ``f_lineno`` gives."""
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line if line is not None else code.co_firstlineno
    return code.co_firstlineno


def resolve_sites(raw: tuple[RawSite, ...]) -> tuple[Site, ...]:
    """The :data:`Site` tuples of frames captured by :func:`creation_sites`."""
    return tuple((code.co_filename, _line_of(code, lasti), code.co_name) for code, lasti in raw)


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
