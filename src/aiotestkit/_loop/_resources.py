"""Resource tracking: the transports and servers a test opens, and those still open.

:class:`ResourceTracker` observes the loop's methods that make transports and start
listening servers (:func:`.._core.wrap_methods`, once per loop class), so that each
transport, server and socket a tracked loop makes is recorded as created by the test,
with its creation site (:mod:`._ownership`). :func:`watched_files` finds what is still
open at the end of a test: every transport and server stays registered with the
loop's selector until it is closed.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from collections.abc import Callable
from typing import Any

from .._core import wrap_methods
from ._ownership import Owner, record

__all__ = ["ResourceTracker", "watched_fds", "watched_files"]

_DEPTH = 8
"""Frames kept of a transport's creation site: client libraries call the loop from deep."""

_tracked: dict[int, list[tuple[weakref.ref[asyncio.AbstractEventLoop], Owner]]] = {}
"""The tracked loops by ``id``: a weak reference to the loop and its owners, innermost last."""


def _owner_of(loop: object) -> Owner | None:
    """The innermost owner tracking ``loop``, or ``None`` (most loops: one lookup)."""
    entries = _tracked.get(id(loop))
    if entries:
        ref, owner = entries[-1]
        if ref() is loop:
            return owner
    return None


def _make_transport(
    loop: object, method: Callable[..., Any], sock: object, *args: Any, **kwargs: Any
) -> Any:
    transport = method(sock, *args, **kwargs)
    owner = _owner_of(loop)
    if owner is None:
        pass
    elif isinstance(sock, socket.socket):
        record(owner, transport, sock, depth=_DEPTH)
    else:
        record(owner, transport, depth=_DEPTH)
    return transport


def _start_serving(
    loop: object,
    method: Callable[..., Any],
    protocol_factory: object,
    sock: object,
    *args: Any,
    **kwargs: Any,
) -> Any:
    owner = _owner_of(loop)
    if owner is not None:
        server = kwargs.get("server", args[1] if len(args) > 1 else None)
        record(owner, *(o for o in (server, sock) if o is not None), depth=_DEPTH)
    return method(protocol_factory, sock, *args, **kwargs)


_WRAPPERS: dict[str, Callable[..., Any]] = {
    "_make_socket_transport": _make_transport,
    "_make_ssl_transport": _make_transport,
    "_make_datagram_transport": _make_transport,
    "_start_serving": _start_serving,
}
"""Each observed loop method and its wrapper."""

_wrappers_of: dict[type, dict[str, Callable[..., Any]]] = {}
"""The wrappers of each loop class: those of :data:`_WRAPPERS` it has methods for."""


class ResourceTracker:
    """Records the transports, servers and sockets a loop makes while a test runs.

    Loops without these methods, or of a class implemented in C (uvloop), are left
    alone: their objects are then blamed by their loop (see :func:`._ownership.blame`).

    Args:
        owner: the test, recorded as their creator.
    """

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._release: Callable[[], None] | None = None
        self._entry: tuple[weakref.ref[asyncio.AbstractEventLoop], Owner] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Record what ``loop`` makes from now on, as the owner's."""
        cls = type(loop)
        wrappers = _wrappers_of.get(cls)
        if wrappers is None:
            wrappers = {
                name: w for name, w in _WRAPPERS.items() if callable(getattr(cls, name, None))
            }
            _wrappers_of[cls] = wrappers
        if not wrappers:
            return
        try:
            self._release = wrap_methods(cls, wrappers)
        except TypeError:  # a loop class in C
            return
        self._entry = entry = (weakref.ref(loop), self._owner)
        _tracked.setdefault(id(loop), []).append(entry)

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop recording what ``loop`` makes."""
        entry, self._entry = self._entry, None
        if entry is not None:
            entries = _tracked.get(id(loop), [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                _tracked.pop(id(loop), None)
        release, self._release = self._release, None
        if release is not None:
            release()


def _fd_to_key(selector: object) -> dict[int, Any] | None:
    """The dict behind ``selector.get_map()`` of the stdlib's selectors, else ``None``.

    Their ``get_map()`` is a Python ``Mapping`` view over it: iterating it and looking
    up each key costs a Python call per file descriptor, at the end of every test.
    """
    fd_to_key = getattr(selector, "_fd_to_key", None)
    return fd_to_key if type(fd_to_key) is dict else None


def watched_fds(loop: asyncio.AbstractEventLoop) -> set[int]:
    """The file descriptors ``loop``'s selector watches now (``set()`` without one)."""
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return set()
    fd_to_key = _fd_to_key(selector)
    if fd_to_key is not None:
        return set(fd_to_key)
    try:
        return set(selector.get_map())
    except (AttributeError, RuntimeError):
        return set()


def watched_files(
    loop: asyncio.AbstractEventLoop, known: set[int] | frozenset[int] = frozenset()
) -> dict[int, tuple[str, object]]:
    """The file descriptors a selector loop watches, except ``known``: description, owner.

    The owner is the transport or server holding the file descriptor, or ``None``.

    Transports and listening servers stay registered with the loop's selector until
    they are closed, so they are never garbage collected (and never warn) while the
    loop lives: this is how they are found. Loops without a selector give ``{}``.
    """
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return {}
    fd_to_key = _fd_to_key(selector)
    if fd_to_key is not None:
        if len(fd_to_key) <= len(known) and known.issuperset(fd_to_key):
            return {}  # the common case: nothing new
        keys = [key for fd, key in list(fd_to_key.items()) if fd not in known]
    else:
        try:
            mapping = selector.get_map()
            keys = [mapping[fd] for fd in mapping if fd not in known]
        except (AttributeError, KeyError, RuntimeError):
            return {}
    described: dict[int, tuple[str, object]] = {}
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
            described[key.fd] = (f"server still listening on {address!r}: {server!r}", server)
        elif isinstance(owner, asyncio.BaseTransport):
            described[key.fd] = (f"unclosed transport {owner!r}", owner)
        elif owner is loop:
            continue  # the loop's own self-pipe
        else:
            described[key.fd] = (
                f"file descriptor {key.fd} still watched by the loop: {handle!r}",
                None,
            )
    return described
