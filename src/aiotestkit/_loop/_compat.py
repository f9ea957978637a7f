"""Two CPython defects that would make a test's report depend on the Python version.

Each function corrects one documented defect of a supported Python release for as long as
a test is instrumented, as the next release behaves, and returns the callable that undoes
it. On a release without the defect it changes nothing.
"""

from __future__ import annotations

import asyncio
import sys
from asyncio import sslproto
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any

from .._core import set_instance_attribute

__all__ = ["keep_task_names", "mark_lost_tls_transports_closed", "nothing"]

_TLS_DEFECT = sys.version_info < (3, 11)
_NAMES_DEFECT = (3, 13, 0) <= sys.version_info[:3] < (3, 13, 3)


def nothing() -> None:
    """Undo nothing: what the functions here return on a release without the defect."""


_nothing = nothing


_tls_patches = 0
"""How many instrumentations use the patched ``SSLProtocol.connection_lost`` now."""


def mark_lost_tls_transports_closed() -> Callable[[], None]:
    """On Python 3.10, mark a TLS transport closed once its connection is lost, as 3.11 does.

    Python 3.10's ``asyncio.sslproto.SSLProtocol.connection_lost`` leaves the transport it
    gave the protocol flagged open when the TLS handshake had completed, although the socket
    under it is closed (CPython bpo-46318, fixed by the SSL implementation of 3.11). A
    protocol that does not call ``transport.close()`` itself after ``connection_lost`` (every
    connection of an aiohttp server: aiohttp issue 5426) then makes the transport warn
    "unclosed transport" when it is collected, and the test would be reported for a leak it
    did not make, on 3.10 only. Transports that are really open stay registered with the
    loop and are still reported.

    Nested calls share one patch; it is removed when the last undo runs.

    Returns:
        The undo callable; call it once.

    Example:
        ```python
        undo = mark_lost_tls_transports_closed()
        try:
            ...  # the test
        finally:
            undo()
        ```
    """
    if not _TLS_DEFECT:
        return _nothing
    global _tls_patches
    original = sslproto.SSLProtocol.connection_lost
    if _tls_patches == 0:

        def connection_lost(self: sslproto.SSLProtocol, exc: BaseException | None) -> None:
            transport = self._app_transport
            original(self, exc)
            if transport is not None:
                transport._closed = True

        connection_lost.__wrapped__ = original  # type: ignore[attr-defined]
        sslproto.SSLProtocol.connection_lost = connection_lost  # type: ignore[method-assign]
    _tls_patches += 1
    undone = False

    def undo() -> None:
        global _tls_patches
        nonlocal undone
        if undone:
            return
        undone = True
        _tls_patches -= 1
        if _tls_patches == 0:
            patched = sslproto.SSLProtocol.connection_lost
            sslproto.SSLProtocol.connection_lost = patched.__wrapped__  # type: ignore[attr-defined, method-assign]

    return undo


def keep_task_names(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """On Python 3.13.0 to 3.13.2, keep the names of tasks a task factory makes.

    There, ``loop.create_task(coro)`` calls ``task.set_name(None)`` after a task factory
    returns, so every task created without a name is called ``'None'`` instead of
    ``'Task-7'`` (CPython gh-130033, fixed in 3.13.3). aiotestkit installs a task factory
    to record where each task was created: without this, installing it would rename the
    tasks of the code under test, and the hang guard's report would name none of them.
    ``loop.create_task`` behaves as on 3.12 meanwhile: the name is set only when given.

    Args:
        loop: the loop whose ``create_task`` is corrected.

    Returns:
        The undo callable; call it once.

    Example:
        ```python
        undo = keep_task_names(asyncio.get_running_loop())
        try:
            ...  # the test
        finally:
            undo()
        ```
    """
    if not _NAMES_DEFECT:
        return _nothing
    create_task: Any = loop.create_task  # its context argument is new in 3.11

    def create_task_keeping_name(
        coro: Coroutine[Any, Any, Any], *, name: str | None = None, context: Context | None = None
    ) -> asyncio.Task[Any]:
        factory = loop.get_task_factory()
        if factory is None:
            return create_task(coro, name=name, context=context)  # type: ignore[no-any-return]
        if loop.is_closed():
            raise RuntimeError("Event loop is closed")
        # As on 3.12: the context is passed only when given (the legacy factory API).
        kwargs = {} if context is None else {"context": context}
        task: Any = factory(loop, coro, **kwargs)
        if name is not None:
            task.set_name(name)
        return task  # type: ignore[no-any-return]

    try:
        return set_instance_attribute(loop, "create_task", create_task_keeping_name)
    except TypeError:  # a loop implemented in C (uvloop) has neither the defect nor a dict
        return _nothing
