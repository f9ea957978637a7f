"""aiotestkit: test asyncio network code against real sockets, real HTTP and real TLS.

The implementation lives in private modules; this module pulls the public API
together in one place. Anything not listed in ``__all__`` is private.
"""

from ._core import CertificateAuthority as CertificateAuthority
from ._core import default_certificate_authority as default_certificate_authority
from ._loop import HygieneIssue as HygieneIssue
from ._loop import HygieneReport as HygieneReport
from ._loop import LoopExtension as LoopExtension
from ._loop import LoopInstrumentation as LoopInstrumentation
from ._loop import VirtualClock as VirtualClock
from ._network import AiohttpRedirector as AiohttpRedirector
from ._network import BlockedConnection as BlockedConnection
from ._network import FakeResolver as FakeResolver
from ._network import HTTPProxy as HTTPProxy
from ._network import NetworkSandbox as NetworkSandbox
from ._network import TransportContext as TransportContext
from ._network import UnverifiedTLSConnection as UnverifiedTLSConnection
from ._servers import CaseControlledServerFactory as CaseControlledServerFactory
from ._servers import CaseControlledStreamServer as CaseControlledStreamServer
from ._servers import CaseControlledTestServer as CaseControlledTestServer
from ._servers import CaseControlledWebSocketServer as CaseControlledWebSocketServer
from ._servers import Expectation as Expectation
from ._servers import ResponseStream as ResponseStream
from ._servers import StreamConnection as StreamConnection
from ._servers import WebSocketConnection as WebSocketConnection
from .errors import AiotestkitError as AiotestkitError
from .errors import AiotestkitWarning as AiotestkitWarning
from .errors import BlockedWhileWaiting as BlockedWhileWaiting
from .errors import ClientClosedConnection as ClientClosedConnection
from .errors import DeadlockError as DeadlockError
from .errors import HandlerError as HandlerError
from .errors import HangTimeout as HangTimeout
from .errors import HygieneError as HygieneError
from .errors import HygieneWarning as HygieneWarning
from .errors import MockNotAwaited as MockNotAwaited
from .errors import NameResolutionDenied as NameResolutionDenied
from .errors import NetworkAccessDenied as NetworkAccessDenied
from .errors import NetworkSandboxActive as NetworkSandboxActive
from .errors import ReceiveTimeout as ReceiveTimeout
from .errors import RequestNotPending as RequestNotPending
from .errors import SendTimeout as SendTimeout
from .errors import UnansweredRequestsWarning as UnansweredRequestsWarning
from .errors import UnexpectedMessage as UnexpectedMessage
from .errors import UnexpectedRequestsWarning as UnexpectedRequestsWarning
from .errors import UnfinishedConnectionsWarning as UnfinishedConnectionsWarning
from .errors import UnusedExpectationsWarning as UnusedExpectationsWarning
from .testcase import NetworkAioHTTPTestCase as NetworkAioHTTPTestCase
from .testcase import NetworkTestCase as NetworkTestCase

__all__ = [
    "AiohttpRedirector",
    "AiotestkitError",
    "AiotestkitWarning",
    "BlockedConnection",
    "BlockedWhileWaiting",
    "CaseControlledServerFactory",
    "CaseControlledStreamServer",
    "CaseControlledTestServer",
    "CaseControlledWebSocketServer",
    "CertificateAuthority",
    "ClientClosedConnection",
    "DeadlockError",
    "Expectation",
    "FakeResolver",
    "HTTPProxy",
    "HandlerError",
    "HangTimeout",
    "HygieneError",
    "HygieneIssue",
    "HygieneReport",
    "HygieneWarning",
    "LoopExtension",
    "LoopInstrumentation",
    "MockNotAwaited",
    "NameResolutionDenied",
    "NetworkAccessDenied",
    "NetworkAioHTTPTestCase",
    "NetworkSandbox",
    "NetworkSandboxActive",
    "NetworkTestCase",
    "ReceiveTimeout",
    "RequestNotPending",
    "ResponseStream",
    "SendTimeout",
    "StreamConnection",
    "TransportContext",
    "UnansweredRequestsWarning",
    "UnexpectedMessage",
    "UnexpectedRequestsWarning",
    "UnfinishedConnectionsWarning",
    "UnusedExpectationsWarning",
    "UnverifiedTLSConnection",
    "VirtualClock",
    "WebSocketConnection",
    "default_certificate_authority",
]

__version__ = "0.1.0"


def _report_public_module() -> None:
    # As trio does: classes and functions defined in the private layers report the
    # module users import them from, so reprs, tracebacks and docs show
    # ``aiotestkit.CaseControlledTestServer``, not ``aiotestkit._servers._http``.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("aiotestkit._"):
            obj.__module__ = __name__


_report_public_module()
del _report_public_module
