"""Exceptions and warnings raised by aiotestkit.

Every exception derives from :class:`AiotestkitError` and also from the standard
library type that callers already catch: a wait that ran out is a :class:`TimeoutError`,
a refused network access is an :class:`OSError`, a misuse of a server is a
:class:`RuntimeError`. Catch the standard type in code under test, the aiotestkit type
in tests that want to be precise.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._loop import HygieneReport

__all__ = [
    "AiotestkitError",
    "AiotestkitWarning",
    "BlockedWhileWaiting",
    "ClientClosedConnection",
    "DeadlockError",
    "HandlerError",
    "HangTimeout",
    "HygieneError",
    "HygieneWarning",
    "MockNotAwaited",
    "NameResolutionDenied",
    "NetworkAccessDenied",
    "NetworkSandboxActive",
    "ReceiveTimeout",
    "RequestNotPending",
    "SendTimeout",
    "UnansweredRequestsWarning",
    "UnexpectedMessage",
    "UnexpectedRequestsWarning",
    "UnfinishedConnectionsWarning",
    "UnusedExpectationsWarning",
]


class AiotestkitError(Exception):
    """Root of every exception that aiotestkit raises.

    Example:
        ```python
        assert issubclass(ReceiveTimeout, AiotestkitError)
        ```
    """


class ReceiveTimeout(AiotestkitError, TimeoutError):
    """A test server waited longer than its timeout for the client.

    Raised by ``receive_*`` methods such as
    :meth:`aiotestkit.CaseControlledTestServer.receive_request` when nothing arrived
    in time. The message names the server, the timeout in seconds and what was
    waited for.

    Example:
        ```python
        assert isinstance(ReceiveTimeout("no request"), TimeoutError)
        ```
    """


class SendTimeout(AiotestkitError, TimeoutError):
    """A test server could not hand its data to a client that stopped reading.

    Raised by ``send*`` methods of the case-controlled stream and WebSocket servers
    when the data stayed in the send buffer longer than the timeout: the client does
    not read. The message names the connection, the timeout and the size of the data.

    Example:
        ```python
        assert isinstance(SendTimeout("client does not read"), TimeoutError)
        ```
    """


class ClientClosedConnection(AiotestkitError, EOFError):
    """The client closed the connection while the test waited for more from it.

    Raised by ``receive_*`` methods when the connection ended before what the test
    asked for arrived (a whole line, ``n`` bytes, a WebSocket message). The message
    shows what the client sent before it closed.

    Example:
        ```python
        assert issubclass(ClientClosedConnection, EOFError)
        ```
    """


class UnexpectedMessage(AiotestkitError, AssertionError):
    """A client sent something other than what the test asked to receive.

    Raised, for example, by
    :meth:`aiotestkit.CaseControlledWebSocketServer` connections when
    ``receive_str()`` gets a binary message or ``receive_json()`` gets text that is
    not JSON. It is an :class:`AssertionError`: the client did not behave as the test
    expects. The message shows what arrived.

    Example:
        ```python
        assert issubclass(UnexpectedMessage, AssertionError)
        ```
    """


class HandlerError(AiotestkitError, RuntimeError):
    """A server connection handler started by the test raised, or never returned.

    Raised when a :class:`aiotestkit.TransportContext` (the ``transport`` fixture)
    closes: a handler exception happens in a background task that the test does not
    await, so it is collected and raised here, with the handler's traceback in the
    message and as ``__cause__``.

    Example:
        ```python
        assert issubclass(HandlerError, RuntimeError)
        ```
    """


class RequestNotPending(AiotestkitError, RuntimeError):
    """A test tried to answer a request that the server is not holding.

    Raised when a request is answered twice, when its client went away before the
    answer, or when it was received by another server. The message says which.

    Example:
        ```python
        assert issubclass(RequestNotPending, RuntimeError)
        ```
    """


class DeadlockError(AiotestkitError, RuntimeError):
    """Under a virtual clock, the event loop was idle with nothing that could ever wake it.

    Raised by :class:`aiotestkit.VirtualClock` instead of hanging: every task waits,
    no timer is scheduled (or autojump is off and nothing calls ``advance``), no I/O
    arrived for ``deadlock_timeout`` real seconds and no executor job runs. It
    propagates out of the loop's ``run_until_complete``, so the test fails with it.
    The message lists every waiting task with the chain of lines it is suspended on,
    and the future at its end.

    Example:
        ```python
        assert issubclass(DeadlockError, RuntimeError)
        ```
    """


class NetworkAccessDenied(AiotestkitError, OSError):
    """A connection or name resolution was refused because no test server is there.

    It is an :class:`OSError` with ``errno`` set to ``ECONNREFUSED``, so client code
    handles it exactly as it handles a real network failure, and libraries that wrap
    ``OSError`` (aiohttp's ``ClientConnectorError``) keep the message.

    Args:
        message: what was refused and how to allow it.
        host: the host name the client asked for.
        port: the TCP port the client asked for.

    Example:
        ```python
        error = NetworkAccessDenied("no route", host="example.com", port=443)
        assert error.errno == errno.ECONNREFUSED
        assert (error.host, error.port) == ("example.com", 443)
        ```
    """

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(errno.ECONNREFUSED, message)
        self.host = host
        self.port = port

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_network_access_denied, (self.strerror, self.host, self.port))


def _rebuild_network_access_denied(message: str, host: str, port: int) -> NetworkAccessDenied:
    return NetworkAccessDenied(message, host=host, port=port)


class BlockedWhileWaiting(AiotestkitError, ConnectionRefusedError):
    """A test server's wait ended at once: the network sandbox refused a connection.

    Raised by ``receive_request()``, ``receive_connection()`` and every other wait
    of a test server when, while it waits, the network sandbox of the same loop
    refuses a lookup or connection that the test did not declare expected (with
    ``expect_blocked`` or ``allow_blocked=True``): the client the test waits for
    most likely got that refusal (a forgotten ``route()``, or one not awaited)
    instead of reaching the server, so waiting out the timeout would only delay
    the failure. The message is the refusal's: host, port and the ``route(...)``
    call that would allow it. The refusal stays in the test's hygiene report too.

    Example:
        ```python
        assert issubclass(BlockedWhileWaiting, ConnectionRefusedError)
        ```
    """

    def __init__(self, message: str) -> None:
        super().__init__(errno.ECONNREFUSED, message)

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[object, ...]:
        return (BlockedWhileWaiting, (self.strerror,))


class MockNotAwaited(AiotestkitError, AssertionError):
    """An async mock was called but the coroutine of the call was never awaited.

    Raised by :func:`aiotestkit.mock.assert_all_awaited`. The message names each
    mock, its ``call_count`` and ``await_count``, and the calls never awaited: the
    code under test is missing an ``await``.

    Example:
        ```python
        assert issubclass(MockNotAwaited, AssertionError)
        ```
    """


class HygieneError(AiotestkitError, AssertionError):
    """A test left tasks, exceptions, coroutines, resources or requests behind.

    Raised at the end of a test by the hygiene checks of
    :class:`aiotestkit.LoopInstrumentation` (and so by the pytest plugin) for every
    check in ``strict`` mode that found something. The message is the whole report:
    what was found, where it was created and how to fix it.

    Args:
        message: the formatted report.
        report: the :class:`aiotestkit.HygieneReport` it was formatted from.

    Example:
        ```python
        assert issubclass(HygieneError, AssertionError)
        ```
    """

    def __init__(self, message: str, *, report: HygieneReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class HangTimeout(AiotestkitError, TimeoutError):
    """An async test ran past its hang guard limit and was cancelled.

    The message gives the limit in seconds and the stack of every task on the loop,
    so that the place where the test waits is visible. Raise the limit with the
    ``aiotestkit_hang_timeout`` ini option or ``@pytest.mark.hang_timeout(seconds)``.

    Example:
        ```python
        assert issubclass(HangTimeout, TimeoutError)
        ```
    """


class NameResolutionDenied(NetworkAccessDenied, socket.gaierror):
    """A host name lookup was refused because no test server is routed for the host.

    A :class:`socket.gaierror` (``errno`` is ``socket.EAI_NONAME``, as for a name
    that does not exist) as well as a :class:`NetworkAccessDenied`, so client code
    sees the failure a real unknown host would cause.

    Args:
        message: what was refused and how to allow it.
        host: the host name the client looked up.
        port: the port given with the lookup (0 if none).

    Example:
        ```python
        error = NameResolutionDenied("no route", host="example.com", port=443)
        assert isinstance(error, socket.gaierror)
        assert error.errno == socket.EAI_NONAME
        ```
    """

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message, host=host, port=port)
        self.errno = socket.EAI_NONAME

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_name_resolution_denied, (self.strerror, self.host, self.port))


def _rebuild_name_resolution_denied(message: str, host: str, port: int) -> NameResolutionDenied:
    return NameResolutionDenied(message, host=host, port=port)


class NetworkSandboxActive(AiotestkitError, RuntimeError):
    """A network sandbox was opened while another one is still active.

    Only one :class:`aiotestkit.NetworkSandbox` can route the process's connections at
    a time; two would silently mix their routes. The message names the active one.

    Example:
        ```python
        assert issubclass(NetworkSandboxActive, RuntimeError)
        ```
    """


class AiotestkitWarning(UserWarning):
    """Root of every warning that aiotestkit emits.

    Example:
        ```python
        assert issubclass(UnansweredRequestsWarning, AiotestkitWarning)
        ```
    """


class UnansweredRequestsWarning(AiotestkitWarning):
    """A case-controlled server closed while requests were still waiting for an answer.

    The client of each such request saw its connection drop. The message lists the
    requests (method and path). Where hygiene checks watch the test (check
    ``unanswered_requests`` on), the server reports into the test's report instead
    of warning. A test that means to leave requests unanswered allows the check
    (``@pytest.mark.hygiene(allow=["unanswered_requests"], reason=...)``) and can
    then expect the warning with ``pytest.warns(UnansweredRequestsWarning)``.

    Example:
        ```python
        assert issubclass(UnansweredRequestsWarning, UserWarning)
        ```
    """


class UnfinishedConnectionsWarning(UnansweredRequestsWarning):
    """A case-controlled server closed while connections were not finished by the test.

    A connection is finished when the test received it and then closed it, aborted
    it, or received the client's end of stream. The message lists the others (the
    ones the test never received and the ones it left open), with the bytes or
    messages they carried that the test did not receive. A test that means to leave
    connections open can expect it with ``pytest.warns(UnfinishedConnectionsWarning)``.

    It is an :class:`UnansweredRequestsWarning`: the hygiene check
    ``unanswered_requests`` fails the test for an unfinished connection exactly as
    for an unanswered HTTP request.

    Example:
        ```python
        assert issubclass(UnfinishedConnectionsWarning, UnansweredRequestsWarning)
        ```
    """


class UnusedExpectationsWarning(AiotestkitWarning):
    """A case-controlled HTTP server closed with expectations used fewer times than declared.

    Emitted by :meth:`aiotestkit.CaseControlledTestServer.close` for every
    expectation that is not ``optional`` and answered fewer requests than its
    ``times``; the message names each one and how often it was used. The hygiene
    check ``unused_expectations`` fails the test for it.

    Example:
        ```python
        issubclass(UnusedExpectationsWarning, AiotestkitWarning)
        # True
        ```
    """


class UnexpectedRequestsWarning(AiotestkitWarning):
    """A case-controlled HTTP server closed with requests no expectation matched and no test took.

    Emitted by :meth:`aiotestkit.CaseControlledTestServer.close` when the server had
    expectations and received requests that matched none of them and that the test
    never received with ``receive_request()``. The message lists each request with
    the expectations it came closest to and, for each, what differed (method, path,
    query, headers, body). The hygiene check ``unexpected_requests`` fails the test
    for it.

    Example:
        ```python
        issubclass(UnexpectedRequestsWarning, AiotestkitWarning)
        # True
        ```
    """


class HygieneWarning(AiotestkitWarning):
    """A hygiene check in ``warn`` mode found something the test left behind.

    The message is the same report that :class:`HygieneError` carries in ``strict``
    mode; the test still passes.

    Example:
        ```python
        assert issubclass(HygieneWarning, UserWarning)
        ```
    """
