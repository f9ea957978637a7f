"""Which TCP ports this very process listens on: the test's own servers.

The network sandbox lets a client connect to a loopback port without a route only if
a socket of this process listens there, so a test still reaches the servers it
started itself (in a fixture or in the test, before or after the sandbox opened),
but not another program on the machine (a developer's database, a local proxy
that forwards to the internet).

The answer comes from the process's own file descriptors (``/proc/self/fd`` on
Linux, ``/dev/fd`` elsewhere): each socket among them is asked, without being taken
over, whether it listens (``SO_ACCEPTCONN``) and on which port. Where the process's
descriptors cannot be listed, every loopback port counts as the process's own
(loopback traffic cannot leave the machine).
"""

from __future__ import annotations

import os
import socket

__all__ = ["process_listens_on"]

_FD_DIRECTORIES = ("/proc/self/fd", "/dev/fd")


def _listening_port(fd: int) -> int | None:
    try:
        sock = socket.socket(fileno=fd)  # detects family and type; detached below
    except OSError:  # not a socket, or closed since it was listed
        return None
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (
            socket.AF_INET,
            socket.AF_INET6,
        ):
            return None
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
        port: int = sock.getsockname()[1]
        return port
    except OSError:
        return None
    finally:
        sock.detach()


def process_listens_on(port: int) -> bool:
    """Return whether a TCP socket of this process listens on ``port``.

    Args:
        port: the TCP port (int, 1-65535).

    Returns:
        ``True`` if this process owns a listening TCP socket on ``port`` (any local
        address); where the process's descriptors cannot be listed, always ``True``.

    Example:
        ```python
        assert process_listens_on(server.port)
        ```
    """
    for directory in _FD_DIRECTORIES:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        linux = directory.startswith("/proc")
        for name in names:
            fd = int(name)
            if linux:
                try:
                    if not os.readlink(f"{directory}/{name}").startswith("socket:"):
                        continue
                except OSError:
                    continue
            if _listening_port(fd) == port:
                return True
        return False
    return True
