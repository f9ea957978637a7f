"""aiotestkit: test asyncio network code against real sockets, real HTTP and real TLS.

The implementation lives in private modules; this module pulls the public API
together in one place. Anything not listed in ``__all__`` is private.

The errors are imported with the package; every other name when it is first used
(:pep:`562`), so that loading the pytest plugin does not import the servers, the
network sandbox or the TLS stack (trustme, cryptography) before a test needs them.
``from aiotestkit import X``, ``aiotestkit.X`` and ``dir(aiotestkit)`` work as usual.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
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

_LAZY: dict[str, str] = {
    "CertificateAuthority": "._core",
    "default_certificate_authority": "._core",
    "HygieneIssue": "._loop",
    "HygieneReport": "._loop",
    "LoopExtension": "._loop",
    "LoopInstrumentation": "._loop",
    "VirtualClock": "._loop",
    "AiohttpRedirector": "._network",
    "BlockedConnection": "._network",
    "FakeResolver": "._network",
    "HTTPProxy": "._network",
    "NetworkSandbox": "._network",
    "TransportContext": "._network",
    "UnverifiedTLSConnection": "._network",
    "CaseControlledServerFactory": "._servers",
    "CaseControlledStreamServer": "._servers",
    "CaseControlledTestServer": "._servers",
    "CaseControlledWebSocketServer": "._servers",
    "Expectation": "._servers",
    "ResponseStream": "._servers",
    "StreamConnection": "._servers",
    "WebSocketConnection": "._servers",
    "NetworkAioHTTPTestCase": ".testcase",
    "NetworkTestCase": ".testcase",
}
"""The public names imported when first used, and the module each one lives in."""


def _report_public_module() -> None:
    # As trio does: classes and functions defined in the private layers report the
    # module users import them from, so reprs, tracebacks and docs show
    # ``aiotestkit.CaseControlledTestServer``, not ``aiotestkit._servers._http``.
    # Every name whose module is imported by now (importing a layer imports those
    # below it) is bound here, once; names a layer itself imports lazily wait.
    namespace = globals()
    for name, module in _LAZY.items():
        layer = sys.modules.get(__name__ + module)
        obj = None if name in namespace or layer is None else vars(layer).get(name)
        if obj is None:
            continue
        if getattr(obj, "__module__", "").startswith("aiotestkit._"):
            obj.__module__ = __name__
        namespace[name] = obj


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    getattr(importlib.import_module(module, __name__), name)  # binds it in its layer
    _report_public_module()
    return globals()[name]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
