"""Which TCP ports this very process listens on: the test's own servers.

The network sandbox lets a client connect to a loopback port without a route only if
a socket of this process listens there, so a test still reaches the servers it
started itself (in a fixture or in the test, before or after the sandbox opened),
but not another program on the machine (a developer's database, a local proxy
that forwards to the internet).

On Linux the answer comes from ``/proc``: the listening sockets of the network
namespace (``/proc/self/net/tcp``, ``tcp6``) whose inode is one of this process's
file descriptors. Elsewhere there is no portable way to ask, and every loopback
port counts as the process's own (loopback traffic cannot leave the machine).
"""

from __future__ import annotations

import os

__all__ = ["process_listens_on"]

_PROC_FD = "/proc/self/fd"
_PROC_TCP = ("/proc/self/net/tcp", "/proc/self/net/tcp6")
_TCP_LISTEN = "0A"


def _socket_inodes() -> set[str]:
    inodes: set[str] = set()
    for fd in os.listdir(_PROC_FD):
        try:
            link = os.readlink(f"{_PROC_FD}/{fd}")
        except OSError:  # closed since listdir()
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


def _listening_inodes(port: int) -> set[str]:
    wanted = f"{port:04X}"
    inodes: set[str] = set()
    for path in _PROC_TCP:
        try:
            with open(path) as table:
                next(table, None)  # the header line
                for line in table:
                    fields = line.split()
                    # local_address is "HEXIP:HEXPORT"; st is the state; inode is field 9
                    if fields[3] == _TCP_LISTEN and fields[1].rpartition(":")[2] == wanted:
                        inodes.add(fields[9])
        except FileNotFoundError:
            continue
    return inodes


def process_listens_on(port: int) -> bool:
    """Return whether a TCP socket of this process listens on ``port``.

    Args:
        port: the TCP port (int, 1-65535).

    Returns:
        ``True`` if this process owns a listening socket on ``port`` (any local
        address); on systems without ``/proc``, always ``True``.

    Example:
        >>> process_listens_on(server.port)
        True
    """
    if not os.path.isdir(_PROC_FD) or not os.path.exists(_PROC_TCP[0]):
        return True
    listening = _listening_inodes(port)
    return bool(listening) and not listening.isdisjoint(_socket_inodes())
