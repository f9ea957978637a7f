"""What the virtual clock looks at before it moves time, and its deadlock report.

The clock (:mod:`._clock`) only decides *when* time moves. Before a jump it asks
this module whether real I/O is still in flight (:func:`in_flight`: executor jobs,
TCP bytes not yet received by their peer) and whether something outside the loop
could answer unseen (:func:`outside_actor`: a connection to another process, a
pipe, a thread). When nothing can ever wake the loop, :func:`deadlock_message`
describes every task and the line it waits on.
"""

from __future__ import annotations

import asyncio
import linecache
import re
import selectors
import socket
import struct
import sys
import threading
from collections.abc import Collection
from types import FrameType
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no socket queue ioctls; the threshold covers it
    fcntl = None  # type: ignore[assignment]

__all__ = ["deadlock_message", "in_flight", "outside_actor"]

# Linux ioctls on a TCP socket: bytes in the send queue (not yet acknowledged), and
# bytes in the send queue not yet sent. Their difference is on the wire right now.
_SIOCOUTQ = 0x5411
_SIOCOUTQNSD = 0x894B
_INT = struct.Struct("i")


def _send_queue(fd: int) -> tuple[int, int]:
    """(sent but unacknowledged, not sent yet) bytes of a TCP socket; (0, 0) if not TCP/Linux."""
    if fcntl is None:
        return 0, 0
    try:
        queued = int(_INT.unpack(fcntl.ioctl(fd, _SIOCOUTQ, b"\0\0\0\0"))[0])
        if not queued:
            return 0, 0
        unsent = int(_INT.unpack(fcntl.ioctl(fd, _SIOCOUTQNSD, b"\0\0\0\0"))[0])
    except OSError:  # not a socket, a listening socket, not TCP, not Linux
        return 0, 0
    return max(0, queued - unsent), unsent


_TCP_INFO_SIZE = 136
_TCP_INFO_BYTES = struct.Struct("QQ")  # tcpi_bytes_acked, tcpi_bytes_received (Linux 4.1+)
_TCP_INFO_BYTES_OFFSET = 120


