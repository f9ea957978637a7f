"""Socket helpers shared by the servers and the transports: names, Unix paths, closing."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

__all__ = [
    "CLOSE_TIMEOUT",
    "TRANSPORT_NAMES",
    "abort_with_reset",
    "new_socket_path",
    "remove_socket",
    "select_transports",
    "wait_all",
]

TRANSPORT_NAMES: tuple[str, ...] = ("tcp", "tls", "unix")
"""Every transport a :class:`TransportContext` can be: plain TCP, TLS over TCP, Unix socket."""

_UNIX_PATH_LIMIT = 100
"""Bytes a Unix socket path may have: 104 on macOS and BSD, 108 on Linux, minus margin."""

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for one connection or server to finish closing at teardown."""


def select_transports(names: Iterable[str], *, source: str = "transports") -> list[str]:
    """Check a list of transport names and return it without duplicates, in order.

    Args:
        names: transport names (str) from :data:`TRANSPORT_NAMES`.
        source: where the names come from, for the error message (str).

    Returns:
        The names, each once, in the order given.

    Raises:
        ValueError: if a name is unknown, if no name is given, or if ``"unix"`` is
            asked for on a platform without Unix sockets.
        TypeError: if a name is not a str.

    Example:
        ```python
        assert select_transports(["unix", "tcp", "unix"]) == ["unix", "tcp"]
        ```
    """
    selected: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{source}: transport names are str, got {name!r}")
        if name not in TRANSPORT_NAMES:
            raise ValueError(
                f"{source}: unknown transport {name!r}; choose from {', '.join(TRANSPORT_NAMES)}"
            )
        if name == "unix" and not hasattr(socket, "AF_UNIX"):
            raise ValueError(f"{source}: this platform ({sys.platform}) has no Unix sockets")
        if name not in selected:
            selected.append(name)
    if not selected:
        raise ValueError(
            f"{source}: no transport selected; name at least one of {', '.join(TRANSPORT_NAMES)}"
        )
    return selected


_socket_directory: str | None = None
_socket_numbers = itertools.count(1)
_socket_lock = threading.Lock()


def new_socket_path() -> str:
    """Return a fresh Unix socket path that fits in the Unix path limit.

    The sockets of a process share one short temporary directory, made on first use
    and removed when the process exits; each socket file is removed by whoever made
    it. (Making and removing a directory per test costs milliseconds on some file
    systems; a file costs microseconds.)
    """
    global _socket_directory
    with _socket_lock:
        if _socket_directory is None or not os.path.isdir(_socket_directory):
            root = tempfile.gettempdir()
            if len(os.fsencode(root)) > _UNIX_PATH_LIMIT - 30 and os.path.isdir("/tmp"):
                root = "/tmp"  # macOS: /var/folders/xx/long-name/T is too long for sockets
            _socket_directory = tempfile.mkdtemp(prefix="atk-", dir=root)
            atexit.register(shutil.rmtree, _socket_directory, ignore_errors=True)
        return os.path.join(_socket_directory, f"s{next(_socket_numbers)}")


def remove_socket(path: str) -> None:
    """Remove a socket file if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def wait_all(waiters: Sequence[Callable[[], Awaitable[Any]]]) -> None:
    """Await every waiter (at most :data:`CLOSE_TIMEOUT` seconds), ignoring their errors."""
    if not waiters:
        return
    tasks = [asyncio.ensure_future(waiter()) for waiter in waiters]
    _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
    for task in pending:
        task.cancel()
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a reset connection is not an error here


def abort_with_reset(transport: asyncio.BaseTransport) -> None:
    """Drop a connection at once; over TCP the peer sees a reset (RST), not an end of stream.

    Unsent data is discarded. A Unix socket has no reset: its peer reads the end of
    stream, or gets a :class:`ConnectionResetError` if it was sending.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            # Linger on, timeout 0: close() sends RST instead of FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    else:
        transport.close()
