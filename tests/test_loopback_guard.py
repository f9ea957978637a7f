"""tools/loopback_guard.py, the plugin CI runs the suite under: it sees and stops escapes.

Run in a subprocess with its own report directory; every call it must catch is
stopped before the operating system sees it (documentation addresses and the
``.invalid`` top-level domain, which never resolves, besides).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"

ESCAPES = """
import asyncio
import socket
import subprocess
import sys

import aiohttp
import pytest


def test_connect_outside_loopback():
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="loopback guard"):
        sock.setblocking(False)
        sock.connect_ex(("192.0.2.1", 9))


def test_datagram_outside_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(OSError):
        sock.sendto(b"ping", ("198.51.100.7", 53))


def test_lookup_in_a_thread():
    async def lookup():
        await asyncio.get_running_loop().getaddrinfo("api.example.invalid", 443)

    with pytest.raises(socket.gaierror, match="loopback guard: getaddrinfo"):
        asyncio.run(lookup())


def test_aiohttp_through_aiodns():
    async def get():
        async with aiohttp.ClientSession() as session:
            await session.get("http://api.example.invalid/")

    with pytest.raises(aiohttp.ClientError):
        asyncio.run(get())


def test_lookup_in_a_subprocess():
    code = "import socket\\ntry: socket.gethostbyname('db.example.invalid')\\nexcept OSError: pass"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loopback_and_local_names_pass():
    socket.getaddrinfo("localhost", 80)
    socket.getaddrinfo("::1", 80)
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()):
            pass
"""


def test_the_guard_stops_and_reports_every_escape_under_the_test_that_made_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run under test has its own report directory (this run may be guarded too).
    monkeypatch.delenv("LOOPBACK_GUARD_DIR", raising=False)
    monkeypatch.delenv("LOOPBACK_GUARD_TEST", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(TOOLS))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_escapes=textwrap.dedent(ESCAPES))
    result = pytester.runpytest_subprocess("-p", "loopback_guard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, errors=5)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_connect_outside_loopback*",
            "*loopback guard: this test made 1 call(s) beyond loopback; tests must not reach"
            " the network outside 127.0.0.0/8 and ::1*",
        ]
    )
    summary = result.stdout.str().split("= loopback guard =", 1)[1]
    assert "5 call(s) beyond loopback blocked" in summary
    for test, call in [
        ("test_connect_outside_loopback", "connect 192.0.2.1:9"),
        ("test_datagram_outside_loopback", "sendto 198.51.100.7:53"),
        ("test_lookup_in_a_thread", "getaddrinfo api.example.invalid"),
        ("test_aiohttp_through_aiodns", "pycares.Channel.getaddrinfo api.example.invalid"),
        ("test_lookup_in_a_subprocess", "gethostbyname db.example.invalid"),
    ]:
        assert f"test_escapes.py::{test}:\n{call} (process " in summary
    assert "test_loopback_and_local_names_pass" not in summary
    assert result.ret == pytest.ExitCode.TESTS_FAILED
