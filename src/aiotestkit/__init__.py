"""aiotestkit: test asyncio network code against real sockets, real HTTP and real TLS.

The implementation lives in private modules; this module pulls the public API
together in one place. Anything not listed in ``__all__`` is private.
"""

from ._clock import VirtualClock as VirtualClock
from ._http import CaseControlledTestServer as CaseControlledTestServer
from ._hygiene import HygieneIssue as HygieneIssue
from ._hygiene import HygieneReport as HygieneReport
from ._instrumentation import LoopExtension as LoopExtension
from ._instrumentation import LoopInstrumentation as LoopInstrumentation
from ._redirector import AiohttpRedirector as AiohttpRedirector
from ._resolver import FakeResolver as FakeResolver
from ._sandbox import BlockedConnection as BlockedConnection
from ._sandbox import NetworkSandbox as NetworkSandbox
from ._sandbox import UnverifiedTLSConnection as UnverifiedTLSConnection
from ._stream import CaseControlledStreamServer as CaseControlledStreamServer
from ._stream import StreamConnection as StreamConnection
from ._tls import CertificateAuthority as CertificateAuthority
from ._tls import default_certificate_authority as default_certificate_authority
from ._transport import TransportContext as TransportContext
from ._websocket import CaseControlledWebSocketServer as CaseControlledWebSocketServer
from ._websocket import WebSocketConnection as WebSocketConnection
from .errors import AiotestkitError as AiotestkitError
from .errors import AiotestkitWarning as AiotestkitWarning
from .errors import ClientClosedConnection as ClientClosedConnection
from .errors import DeadlockError as DeadlockError
from .errors import HandlerError as HandlerError
from .errors import HangTimeout as HangTimeout
from .errors import HygieneError as HygieneError
from .errors import HygieneWarning as HygieneWarning
from .errors import NameResolutionDenied as NameResolutionDenied
from .errors import NetworkAccessDenied as NetworkAccessDenied
from .errors import NetworkSandboxActive as NetworkSandboxActive
from .errors import ReceiveTimeout as ReceiveTimeout
from .errors import RequestNotPending as RequestNotPending
from .errors import SendTimeout as SendTimeout
from .errors import UnansweredRequestsWarning as UnansweredRequestsWarning
from .errors import UnexpectedMessage as UnexpectedMessage
from .errors import UnfinishedConnectionsWarning as UnfinishedConnectionsWarning

__all__ = [
    "AiohttpRedirector",
    "AiotestkitError",
    "AiotestkitWarning",
    "BlockedConnection",
    "CaseControlledStreamServer",
    "CaseControlledTestServer",
    "CaseControlledWebSocketServer",
    "CertificateAuthority",
    "ClientClosedConnection",
    "DeadlockError",
    "FakeResolver",
    "HandlerError",
    "HangTimeout",
    "HygieneError",
    "HygieneIssue",
    "HygieneReport",
    "HygieneWarning",
    "LoopExtension",
    "LoopInstrumentation",
    "NameResolutionDenied",
    "NetworkAccessDenied",
    "NetworkSandbox",
    "NetworkSandboxActive",
    "ReceiveTimeout",
    "RequestNotPending",
    "SendTimeout",
    "StreamConnection",
    "TransportContext",
    "UnansweredRequestsWarning",
    "UnexpectedMessage",
    "UnfinishedConnectionsWarning",
    "UnverifiedTLSConnection",
    "VirtualClock",
    "WebSocketConnection",
    "default_certificate_authority",
]

__version__ = "0.1.0"