def _tcp_counters(fd: int) -> tuple[object, object, int, int] | None:
    """(local address, peer address, bytes acked, bytes received) of a TCP socket fd."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
        local, peer = sock.getsockname(), sock.getpeername()
    except (OSError, AttributeError):
        return None
    finally:
        sock.detach()  # the loop owns the fd: never close it
    if len(info) < _TCP_INFO_SIZE:
        return None
    acked, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_BYTES_OFFSET)
    return local, peer, int(acked), int(received)


def _bytes_in_transit(fds: list[int]) -> int | None:
    """The fd of a TCP socket whose sent bytes have not all reached their peer, or None.

    A socket with unacknowledged bytes is in transit unless its peer is one of
    ``fds`` (a socket of the same loop) and has received them all already: then only
    the peer's (delayed) acknowledgement is on its way, and nothing waits for it;
    unless the socket also holds bytes back until that acknowledgement comes (Nagle's
    algorithm on a socket without ``TCP_NODELAY``): those are on their way too.
    """
    senders = [
        (fd, unacked, unsent) for fd in fds for unacked, unsent in [_send_queue(fd)] if unacked
    ]
    if not senders:
        return None
    received_by: dict[tuple[object, object], int] = {}
    for fd in fds:
        counters = _tcp_counters(fd)
        if counters is not None:
            local, peer, _, received = counters
            received_by[(peer, local)] = received
    for fd, unacked, unsent in senders:
        if unsent:
            return fd
        counters = _tcp_counters(fd)
        if counters is None:
            return fd
        local, peer, acked, _ = counters
        peer_received = received_by.get((local, peer))
        if peer_received is None or peer_received < acked + unacked:
            return fd
    return None


def _outside_peer(fds: list[int], self_pipe: int | None) -> str | None:
    """Something of the loop whose other end is outside it, or ``None``.

    A TCP connection whose both ends are sockets of the loop, a listening socket and
    the loop's own wake-up socket are inside. Anything else (a connection to a thread
    or another process, a pipe, a UDP or Unix socket) may get an answer the loop cannot
    see coming, so the clock gives it ``autojump_threshold`` of real time first.
    """
    connections: list[tuple[object, object]] = []
    for fd in fds:
        if fd == self_pipe:
            continue
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            return f"fd {fd}, which is not a socket"
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                return f"socket fd {fd} ({sock.family.name}, {sock.type.name})"
            connections.append((sock.getsockname(), sock.getpeername()))
        except OSError:
            return f"socket fd {fd}"
        finally:
            sock.detach()  # the loop owns the fd: never close it
    ends = set(connections)
    for local, peer in connections:
        if (peer, local) not in ends:
            return f"a connection from {local} to {peer}, outside the loop"
    return None


def _outside_thread() -> str | None:
    """A thread that may work for the loop unseen (not the loop's executor), or ``None``."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        # asyncio's default executor threads run jobs the clock tracks already.
        if thread is current or thread.name.startswith(("asyncio_", "aiotestkit-")):
            continue
        return f"thread {thread.name!r}"
    return None


def _task_order(task: asyncio.Task[Any]) -> tuple[int, str]:
    match = re.fullmatch(r"Task-(\d+)", task.get_name())
    return (int(match.group(1)) if match else sys.maxsize, task.get_name())


def _where(frame: FrameType) -> str:
    code = frame.f_code
    source = linecache.getline(code.co_filename, frame.f_lineno).strip()
    where = f"{code.co_filename}:{frame.f_lineno} in {code.co_name}"
    return f"{where}: {source}" if source else where


def _describe_task(task: asyncio.Task[Any]) -> str:
    """One task, the chain of awaits it is suspended in, and the object at its end."""
    frames = list(task.get_stack())
    awaited: object = task.get_coro()
    # get_stack() stops at the task's own coroutine; follow the awaits down.
    seen = 0
    while awaited is not None and seen < 50:
        seen += 1
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is not None and (not frames or frames[-1] is not frame):
            frames.append(frame)
        inner = getattr(awaited, "cr_await", None)
        if inner is None:
            inner = getattr(awaited, "gi_yieldfrom", None)
        if inner is None:
            break
        awaited = inner
    lines = [f"  - {task.get_name()} ({getattr(task.get_coro(), '__qualname__', '?')}):"]
    lines.extend(f"      {_where(frame)}" for frame in frames)
    # The future the task is suspended on (asyncio keeps it on the task).
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        lines.append(f"      waits on {_short_repr(waiter)}")
    return "\n".join(lines)


def _short_repr(value: object, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def in_flight(
    executor_jobs: Collection[asyncio.Future[Any]], selector: selectors.BaseSelector
) -> str | None:
    """What real I/O the loop waits for right now, or ``None``.

    Args:
        executor_jobs: the jobs ``loop.run_in_executor`` started.
        selector: the loop's selector.
    """
    jobs = sum(1 for job in executor_jobs if not job.done())
    if jobs:
        return f"{jobs} executor job(s) running"
    fd = _bytes_in_transit([key.fd for key in list(selector.get_map().values())])
    if fd is not None:
        return f"bytes in transit on socket fd {fd}"
    return None


def outside_actor(loop: asyncio.AbstractEventLoop, selector: selectors.BaseSelector) -> str | None:
    """Who outside the loop might answer it unseen, or ``None``."""
    self_pipe = getattr(loop, "_ssock", None)
    fds = [key.fd for key in list(selector.get_map().values())]
    return _outside_peer(fds, self_pipe.fileno() if self_pipe is not None else None) or (
        _outside_thread()
    )


def deadlock_message(
    loop: asyncio.AbstractEventLoop,
    *,
    now: float,
    timeout: float | None,
    deadlock_timeout: float,
    next_timer: float | None,
) -> str:
    """The message of a :class:`aiotestkit.DeadlockError`: why, every task, how to fix.

    Args:
        loop: the deadlocked loop.
        now: the virtual time, in seconds.
        timeout: the selector timeout the loop asked for (``None``: no timer at all).
        deadlock_timeout: the real seconds the loop stayed quiet.
        next_timer: the virtual time of the next timer, if any.
    """
    tasks = sorted((task for task in asyncio.all_tasks(loop) if not task.done()), key=_task_order)
    listed = "\n".join(_describe_task(task) for task in tasks) or "  (no task)"
    if timeout is None:
        why = (
            "no timer is scheduled, no I/O arrived for "
            f"{deadlock_timeout:g} s of real time and no executor job is "
            "running, so nothing can ever wake them"
        )
        fix = (
            "A task probably awaits a future, event, queue or reply that nothing will "
            "provide. Make it happen, or bound the wait with asyncio.timeout()."
        )
    else:
        due = f"{next_timer:g}" if next_timer is not None else "?"
        why = (
            f"autojump is off and the next timer is due at t={due} s (virtual; now "
            f"t={now:g} s), but no task is calling clock.advance()"
        )
        fix = (
            "Call 'await clock.advance(seconds)' from the test while the others "
            "wait, or turn autojump on."
        )
    return (
        f"event loop deadlocked at virtual time t={now:g} s: every task waits and "
        f"{why}. Waiting tasks ({len(tasks)}):\n{listed}\n{fix}"
    )
