"""aiotestkit: test asyncio network code against real sockets, real HTTP and real TLS.

The implementation lives in private modules; this module pulls the public API
together in one place. Anything not listed in ``__all__`` is private.
"""

from ._clock import VirtualClock as VirtualClock
from ._http import CaseControlledTestServer as CaseControlledTestServer
from ._redirector import AiohttpRedirector as AiohttpRedirector
from ._resolver import FakeResolver as FakeResolver
from ._sandbox import BlockedConnection as BlockedConnection
from ._sandbox import NetworkSandbox as NetworkSandbox
from ._sandbox import UnverifiedTLSConnection as UnverifiedTLSConnection
from ._tls import CertificateAuthority as CertificateAuthority
from ._tls import default_certificate_authority as default_certificate_authority
from .errors import AiotestkitError as AiotestkitError
from .errors import AiotestkitWarning as AiotestkitWarning
from .errors import DeadlockError as DeadlockError
from .errors import NameResolutionDenied as NameResolutionDenied
from .errors import NetworkAccessDenied as NetworkAccessDenied
from .errors import NetworkSandboxActive as NetworkSandboxActive
from .errors import ReceiveTimeout as ReceiveTimeout
from .errors import RequestNotPending as RequestNotPending
from .errors import UnansweredRequestsWarning as UnansweredRequestsWarning

__all__ = [
    "AiohttpRedirector",
    "AiotestkitError",
    "AiotestkitWarning",
    "BlockedConnection",
    "CaseControlledTestServer",
    "CertificateAuthority",
    "DeadlockError",
    "FakeResolver",
    "NameResolutionDenied",
    "NetworkAccessDenied",
    "NetworkSandbox",
    "NetworkSandboxActive",
    "ReceiveTimeout",
    "RequestNotPending",
    "UnansweredRequestsWarning",
    "UnverifiedTLSConnection",
    "VirtualClock",
    "default_certificate_authority",
]

__version__ = "0.1.0"
