"""The loopback guard's audit hook: blocks and records calls beyond loopback.

Installed by the ``loopback_guard`` pytest plugin in a run's processes and by
``tools/sitecustomize.py`` in their Python subprocesses; it imports nothing of pytest, so that
a guarded subprocess starts as fast as any. See ``loopback_guard`` for what it sees.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "DIR_VARIABLE",
    "FIX",
    "TEST_VARIABLE",
    "BlockedConnection",
    "BlockedLookup",
    "describe",
    "install",
    "read_records",
    "set_test",
    "stop",
]

DIR_VARIABLE = "LOOPBACK_GUARD_DIR"
"""The run's report directory: every guarded process appends its records there."""

TEST_VARIABLE = "LOOPBACK_GUARD_TEST"
"""The node id of the test running, for the records of the subprocesses it starts."""

FIX = (
    "tests must not reach the network outside 127.0.0.0/8 and ::1: route the host "
    "through aiotestkit's NetworkSandbox (sandbox.route(host, port, server)) or "
    "connect to a test server's own loopback address"
)


class BlockedConnection(ConnectionRefusedError):
    """A connection or datagram outside the loopback range, stopped by the guard."""


class BlockedLookup(socket.gaierror):
    """A name lookup that would have reached the real resolver, stopped by the guard."""


class _State:
    """The guard of this process: on or off, where records go, which test runs."""

    def __init__(self) -> None:
        self.installed = False
        self.active = False
        self.test = ""
        self.lock = threading.Lock()

    @property
    def report_dir(self) -> str | None:
        return os.environ.get(DIR_VARIABLE)


_state = _State()


def _text(host: object) -> str:
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii", "replace")
    return str(host)


