"""A pytest plugin that fails the run on any connection or name lookup beyond loopback.

aiotestkit promises that no test reaches the network outside the loopback range
(127.0.0.0/8 and ``::1``). This plugin checks the promise for a whole run, whatever
the suite patches::

    PYTHONPATH=tools python -m pytest -p loopback_guard -n 2 tests examples

What it sees: an audit hook (:func:`sys.addaudithook`) is called by the C socket
module itself, from any thread, just before it hands a call to the operating system,
so it sees what is left once every Python-level patch (aiotestkit's network sandbox
among them) has had its say:

- ``socket.connect``: :meth:`socket.socket.connect` and
  :meth:`~socket.socket.connect_ex`, and through them the loop's ``sock_connect``,
  ``create_connection`` and ``create_datagram_endpoint``, and
  :func:`socket.create_connection`;
- ``socket.sendto`` and ``socket.sendmsg`` with an address (UDP);
- the system resolver: ``socket.getaddrinfo`` (the loop's ``getaddrinfo`` runs it in
  a thread), ``socket.gethostbyname`` (and ``gethostbyname_ex``),
  ``socket.gethostbyaddr`` and ``socket.getnameinfo``.

c-ares (``pycares``, under ``aiodns`` and aiohttp's ``AsyncResolver``) does its own
I/O in C, out of the audit hook's sight: its ``Channel`` methods are wrapped instead,
the lowest Python level it has.

A connection or datagram to an address outside 127.0.0.0/8 and ``::1`` (a host
name other than ``localhost`` counts as outside: the C socket module resolves it
itself), and a lookup of a name other than ``localhost`` or an IP literal, is
blocked before the operating system sees it (the call raises
:class:`BlockedConnection` or :class:`BlockedLookup`) and recorded. The test it
happened in errors at teardown with the records; the session fails, and its summary
lists every record with the test, the process, the thread and the calling frames.

Subprocesses: with ``PYTHONPATH=tools``, ``tools/sitecustomize.py`` installs the same
guard in every Python subprocess of the run (pytest-xdist's workers, pytester's
``runpytest_subprocess``, ``subprocess.run([sys.executable, ...])``); they write their
records to the run's report directory (environment variable ``LOOPBACK_GUARD_DIR``),
under the test that started them (``LOOPBACK_GUARD_TEST``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator

import pytest
from loopback_audit import (
    DIR_VARIABLE,
    FIX,
    TEST_VARIABLE,
    describe,
    install,
    read_records,
    set_test,
    stop,
)

__all__ = [
    "pytest_configure",
    "pytest_runtest_makereport",
    "pytest_runtest_protocol",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_unconfigure",
]

_OWNER = pytest.StashKey[str]()
"""The report directory this process's plugin created (the controller's)."""


def pytest_configure(config: pytest.Config) -> None:
    """Open the run's report directory (once, in the controller) and guard this process."""
    if os.environ.get(DIR_VARIABLE) is None:
        report_dir = tempfile.mkdtemp(prefix="loopback-guard-")
        os.environ[DIR_VARIABLE] = report_dir
        config.stash[_OWNER] = report_dir
    install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Name the test in the records of this process and of the subprocesses it starts."""
    set_test(item.nodeid)
    os.environ[TEST_VARIABLE] = item.nodeid
    try:
        return (yield)
    finally:
        set_test("")
        os.environ.pop(TEST_VARIABLE, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Error the test at teardown with the connections and lookups it made."""
    report: pytest.TestReport = yield
    report_dir = os.environ.get(DIR_VARIABLE)
    if call.when != "teardown" or report_dir is None:
        return report
    records = [r for r in read_records(report_dir) if r["test"] == item.nodeid]
    if records:
        text = "\n\n".join(describe(record) for record in records)
        report.outcome = "failed"
        report.longrepr = (
            f"loopback guard: this test made {len(records)} call(s) beyond loopback; "
            f"{FIX}\n\n{text}"
        )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any process of it made a call beyond loopback."""
    report_dir = session.config.stash.get(_OWNER, None)
    if report_dir is not None and any(read_records(report_dir)):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """List every call beyond loopback of the run, by test."""
    report_dir = terminalreporter.config.stash.get(_OWNER, None)
    if report_dir is None:
        return
    records = list(read_records(report_dir))
    if not records:
        terminalreporter.write_line("loopback guard: no connection or name lookup beyond loopback")
        return
    terminalreporter.section("loopback guard", sep="=", red=True)
    terminalreporter.write_line(f"{len(records)} call(s) beyond loopback blocked; {FIX}")
    for record in records:
        terminalreporter.write_line("")
        terminalreporter.write_line(f"{record['test'] or '(outside any test)'}:")
        terminalreporter.write_line(describe(record))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop guarding and remove the report directory this process created."""
    report_dir = config.stash.get(_OWNER, None)
    if report_dir is not None:
        stop()
        os.environ.pop(DIR_VARIABLE, None)
        shutil.rmtree(report_dir, ignore_errors=True)