def _is_localhost(name: str) -> bool:
    return name.rstrip(".").lower() == "localhost"


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(name.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _outside_loopback(host: object) -> bool:
    """Whether a connection to ``host`` may leave the machine."""
    name = _text(host)
    if _is_localhost(name):
        return False
    ip = _ip(name)
    return ip is None or not ip.is_loopback


def _asks_resolver(host: object) -> bool:
    """Whether looking ``host`` up may reach a DNS server."""
    if host is None:
        return False
    name = _text(host)
    return not (name == "" or _is_localhost(name) or _ip(name) is not None)


def _ip_address(address: object) -> object | None:
    """The host of an AF_INET or AF_INET6 address, None for other families."""
    if isinstance(address, tuple) and len(address) in (2, 4):
        host: object = address[0]
        return host
    return None


def _on_connect(args: tuple[Any, ...]) -> str | None:
    sock, address = args
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return None
    host = _ip_address(address)
    if host is None or not _outside_loopback(host):
        return None
    return f"{_text(host)}:{address[1]}"


def _on_lookup(args: tuple[Any, ...]) -> str | None:
    host = args[0]
    return _text(host) if _asks_resolver(host) else None


def _on_reverse_lookup(args: tuple[Any, ...]) -> str | None:
    address = args[0]
    host = _ip_address(address) if isinstance(address, tuple) else address
    return _text(host) if host is not None and _outside_loopback(host) else None


_EVENTS: dict[str, tuple[str, Callable[[tuple[Any, ...]], str | None]]] = {
    "socket.connect": ("connect", _on_connect),
    "socket.sendto": ("sendto", _on_connect),
    "socket.sendmsg": ("sendmsg", _on_connect),
    "socket.getaddrinfo": ("getaddrinfo", _on_lookup),
    "socket.gethostbyname": ("gethostbyname", _on_lookup),
    "socket.gethostbyaddr": ("gethostbyaddr", _on_reverse_lookup),
    "socket.getnameinfo": ("getnameinfo", _on_reverse_lookup),
}

_OWN_FILE = os.path.normcase(os.path.abspath(__file__))
_RUNNERS = ("_pytest", "pluggy", "xdist", "execnet")
"""The runners whose frames every record would repeat."""


def _frames() -> list[str]:
    """The caller's frames, innermost last, without the guard's and the runners' own."""
    skip = tuple(
        os.path.normcase(os.path.dirname(os.path.abspath(module.__file__))) + os.sep
        for module in map(sys.modules.get, _RUNNERS)
        if module is not None and module.__file__ is not None
    )
    stack = [
        frame
        for frame in traceback.extract_stack()
        if not (
            (path := os.path.normcase(os.path.abspath(frame.filename))) == _OWN_FILE
            or path.startswith(skip)
        )
    ]
    return traceback.format_list(stack[-10:])


def _record(call: str, target: str) -> str:
    """Append one record to this process's file; return the message the call raises."""
    record = {
        "call": call,
        "target": target,
        "test": _state.test,
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "frames": _frames(),
    }
    report_dir = _state.report_dir
    if report_dir is not None:
        with (
            _state.lock,
            open(os.path.join(report_dir, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as file,
        ):
            file.write(json.dumps(record) + "\n")
    return f"loopback guard: {call} {target} blocked: {FIX}"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in _EVENTS or not _state.active:
        return
    call, check = _EVENTS[event]
    target = check(args)
    if target is None:
        return
    message = _record(call, target)
    if call in ("connect", "sendto", "sendmsg"):
        raise BlockedConnection(errno.ECONNREFUSED, message)
    raise BlockedLookup(socket.EAI_NONAME, message)


def _wrap_channel(channel: type) -> None:
    """Guard the lookups of ``pycares.Channel``, which c-ares runs in C."""
    if getattr(channel, "_loopback_guard", False):
        return

    def guarded(name: str, check: Callable[[object], str | None]) -> Callable[..., Any]:
        original = getattr(channel, name)

        def method(self: object, target: object, *args: Any, **kwargs: Any) -> Any:
            if _state.active:
                blocked = check(target)
                if blocked is not None:
                    message = _record(f"pycares.Channel.{name}", blocked)
                    raise BlockedLookup(socket.EAI_NONAME, message)
            return original(self, target, *args, **kwargs)

        method.__name__ = method.__qualname__ = name
        method.__doc__ = original.__doc__
        return method

    def any_name(name: object) -> str:
        # A DNS query or search goes to the name servers, whatever the name.
        return _text(name)

    def reverse(address: object) -> str | None:
        return _on_reverse_lookup((address,))

    checks: dict[str, Callable[[object], str | None]] = {
        "getaddrinfo": lambda host: _on_lookup((host,)),
        "gethostbyname": lambda host: _on_lookup((host,)),
        "query": any_name,
        "search": any_name,
        "gethostbyaddr": reverse,
        "getnameinfo": reverse,
    }
    for name, check in checks.items():
        if hasattr(channel, name):
            setattr(channel, name, guarded(name, check))
    channel._loopback_guard = True  # type: ignore[attr-defined]


class _WrapPycaresOnImport:
    """A meta path finder that wraps ``pycares.Channel`` once pycares is imported.

    Importing pycares costs a C extension's load; a guarded subprocess that never
    resolves through c-ares does not pay it.
    """

    def find_spec(
        self, fullname: str, path: Any, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != "pycares":
            return None
        sys.meta_path.remove(self)
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module: ModuleType) -> None:
            exec_module(module)
            _wrap_channel(module.Channel)

        spec.loader.exec_module = exec_and_wrap  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Guard this process from now on (idempotent; an audit hook stays for good).

    The test running is the one named by ``LOOPBACK_GUARD_TEST`` until the plugin
    says otherwise.
    """
    if not _state.installed:
        _state.installed = True
        _state.test = os.environ.get(TEST_VARIABLE, "")
        sys.addaudithook(_audit)
        if "pycares" in sys.modules:
            _wrap_channel(sys.modules["pycares"].Channel)
        else:
            sys.meta_path.insert(0, _WrapPycaresOnImport())
    _state.active = True


def stop() -> None:
    """Stop blocking and recording in this process (the audit hook stays, idle)."""
    _state.active = False


def set_test(nodeid: str) -> None:
    """Name the test running now in this process's records ("" between tests)."""
    _state.test = nodeid


def read_records(report_dir: str) -> Iterator[dict[str, Any]]:
    """Every record of a run's report directory, process by process."""
    for path in sorted(Path(report_dir).glob("*.jsonl")):
        with _state.lock:
            lines = path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            yield json.loads(line)


def describe(record: dict[str, Any]) -> str:
    """One record as the reports show it: the call, its target, where it came from."""
    frames = "".join(record["frames"]).rstrip()
    return (
        f"{record['call']} {record['target']} (process {record['pid']}, "
        f"thread {record['thread']!r})\n{frames}"
    )
